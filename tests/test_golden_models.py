"""Whole tensorpack-style models (tools/golden/generate.py's MODELS) against real tensorpack:
argscope + LinearWrap, nested variable scopes, activation=BNReLU, regularize_cost, reuse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from golden_replay import check_fixture, fixtures

import tpflax as tp


def model_tutorial(image):
    with tp.argscope(tp.Conv2D, filters=8, kernel_size=3, activation=jax.nn.relu):
        l1 = (
            tp.LinearWrap(image)
            .Conv2D("conv0")
            .MaxPooling("pool0", 2)
            .Conv2D("conv1", padding="SAME")
            .Conv2D("conv2", kernel_size=5)
            .FullyConnected("fc0", 16, activation=jax.nn.relu)
            .Dropout("dropout", rate=0.5)
            .jnp.multiply(0.5)
            .apply(lambda t, k: t * k, 3.0)
            .FullyConnected("fc1", units=10, activation=lambda x: x)()
        )
        with (
            tp.argscope([tp.Conv2D, tp.MaxPooling], data_format="NCHW"),
            tp.argscope(tp.Conv2D, kernel_size=1),
        ):
            l2 = (
                tp.LinearWrap(jnp.transpose(image, (0, 3, 1, 2)))
                .Conv2D("conv3", strides=2)
                .MaxPooling("pool3", 2)()
            )
    return [l1, l2]


def _resnet(image, data_format):
    if data_format == "NCHW":
        image = jnp.transpose(image, (0, 3, 1, 2))
    with (
        tp.argscope(tp.Conv2D, use_bias=False, kernel_size=3),
        tp.argscope([tp.Conv2D, tp.BatchNorm, tp.GlobalAvgPooling], data_format=data_format),
    ):
        l = tp.Conv2D("conv0", image, 8, strides=2, activation=tp.BNReLU)
        with tp.variable_scope("group0"):
            for i in range(2):
                with tp.variable_scope(f"block{i}"):
                    shortcut = l
                    l = tp.Conv2D("conv1", l, 8, activation=tp.BNReLU)
                    l = tp.Conv2D("conv2", l, 8)
                    l = tp.BatchNorm("bn", l)
                    l = jax.nn.relu(l + shortcut)
        l = tp.GlobalAvgPooling("gap", l)
        logits = tp.FullyConnected("linear", l, 5)
    wd = tp.regularize_cost(".*/W", tp.l2_regularizer(1e-2))
    return [logits, wd]


def model_reuse(x):
    with tp.variable_scope("tower"):
        a = tp.FullyConnected("fc", x, 4, activation=jax.nn.relu)
    with tp.variable_scope("tower", reuse=True):
        b = tp.FullyConnected("fc", x * 2.0, 4, activation=jax.nn.relu)
    return [a + b]


def model_regularizers(x):
    l = tp.Conv2D(
        "conv0",
        x,
        4,
        3,
        kernel_regularizer=tp.l2_regularizer(0.01),
        bias_regularizer=tp.l1_regularizer(0.1),
        activity_regularizer=tp.l1_regularizer(0.001),
    )
    l = tp.FullyConnected(
        "fc",
        l,
        3,
        activity_regularizer=tp.l2_regularizer(0.5),
        kernel_regularizer=tp.l1_regularizer(0.02),
        bias_regularizer=tp.l2_regularizer(0.3),
    )
    return [l, tp.regularize_cost_from_collection()]


def model_maxout(x):
    # The reference names its outputs as tensorpack's Maxout('maxout4', ...) would.
    a = tp.Maxout("maxout4", x, 3)
    b = tp.Maxout("maxout2", x.reshape(x.shape[0], -1), 2)
    return [a, b]


def model_renorm_2d(x):
    return [tp.BatchRenorm("renorm", x, rmax=1.5, dmax=0.5, decay=0.8)]


def model_generator(z):
    with tp.argscope(tp.Deconv2D, kernel_size=3, strides=2, activation=tp.BNReLU):
        l = (
            tp.LinearWrap(z)
            .FullyConnected("fc0", 2 * 2 * 6)
            .LayerNorm("ln0")
            .jnp.reshape((-1, 2, 2, 6))
            .Deconv2D("deconv0", 5)
            .Deconv2D("deconv1", 4, padding="VALID")()
        )
        skip = tp.FixedUnPooling("unpool", jnp.tanh(l), 2)
        up = tp.Deconv2D("deconv2", l, 3, activation=lambda t: t)
        l = (
            tp.LinearWrap(up)
            .ConcatWith([skip[:, :, :, :2], skip], 3)
            .InstanceNorm("inorm")
            .PReLU("prelu", 0.2)
            .Conv2D("conv_out", 2, 3)()
        )
    return [l]


MODELS = {
    "model_maxout": model_maxout,
    "model_renorm_2d_train": model_renorm_2d,
    "model_generator_train": model_generator,
    "model_regularizers_train": model_regularizers,
    "model_tutorial_infer": model_tutorial,
    "model_resnet_nhwc_train": lambda x: _resnet(x, "NHWC"),
    "model_resnet_nchw_train": lambda x: _resnet(x, "NCHW"),
    "model_resnet_nhwc_infer": lambda x: _resnet(x, "NHWC"),
    "model_reuse": model_reuse,
}
MODEL_FIXTURES = [fx for fx in fixtures("model_*.npz")]


def test_every_model_fixture_has_a_tpflax_model() -> None:
    assert sorted(fx.id for fx in MODEL_FIXTURES) == sorted(MODELS)


@pytest.mark.parametrize("fx", MODEL_FIXTURES, ids=lambda fx: fx.id)
def test_model_matches_tensorpack(fx) -> None:
    check_fixture(fx, MODELS[fx.id])


@pytest.mark.parametrize("fx", MODEL_FIXTURES[:2], ids=lambda fx: fx.id)
def test_model_matches_tensorpack_under_jit(fx) -> None:
    """The same numbers when init and apply are jit-compiled."""
    model = tp.transform(MODELS[fx.id])
    training = fx.spec["training"]
    x = jnp.asarray(fx.data["input"])
    init = jax.jit(model.init, static_argnames="is_training")
    params, state = init(jax.random.key(0), x, is_training=training)
    params, state, _ = tp.checkpoint.restore(fx.prefixed("var/"), params, state)
    apply = jax.jit(model.apply, static_argnames="is_training")
    outputs, _ = apply(params, state, x, is_training=training)
    from golden_replay import OUT_RTOL, assert_close

    for got, want in zip(outputs, fx.outputs(), strict=True):
        assert_close("jit output", got, want, OUT_RTOL)
