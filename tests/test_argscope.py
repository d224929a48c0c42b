"""argscope: nesting, precedence, validation, jit, and isolation across threads and tasks."""

from __future__ import annotations

import asyncio
import threading

import jax
import jax.numpy as jnp
import pytest

import tpflax as tp


def test_nesting_and_restore() -> None:
    with tp.argscope(tp.Conv2D, filters=8, kernel_size=3):
        with tp.argscope([tp.Conv2D, tp.MaxPooling], data_format="NCHW"):
            scope = tp.get_arg_scope()
            assert scope["Conv2D"] == {"filters": 8, "kernel_size": 3, "data_format": "NCHW"}
            assert scope["MaxPooling"] == {"data_format": "NCHW"}
        assert tp.get_arg_scope()["Conv2D"] == {"filters": 8, "kernel_size": 3}
    assert tp.get_arg_scope()["Conv2D"] == {}


def test_get_arg_scope_is_a_copy() -> None:
    with tp.argscope(tp.Conv2D, filters=8):
        tp.get_arg_scope()["Conv2D"]["filters"] = 99
        assert tp.get_arg_scope()["Conv2D"] == {"filters": 8}


def _conv_shape(fn, x):
    params, _ = tp.transform(fn).init(jax.random.key(0), x)
    return params["c"]["W"].shape


def test_explicit_keyword_wins_over_argscope_even_through_an_alias() -> None:
    x = jnp.ones((1, 5, 5, 2))
    with tp.argscope(tp.Conv2D, out_channel=4, kernel_size=3):
        assert _conv_shape(lambda x: tp.Conv2D("c", x, filters=6), x) == (3, 3, 2, 6)


def test_positional_wins_over_argscope() -> None:
    x = jnp.ones((1, 5, 5, 2))
    with tp.argscope(tp.Conv2D, filters=4, kernel_size=3):
        assert _conv_shape(lambda x: tp.Conv2D("c", x, 7, 1), x) == (1, 1, 2, 7)


def test_unknown_argument_is_an_error_at_the_argscope_call() -> None:
    with pytest.raises(TypeError, match=r"argscope\(Conv2D\).*unknown argument 'kernel'"):
        with tp.argscope(tp.Conv2D, kernel=3):
            pass


def test_non_layer_is_rejected() -> None:
    with pytest.raises(TypeError, match="does not take an argscope"):
        with tp.argscope(jnp.tanh, x=1):
            pass


def test_conflicting_aliases_in_one_source() -> None:
    with pytest.raises(TypeError, match="'out_channel' and 'filters' both set 'filters'"):
        with tp.argscope(tp.Conv2D, out_channel=3, filters=4):
            pass


def test_argscope_while_tracing_under_jit() -> None:
    def net(x):
        with tp.argscope(tp.FullyConnected, units=3, activation=jax.nn.relu):
            return tp.FullyConnected("fc", x)

    model = tp.transform(net)
    x = jnp.ones((2, 4))
    params, state = model.init(jax.random.key(0), x)
    y, _ = jax.jit(model.apply)(params, state, x)
    assert y.shape == (2, 3)
    assert float(jnp.min(y)) >= 0.0


def test_isolated_between_threads() -> None:
    seen: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def worker(tag: str, filters: int) -> None:
        with tp.argscope(tp.Conv2D, filters=filters):
            barrier.wait()
            seen[tag] = tp.get_arg_scope()["Conv2D"].get("filters")
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(t, f)) for t, f in (("a", 1), ("b", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": 1, "b": 2}


def test_isolated_between_asyncio_tasks() -> None:
    async def worker(filters: int) -> object:
        with tp.argscope(tp.Conv2D, filters=filters):
            await asyncio.sleep(0.01)
            return tp.get_arg_scope()["Conv2D"].get("filters")

    async def main() -> list[object]:
        return list(await asyncio.gather(worker(1), worker(2), worker(3)))

    assert asyncio.run(main()) == [1, 2, 3]


def test_enable_argscope_for_function() -> None:
    def scale(x, factor=1.0):
        return x * factor

    scaled = tp.enable_argscope_for_function(scale, log_shape=False)
    with tp.argscope(scaled, factor=3.0):
        assert float(scaled(jnp.ones(()))) == 3.0
        assert float(scaled(jnp.ones(()), factor=2.0)) == 2.0
    with pytest.raises(TypeError, match="takes no argument 'facter'"):
        with tp.argscope(scaled, facter=2.0):
            pass
