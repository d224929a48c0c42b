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


def _reused_bn(x, calls, ema_update="default", skip_last=False):
    outs = []
    for i in range(calls):
        mode = "skip" if skip_last and i == calls - 1 else ema_update
        with tp.variable_scope("d", reuse=i > 0):
            outs.append(tp.BatchNorm("bn", x * float(i + 1) + float(i), ema_update=mode))
    return outs


def _leaky(t):
    return jax.nn.leaky_relu(t, 0.2)  # tf.nn.leaky_relu's default alpha


def model_dcgan(image):
    @tp.auto_reuse_variable_scope
    def discriminator(imgs):
        with tp.argscope(tp.Conv2D, kernel_size=4, strides=2):
            return (
                tp.LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=_leaky)
                .Conv2D("conv1", 8)
                .BatchNorm("bn1")
                .apply(_leaky)
                .FullyConnected("fct", 1)()
            )

    z = image.reshape(image.shape[0], -1)[:, :6]
    with tp.variable_scope("gen"):
        l = tp.FullyConnected("fc0", z, 2 * 2 * 8, activation=lambda t: t)
        l = tp.BNReLU(l.reshape(-1, 2, 2, 8))
        with tp.argscope(tp.Conv2DTranspose, activation=tp.BNReLU, kernel_size=4, strides=2):
            l = tp.Conv2DTranspose("deconv1", l, 4)
            l = tp.Conv2DTranspose("deconv2", l, 1, activation=lambda t: t)
        fake = jnp.tanh(l)
    with tp.variable_scope("discrim"):
        pos = discriminator(image)
        neg = discriminator(fake)
    return [pos, neg, fake]


def model_pix2pix(x):
    def bn_lrelu(t):
        return _leaky(tp.BatchNorm("bn", t))

    @tp.auto_reuse_variable_scope
    def discriminator(inputs, outputs):
        l = jnp.concatenate([inputs, outputs], 3)
        with tp.argscope(tp.Conv2D, kernel_size=4, strides=2, activation=bn_lrelu):
            return (
                tp.LinearWrap(l)
                .Conv2D("conv0", 4, activation=_leaky)
                .Conv2D("conv1", 8)
                .Conv2D("conv2", 8, strides=1, padding="VALID")
                .Conv2D("convlast", 1, kernel_size=1, strides=1, activation=lambda t: t)()
            )

    inputs, outputs = x[..., :1], x[..., 1:]
    with tp.variable_scope("gen"), tp.argscope(tp.BatchNorm, training=True):
        with tp.argscope(tp.Conv2D, kernel_size=4, strides=2, activation=bn_lrelu):
            e1 = tp.Conv2D("conv1", inputs, 4, activation=_leaky)
            e2 = tp.Conv2D("conv2", e1, 8)
            e3 = tp.Conv2D("conv3", e2, 8)
            e4 = tp.Conv2D("conv4", e3, 8, activation=tp.BNReLU)  # 1x1
        with tp.argscope(tp.Conv2DTranspose, activation=tp.BNReLU, kernel_size=4, strides=2):
            fake = (
                tp.LinearWrap(e4)
                .Conv2DTranspose("deconv1", 8)
                .ConcatWith(e3, 3)
                .Conv2DTranspose("deconv2", 8)
                .ConcatWith(e2, 3)
                .Conv2DTranspose("deconv3", 4)
                .ConcatWith(e1, 3)
                .Conv2DTranspose("deconv4", 1, activation=jnp.tanh)()
            )
    with tp.variable_scope("discrim"):
        real_pred = discriminator(inputs, outputs)
        fake_pred = discriminator(inputs, fake)
    return [real_pred, fake_pred, fake]


def model_fpn_rpn_head(x):
    @tp.layer_register(log_shape=True)
    @tp.auto_reuse_variable_scope
    def rpn_head(featuremap, channel, num_anchors):
        with tp.argscope(tp.Conv2D, data_format="channels_first"):
            hidden = tp.Conv2D("conv0", featuremap, channel, 3, activation=jax.nn.relu)
            label_logits = tp.Conv2D("class", hidden, num_anchors, 1)
            box_logits = tp.Conv2D("box", hidden, 4 * num_anchors, 1)
        label_logits = jnp.squeeze(label_logits.transpose(0, 2, 3, 1), 0)
        _, _, h, w = box_logits.shape
        box_logits = box_logits.transpose(0, 2, 3, 1).reshape(h, w, num_anchors, 4)
        return label_logits, box_logits

    with tp.argscope(tp.Conv2D, data_format="channels_first", kernel_size=3, strides=2):
        p3 = tp.Conv2D("fpn/lat3", x, 4)
        p4 = tp.Conv2D("fpn/lat4", p3, 4)
    outs = []
    for p in (x, p3, p4):
        label, box = rpn_head("rpn", p, 4, 2)
        outs += [label, box]
    return outs


def model_discrim_twice(image):
    @tp.auto_reuse_variable_scope
    def discriminator(imgs):
        with tp.argscope(tp.Conv2D, kernel_size=4, strides=2):
            return (
                tp.LinearWrap(imgs).Conv2D("conv0", 4, activation=_leaky).FullyConnected("fct", 1)()
            )

    fake = jnp.tanh(image * 0.5)
    with tp.variable_scope("discrim"):
        real = discriminator(image)
        fake = discriminator(fake)
    with tp.variable_scope("discrim", reuse=True):
        third = discriminator(image * 2.0)
    return [real, fake, third]


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
    "model_bn_reuse2_4d_train": lambda x: _reused_bn(x, 2),
    "model_bn_reuse3_4d_train": lambda x: _reused_bn(x, 3),
    "model_bn_reuse2_2d_train": lambda x: _reused_bn(x, 2),
    "model_bn_reuse3_2d_train": lambda x: _reused_bn(x, 3),
    "model_bn_reuse2_internal_train": lambda x: _reused_bn(x, 2, ema_update="internal"),
    "model_bn_reuse3_skip_last_train": lambda x: _reused_bn(x, 3, skip_last=True),
    "model_dcgan_train": model_dcgan,
    "model_pix2pix_train": model_pix2pix,
    "model_fpn_rpn_head_train": model_fpn_rpn_head,
    "model_discrim_twice": model_discrim_twice,
}
MODEL_FIXTURES = [fx for fx in fixtures("model_*.npz")]


def test_every_model_fixture_has_a_tpflax_model() -> None:
    assert sorted(fx.id for fx in MODEL_FIXTURES) == sorted(MODELS)


# A hand port whose tpflax.compat port (tests/test_compat_ports.py) replays the same fixture
# in make test runs in make test-slow (the 5-minute budget): both go through the same layers.
_COMPAT_TWINS = {
    "model_tutorial_infer",
    "model_reuse",
    "model_regularizers_train",
    "model_maxout",
    "model_renorm_2d_train",
    "model_generator_train",
    "model_fpn_rpn_head_train",
    "model_discrim_twice",
    "model_dcgan_train",
    "model_pix2pix_train",
}
HAND_CASES = [
    pytest.param(fx, marks=pytest.mark.slow) if fx.id in _COMPAT_TWINS else fx
    for fx in MODEL_FIXTURES
]


@pytest.mark.parametrize("fx", HAND_CASES, ids=lambda fx: fx.id)
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


def test_regularization_is_captured_by_tensorpack_name() -> None:
    """tensorpack names regularize_cost_from_collection's result `regularize_cost` (its
    `name=`, as regularize_cost's): the fixture's second output name, fetched by capture=."""
    from golden_replay import OUT_RTOL, assert_close

    (fx,) = [f for f in MODEL_FIXTURES if f.id == "model_regularizers_train"]
    name = fx.output_names()[1]
    model = tp.transform(MODELS[fx.id])
    x = jnp.asarray(fx.data["input"])
    params, state = model.init(jax.random.key(0), x, is_training=True)
    params, state, _ = tp.checkpoint.restore(fx.prefixed("var/"), params, state)
    _, _, captured = model.apply(params, state, x, is_training=True, capture=[name])
    assert_close(name, captured[name], fx.outputs()[1], OUT_RTOL)
