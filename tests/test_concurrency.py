"""One model shared by 16 threads and by interleaved asyncio tasks: each call sees only its
own argscope, conv lowering, mode and state, and gets the serial result bit for bit."""

from __future__ import annotations

import asyncio
import threading

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp


def net(x: jax.Array) -> jax.Array:
    l = tp.Conv2D("conv0", x, 4, 3)
    l = tp.BatchNorm("bn", l)
    l = tp.Conv2D("conv1", l, 4, 1)
    return tp.FullyConnected("fc", l, 3)


MODEL = tp.transform(net)
X = [jnp.asarray(np.random.RandomState(i).randn(2, 6, 6, 3), jnp.float32) for i in range(16)]
PARAMS, STATE = MODEL.init(jax.random.key(0), X[0])


def call(i: int) -> tuple[jax.Array, dict]:
    """Call ``i``'s own settings: training or not, a ReLU argscope or none, and the conv
    lowering, all chosen by ``i``."""
    act = jax.nn.relu if i % 2 else (lambda v: v)
    with tp.argscope(tp.Conv2D, activation=act), tp.conv_impl("xla" if i % 3 else "auto"):
        return MODEL.apply(PARAMS, STATE, X[i], is_training=bool(i % 4 == 0))


def test_sixteen_threads_sharing_one_model_get_the_serial_results() -> None:
    serial = [call(i) for i in range(16)]
    got: dict[int, tuple[jax.Array, dict]] = {}
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        barrier.wait()
        got[i] = call(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(16):
        np.testing.assert_array_equal(got[i][0], serial[i][0])
        jax.tree.map(np.testing.assert_array_equal, got[i][1], serial[i][1])


def test_interleaved_asyncio_tasks_keep_their_own_settings() -> None:
    """Each task opens its scopes, yields to the others inside them, then runs the model."""
    serial = [call(i)[0] for i in range(16)]

    async def task(i: int) -> jax.Array:
        act = jax.nn.relu if i % 2 else (lambda v: v)
        with tp.argscope(tp.Conv2D, activation=act), tp.conv_impl("xla" if i % 3 else "auto"):
            await asyncio.sleep(0.001 * (16 - i))  # the others enter and leave meanwhile
            y = MODEL.apply(PARAMS, STATE, X[i], is_training=bool(i % 4 == 0))[0]
            await asyncio.sleep(0)
            assert tp.get_arg_scope()["Conv2D"]["activation"] is act
            return y

    async def main() -> list[jax.Array]:
        return list(await asyncio.gather(*(task(i) for i in range(16))))

    for i, y in enumerate(asyncio.run(main())):
        np.testing.assert_array_equal(y, serial[i])
    # and the scopes are gone afterwards
    assert "activation" not in tp.get_arg_scope().get("Conv2D", {})
