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
# The two whole-model checks run float16 in make test-slow (the 5-minute budget of make
# test); bfloat16 in make test, and every layer's float16 golden in test_golden_layers.
HALF_FAST = [pytest.param(jnp.float16, marks=pytest.mark.slow, id="float16"), jnp.bfloat16]


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


@pytest.mark.parametrize("dtype", HALF_FAST)
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
    y32, _ = jax.jit(lambda p, s, x: model.apply(p, s, x, is_training=True))(params, state, x32)
    scale = float(jnp.max(jnp.abs(y32)))
    tol = {jnp.float16: 1e-2, jnp.bfloat16: 5e-2}[dtype]
    assert float(jnp.max(jnp.abs(y.astype(jnp.float32) - y32))) < tol * scale


@pytest.mark.parametrize("dtype", HALF_FAST)
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


LAYERS = {
    "conv1x1": lambda x: tp.Conv2D("conv", x, 8, 1, use_bias=False),
    "conv3x3": lambda x: tp.Conv2D("conv", x, 8, 3, use_bias=False),
    "conv3x3_patches": lambda x: tp.Conv2D("conv", x, 8, 3, use_bias=False),
    "deconv": lambda x: tp.Deconv2D("up", x, 4, 3, strides=2, use_bias=False),
    "fc": lambda x: tp.FullyConnected("fc", x, 5, use_bias=False),
}


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_half_convolutions_and_products_accumulate_in_float32(dtype, layer) -> None:
    """Every product over a half-precision input sums in float32 (preferred_element_type)
    and rounds once: that is what lets XLA:CPU use its bfloat16 kernels, and the result is
    the float32 sum rounded to the input's dtype, whichever lowering runs."""
    model = tp.transform(LAYERS[layer])
    channels = 256 if layer.endswith("patches") else 3
    x32 = jnp.asarray(np.random.RandomState(0).randn(2, 5, 5, channels), jnp.float32)
    params, state = model.init(jax.random.key(0), x32)
    x = x32.astype(dtype)
    text = str(jax.make_jaxpr(lambda x: model.apply(params, state, x)[0])(x))
    assert text.count("dot_general[") + text.count("conv_general_dilated[") == 1
    assert text.count("preferred_element_type=float32") == 1, text
    y = model.apply(params, state, x)[0]
    assert y.dtype == dtype
    half = jax.tree.map(lambda a: a.astype(dtype).astype(jnp.float32), params)
    want = model.apply(half, state, x.astype(jnp.float32))[0]
    # the float32 sum rounded once: within half a unit in the last place (plus float32 noise)
    ulp = jnp.finfo(dtype).eps * jnp.abs(want)
    assert bool(jnp.all(jnp.abs(y.astype(jnp.float32) - want) <= 0.5 * ulp + 1e-5))


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_bfloat16_products_on_gpus_ask_for_the_input_dtype(layer, monkeypatch) -> None:
    """On GPUs the bfloat16 kernels sum in float32 themselves, and a float32 result
    ran XLA's convolutions there at float32 speed (benchmarks/gpu.py, accumulation check:
    ResNet-50's bfloat16 step 1.56x faster without it): traced for a GPU, each product asks
    for the input's dtype and nothing is summed through a float32 result."""
    model = tp.transform(LAYERS[layer])
    channels = 256 if layer.endswith("patches") else 3
    x32 = jnp.asarray(np.random.RandomState(0).randn(2, 5, 5, channels), jnp.float32)
    params, state = model.init(jax.random.key(0), x32)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    jaxpr = jax.make_jaxpr(lambda x: model.apply(params, state, x)[0])(x32.astype(jnp.bfloat16))
    text = str(jaxpr)
    assert text.count("dot_general[") + text.count("conv_general_dilated[") == 1
    assert "preferred_element_type=float32" not in text, text
    assert jaxpr.out_avals[0].dtype == jnp.bfloat16
    # float16 there was not measured: it keeps the float32 result
    text16 = str(jax.make_jaxpr(lambda x: model.apply(params, state, x)[0])(x32.astype("float16")))
    assert text16.count("preferred_element_type=float32") == 1, text16
