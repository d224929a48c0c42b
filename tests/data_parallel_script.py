"""tp.train data parallel on 8 simulated CPU devices (XLA_FLAGS set before JAX starts): one
and three steps with BatchNorm(sync_statistics='batch') over a Mesh equal the same steps on
one device with the whole batch (params, state, cost). Run by tests/test_data_parallel.py."""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

import tpflax as tp


def make_net(sync):
    def net(image, label):
        with tp.argscope(tp.BatchNorm, sync_statistics=sync):
            l = tp.Conv2D("conv0", image, 4, 3, activation=tp.BNReLU)
            l = tp.FullyConnected("fc0", l, 6)
            l = jax.nn.relu(tp.BatchNorm("bn_fc", l))
            logits = tp.FullyConnected("linear", l, 3)
        return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()

    return net


def close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def run(trainer, params, state, batches):
    ts = trainer.init(params, state, *batches[0], rng=jax.random.key(0))
    costs = []
    for batch in batches:
        ts, m = trainer.step(ts, *batch)
        costs.append(float(m["cost"]))
    return ts, costs


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.RandomState(0)
    batches = [
        (
            jnp.asarray(rng.randn(16, 6, 6, 2).astype("float32")),
            jnp.asarray(rng.randint(0, 3, 16).astype("int32")),
        )
        for _ in range(2)
    ]
    model = tp.transform(make_net("batch"))
    params, state = tp.transform(make_net(None)).init(jax.random.key(0), *batches[0])
    tx = optax.sgd(0.1, momentum=0.9)
    eight = Mesh(np.array(jax.devices()), ("batch",))
    one = Mesh(np.array(jax.devices()[:1]), ("batch",))
    ts8, c8 = run(tp.train.Trainer(model, tx, mesh=eight), params, state, batches)
    ts1, c1 = run(tp.train.Trainer(model, tx, mesh=one), params, state, batches)
    np.testing.assert_allclose(c8, c1, rtol=1e-6)
    close(ts8.params, ts1.params)
    close(ts8.state, ts1.state)
    assert int(ts8.step) == 2
    print("OK 2 step(s): 8 devices == 1 device")
    # and against plain single-device training without a mesh (plain BatchNorm): the same
    # costs and params; the EMA variance differs only by tensorpack's rule (SyncBN feeds the
    # biased variance, the fused single-device path the unbiased one)
    plain = tp.transform(make_net(None))
    tsp, cp = run(tp.train.Trainer(plain, tx), params, state, batches)
    np.testing.assert_allclose(c8, cp, rtol=1e-6)
    close(ts8.params, tsp.params, rtol=1e-4)
    close(ts8.state["conv0"]["bn"]["mean"], tsp.state["conv0"]["bn"]["mean"])
    close(ts8.state["bn_fc"], tsp.state["bn_fc"])  # 2-D: biased on both paths
    sharding = ts8.params["linear"]["W"].sharding
    assert sharding.is_fully_replicated, sharding
    print("OK 8 devices == plain single-device training")


if __name__ == "__main__":
    main()
