"""Mixed precision: which dtype variables, statistics and outputs use.

The rule (tensorpack's, where it has one): Conv2D, Conv2DTranspose and FullyConnected create
their variables in the dtype of the example input given to ``init``; every normalization
layer and PReLU keeps float32 variables and statistics. Every layer computes in, and
returns, the dtype of the input it is applied to. The goldens (``*_fp16``, ``*_bf16``) pin
the numbers against tensorpack; these tests pin the dtypes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp

HALF = [jnp.float16, jnp.bfloat16]


def net(x):
    with tp.argscope([tp.Conv2D, tp.Deconv2D], kernel_size=3, activation=tp.BNReLU):
        l = tp.Conv2D("conv0", x, 4, strides=2)
        l = tp.Deconv2D("up", l, 3, strides=2)
        l = tp.LayerNorm("ln", l)
        l = tp.InstanceNorm("in", l)
        l = tp.PReLU("prelu", l)
        l = tp.BatchRenorm("renorm", l, rmax=2.0, dmax=1.0)
        return tp.FullyConnected("fc", tp.GlobalAvgPooling("gap", l), 5)


def _dtypes(tree):
    return {k: v.dtype for k, v in tp.checkpoint.flatten(tree).items()}


@pytest.mark.parametrize("dtype", HALF)
def test_half_input_with_float32_weights(dtype) -> None:
    model = tp.transform(net)
    x32 = jnp.asarray(np.random.RandomState(0).randn(4, 8, 8, 3), jnp.float32)
    params, state = model.init(jax.random.key(0), x32)
    assert set(_dtypes(params).values()) == {jnp.dtype(jnp.float32)}

    @jax.jit
    def step(params, state, x):
        def loss(p):
            y, new_state = model.apply(p, state, x, is_training=True)
            return jnp.sum(y.astype(jnp.float32) ** 2), (y, new_state)

        return jax.grad(loss, has_aux=True)(params)

    grads, (y, new_state) = step(params, state, x32.astype(dtype))
    assert y.dtype == dtype
    assert set(_dtypes(grads).values()) == {jnp.dtype(jnp.float32)}
    assert set(_dtypes(new_state).values()) == {jnp.dtype(jnp.float32)}
    y32, _ = model.apply(params, state, x32, is_training=True)
    scale = float(jnp.max(jnp.abs(y32)))
    tol = {jnp.float16: 1e-2, jnp.bfloat16: 5e-2}[dtype]
    assert float(jnp.max(jnp.abs(y.astype(jnp.float32) - y32))) < tol * scale


@pytest.mark.parametrize("dtype", HALF)
def test_init_with_half_input_follows_tensorpack(dtype) -> None:
    params, state = tp.transform(net).init(jax.random.key(0), jnp.ones((2, 8, 8, 3), dtype))
    dtypes = _dtypes(params)
    half = {n for n, d in dtypes.items() if d == dtype}
    assert half == {"conv0/W", "conv0/b", "up/W", "up/b", "fc/W", "fc/b"}
    assert all(d == jnp.float32 for n, d in dtypes.items() if n not in half)
    assert set(_dtypes(state).values()) == {jnp.dtype(jnp.float32)}


def test_batchnorm_statistics_stay_float32_and_exact() -> None:
    """A bfloat16 batch (1000, 1000, 1000, 1004) has mean 1001, which bfloat16 cannot hold
    (its spacing there is 4): float32 statistics see it exactly."""
    x = jnp.full((4, 2), 1000.0, jnp.bfloat16).at[0].set(1004.0)
    params, state = tp.BatchNorm.init(jax.random.key(0), x)
    y, new_state = tp.BatchNorm.apply(params, state, x, is_training=True, momentum=0.0)
    assert y.dtype == jnp.bfloat16
    assert new_state["mean"]["EMA"].dtype == jnp.float32
    np.testing.assert_allclose(new_state["mean"]["EMA"], [1001.0, 1001.0])
