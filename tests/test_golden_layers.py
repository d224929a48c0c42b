"""Every layer case from real tensorpack (tests/golden/*.npz) replayed through tpflax."""

from __future__ import annotations

import pytest
from golden_replay import check_fixture, fixtures, layer_fn

import tpflax as tp
from tpflax._src import onednn

# Large-mean BatchNorm cases are held to float64 instead (tests/test_batch_norm_numerics.py).
LAYER_FIXTURES = [
    fx for fx in fixtures("*.npz") if "layer" in fx.spec and "large_mean" not in fx.id
]


def test_fixtures_exist() -> None:
    assert len(LAYER_FIXTURES) >= 50


@pytest.mark.parametrize("fx", LAYER_FIXTURES, ids=lambda fx: fx.id)
def test_layer_matches_tensorpack(fx) -> None:
    check_fixture(fx, layer_fn(fx.spec))


def _lowered(spec: dict) -> bool:
    """A case whose op 'onednn' or 'xla' lowers differently from 'auto': convolutions, max
    pooling, and float32 4-D BatchNorm in training with more than one value per channel."""
    if spec["layer"] in ("BatchNorm", "BNReLU"):
        shape = spec["input_shape"]
        return (
            spec["training"] is True
            and spec["kwargs"].get("training") is not False
            and len(shape) == 4
            and spec.get("dtype", "float32") == "float32"
            and "virtual_batch_size" not in spec["kwargs"]
            and shape[0] * shape[1] * shape[2] * shape[3] > max(shape[1], shape[3])
        )
    return spec["layer"] in ("Conv2D", "Conv2DTranspose", "Deconv2D", "MaxPooling")


LOWERED_FIXTURES = [fx for fx in LAYER_FIXTURES if _lowered(fx.spec)]
IMPLS = [
    # make test-slow (the 5-minute budget): on these small shapes 'auto', which the test
    # above runs, is XLA's convolution except for 1x1 kernels (dots) and the patches cases.
    pytest.param("xla", marks=pytest.mark.slow),
    pytest.param(
        "onednn",
        marks=pytest.mark.skipif(
            not onednn.available(), reason="oneDNN extension not built or not on CPU"
        ),
    ),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fx", LOWERED_FIXTURES, ids=lambda fx: fx.id)
def test_conv_and_max_pool_match_tensorpack_under_each_lowering(fx, impl) -> None:
    """The same Conv2D, Conv2DTranspose, MaxPooling and BatchNorm cases, values and
    gradients, with every convolution lowered by lax.conv_general_dilated and max pooling
    differentiated by JAX's own rule (tp.conv_impl('xla')), and with every float32
    convolution, 4-D BatchNorm in training and max pooling on oneDNN
    (tp.conv_impl('onednn')); the test above runs the default lowering."""

    def fn(x):
        with tp.conv_impl(impl):
            return layer_fn(fx.spec)(x)

    check_fixture(fx, fn)


def test_one_by_one_convolutions_are_dots_by_default() -> None:
    import jax
    import jax.numpy as jnp

    x = jnp.ones((1, 6, 6, 3))
    model = tp.transform(lambda x: tp.Conv2D("c", x, 4, 1, strides=2))
    params, state = model.init(jax.random.key(0), x)

    def differentiated(x):  # the training table decides (see the next test for inference)
        return jax.grad(lambda x: model.apply(params, state, x)[0].sum())(x)

    text = jax.make_jaxpr(differentiated)(x).pretty_print()
    assert ("dot_general" in text) == (jax.default_backend() == "cpu")
    assert "tpflax_onednn" not in text
    with tp.conv_impl("xla"):  # a new function: make_jaxpr caches traces by function
        text = jax.make_jaxpr(lambda x: differentiated(x))(x).pretty_print()
    assert "conv_general_dilated" in text and "dot_general" not in text
    # not differentiated: a dot below 1e6 multiply-adds; from there oneDNN where it is built
    # and AVX-512 (conv_impl.ONEDNN_INFERENCE)
    text = jax.make_jaxpr(lambda x: model.apply(params, state, x)[0])(x).pretty_print()
    assert ("dot_general" in text) == (jax.default_backend() == "cpu")
    big = jax.ShapeDtypeStruct((1, 56, 56, 64), jnp.float32)
    wide = tp.transform(lambda x: tp.Conv2D("c", x, 64, 1))
    p, s = jax.eval_shape(lambda x: wide.init(jax.random.key(0), x), big)
    text = jax.make_jaxpr(lambda p, s, x: wide.apply(p, s, x)[0])(p, s, big).pretty_print()
    assert ("tpflax_onednn" in text) == (onednn.available() and onednn.has_avx512())
    with pytest.raises(
        ValueError, match=r"tp.conv_impl: expected one of \('auto', 'xla', 'onednn'\)"
    ):
        with tp.conv_impl("fast"):
            pass


def test_small_outputs_are_patch_products_and_large_ones_xla_convolutions() -> None:
    """The conv2d_patches goldens exercise the patches lowering on CPU; a map with more
    pixels, more output positions or fewer channels than the table's limits stays XLA's
    convolution."""
    import jax
    import jax.numpy as jnp

    from tpflax._src.conv_impl import PATCHES_MAX_POSITIONS, PATCHES_MIN_CHANNELS

    def patches(shape: tuple[int, ...]) -> bool:
        x = jnp.ones(shape)
        model = tp.transform(lambda x: tp.Conv2D("c", x, 2, 3))
        params, state = model.init(jax.random.key(0), x)
        # differentiated: the training table (inference may run on oneDNN instead)
        loss = jax.grad(lambda x: model.apply(params, state, x)[0].sum())
        return "conv_general_dilated" not in jax.make_jaxpr(loss)(x).pretty_print()

    on_cpu = jax.default_backend() == "cpu"
    c = PATCHES_MIN_CHANNELS["cpu"]
    most = PATCHES_MAX_POSITIONS["cpu"] // 64  # images of 8x8 that fit the position limit
    assert patches((1, 7, 7, c)) == on_cpu
    assert patches((most, 8, 8, c)) == on_cpu
    assert not patches((most + 1, 8, 8, c))  # too many positions
    assert not patches((1, 9, 9, c))  # too large a map
    assert not patches((1, 7, 7, c - 1))  # too few channels
