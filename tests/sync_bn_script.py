"""Run by test_batch_norm_sync.py in a subprocess with 4 simulated CPU devices."""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import tpflax as tp

try:
    from jax import shard_map
except ImportError:  # older JAX
    from jax.experimental.shard_map import shard_map


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(8, 3, 3, 2).astype("float32") * 2 + 1)
    cot = jnp.asarray(rng.randn(8, 3, 3, 2).astype("float32"))
    sync = tp.transform(lambda x: tp.BatchNorm("bn", x, sync_statistics="batch"))
    ghost = tp.transform(lambda x: tp.BatchNorm("bn", x, virtual_batch_size=8))
    params, state = sync.init(jax.random.key(0), x)
    params = {"bn": {"gamma": jnp.array([1.5, 0.5]), "beta": jnp.array([0.1, -0.2])}}
    mesh = Mesh(np.array(jax.devices()), ("batch",))

    def sharded(p, s, x):
        return sync.apply(p, s, x, is_training=True)

    run = shard_map(
        sharded, mesh=mesh, in_specs=(P(), P(), P("batch")), out_specs=(P("batch"), P())
    )
    y, new_state = jax.jit(run)(params, state, x)
    # tensorpack's own-implementation path on one device over the whole batch (Ghost BN with
    # one virtual batch = plain batch statistics, biased variance for the EMA, as SyncBN).
    y_ref, state_ref = ghost.apply(params, state, x, is_training=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(
        jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(state_ref), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def loss_sync(p, x):
        return jnp.sum(jax.jit(run)(p, state, x)[0] * cot)

    def loss_ref(p, x):
        return jnp.sum(ghost.apply(p, state, x, is_training=True)[0] * cot)

    g = jax.grad(loss_sync, argnums=(0, 1))(params, x)
    g_ref = jax.grad(loss_ref, argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    print("SYNC-BN-OK")


if __name__ == "__main__":
    main()
