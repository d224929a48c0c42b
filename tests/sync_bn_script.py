"""Run by test_batch_norm_sync.py in a subprocess with 4 simulated CPU devices.

Prints one ``OK <check>`` line per check that passed; any mismatch raises.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import tpflax as tp

try:
    from jax import shard_map
except ImportError:  # older JAX
    from jax.experimental.shard_map import shard_map

N_DEV = 4


def close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def shards(x):
    return x.reshape(N_DEV, x.shape[0] // N_DEV, *x.shape[1:])


def check_layer(mesh, x, cot) -> None:
    """One sync BN layer under shard_map and under pmap == tensorpack's own-implementation
    path on one device over the whole batch (Ghost BN with one virtual batch: plain batch
    statistics, biased variance for the EMA, as SyncBN)."""
    sync = tp.transform(lambda x: tp.BatchNorm("bn", x, sync_statistics="batch"))
    ghost = tp.transform(lambda x: tp.BatchNorm("bn", x, virtual_batch_size=x.shape[0]))
    _, state = sync.init(jax.random.key(0), x)
    params = {"bn": {"gamma": jnp.array([1.5, 0.5]), "beta": jnp.array([0.1, -0.2])}}

    def per_device(p, s, x):
        return sync.apply(p, s, x, is_training=True)

    sm = jax.jit(
        shard_map(
            per_device, mesh=mesh, in_specs=(P(), P(), P("batch")), out_specs=(P("batch"), P())
        )
    )
    pm = jax.pmap(per_device, axis_name="batch", in_axes=(None, None, 0), out_axes=(0, None))
    y_ref, state_ref = ghost.apply(params, state, x, is_training=True)
    g_ref = jax.grad(
        lambda p, x: jnp.sum(ghost.apply(p, state, x, is_training=True)[0] * cot), (0, 1)
    )(params, x)

    y, new_state = sm(params, state, x)
    close(y, y_ref, atol=1e-5)
    close(new_state, state_ref)
    g = jax.grad(lambda p, x: jnp.sum(sm(p, state, x)[0] * cot), (0, 1))(params, x)
    close(g, g_ref, rtol=1e-4, atol=1e-5)
    print("OK shard_map layer")

    y, new_state = pm(params, state, shards(x))
    close(y.reshape(x.shape), y_ref, atol=1e-5)
    close(new_state, state_ref)
    g = jax.grad(lambda p, x: jnp.sum(pm(p, state, x)[0] * shards(cot)), (0, 1))(params, shards(x))
    close((g[0], g[1].reshape(x.shape)), g_ref, rtol=1e-4, atol=1e-5)
    print("OK pmap layer")


def make_model(sync: bool) -> tp.Transformed:
    def net(x):
        l = tp.Conv2D("conv0", x, 4, 3, use_bias=False)
        l = tp.BatchNorm("bn", l, sync_statistics="batch" if sync else None)
        l = tp.MaxPooling("pool", jax.nn.relu(l), 2)
        return tp.FullyConnected("fc", tp.GlobalAvgPooling("gap", l), 3)

    return tp.transform(net)


def check_data_parallel(mesh) -> None:
    """Data-parallel training with sync BN: the averaged per-device gradients equal the
    single-device gradient of the same loss on the concatenated batch (plain BatchNorm),
    and so do the outputs and the EMA mean. The EMA variance differs only by tensorpack's
    rule: the single-device fused path feeds the unbiased variance, SyncBN the biased."""
    rng = np.random.RandomState(1)
    x = jnp.asarray(rng.randn(8, 6, 6, 2).astype("float32"))
    t = jnp.asarray(rng.randn(8, 3).astype("float32"))
    single, dp = make_model(False), make_model(True)
    params, state = single.init(jax.random.key(0), x)

    def loss(model, p, s, x, t):
        y, new_state = model.apply(p, s, x, is_training=True)
        return jnp.mean(jnp.square(y - t)), new_state

    g_ref, s_ref = jax.grad(lambda p: loss(single, p, state, x, t), has_aux=True)(params)

    # pmap: per-device gradients, then their mean across devices.
    def pmap_step(p, s, x, t):
        g, new_state = jax.grad(lambda p: loss(dp, p, s, x, t), has_aux=True)(p)
        return lax.pmean(g, "batch"), new_state

    step = jax.pmap(pmap_step, axis_name="batch", in_axes=(None, None, 0, 0), out_axes=None)
    g, s_dp = step(params, state, shards(x), shards(t))
    close(g, g_ref, rtol=1e-4, atol=1e-6)

    # shard_map: the gradient of the device-averaged loss is already the global gradient.
    def sm_step(p, s, x, t):
        def global_loss(p):
            value, new_state = loss(dp, p, s, x, t)
            return lax.pmean(value, "batch"), new_state

        return jax.grad(global_loss, has_aux=True)(p)

    step = jax.jit(
        shard_map(
            sm_step,
            mesh=mesh,
            in_specs=(P(), P(), P("batch"), P("batch")),
            out_specs=(P(), P()),
        )
    )
    g, s_sm = step(params, state, x, t)
    close(g, g_ref, rtol=1e-4, atol=1e-6)
    close(s_sm, s_dp)

    close(s_dp["bn"]["mean"]["EMA"], s_ref["bn"]["mean"]["EMA"])
    n = 8 * 6 * 6  # values per channel in the whole batch
    base = 0.9 * state["bn"]["variance"]["EMA"]
    close(
        s_ref["bn"]["variance"]["EMA"] - base, (s_dp["bn"]["variance"]["EMA"] - base) * n / (n - 1)
    )
    print("OK data-parallel gradients")


def main() -> None:
    assert jax.device_count() == N_DEV, jax.devices()
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(8, 3, 3, 2).astype("float32") * 2 + 1)
    cot = jnp.asarray(rng.randn(8, 3, 3, 2).astype("float32"))
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    check_layer(mesh, x, cot)
    check_data_parallel(mesh)


if __name__ == "__main__":
    main()
