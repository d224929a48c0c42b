"""jax.vmap over tpflax models: per-example gradients, ensembles over stacked params, and
sync BatchNorm across a vmapped axis (API.md: jit, grad and vmap where they make sense)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp


def net(x, sync=None):
    l = tp.Conv2D("conv0", x, 4, 3, activation=jax.nn.relu)
    l = tp.BatchNorm("bn", l, sync_statistics=sync)
    return tp.FullyConnected("fc", l, 3)


X = jnp.asarray(np.random.RandomState(0).randn(6, 5, 5, 2), jnp.float32)
MODEL = tp.transform(net)
PARAMS, STATE = MODEL.init(jax.random.key(0), X)


def close(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6), a, b)


def test_per_example_gradients() -> None:
    def loss(params, x):
        return jnp.sum(MODEL.apply(params, STATE, x[None])[0] ** 2)

    batched = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(PARAMS, X)
    for i in range(X.shape[0]):
        close(jax.tree.map(lambda g, i=i: g[i], batched), jax.grad(loss)(PARAMS, X[i]))


def test_ensemble_over_stacked_params() -> None:
    members = [MODEL.init(jax.random.key(k), X)[0] for k in range(3)]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *members)
    out = jax.vmap(lambda p: MODEL.apply(p, STATE, X)[0])(stacked)
    for k, p in enumerate(members):
        np.testing.assert_allclose(out[k], MODEL.apply(p, STATE, X)[0], rtol=1e-5, atol=1e-6)


def test_sync_batchnorm_across_a_vmapped_axis() -> None:
    """Three groups of two images, statistics averaged over the vmapped axis: the same as
    tensorpack's own-implementation BN on all six (Ghost BN with one virtual batch)."""
    sync = tp.transform(lambda x: net(x, sync="groups"))
    ghost = tp.transform(
        lambda x: tp.FullyConnected(
            "fc",
            tp.BatchNorm(
                "bn",
                tp.Conv2D("conv0", x, 4, 3, activation=jax.nn.relu),
                virtual_batch_size=x.shape[0],
            ),
            3,
        )
    )
    groups = X.reshape(3, 2, *X.shape[1:])
    y, new_state = jax.vmap(
        lambda x: sync.apply(PARAMS, STATE, x, is_training=True), axis_name="groups"
    )(groups)
    want, want_state = ghost.apply(PARAMS, STATE, X, is_training=True)
    np.testing.assert_allclose(y.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    close(jax.tree.map(lambda v: v[0], new_state), want_state)
