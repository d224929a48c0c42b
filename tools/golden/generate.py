"""Writes golden fixtures from real tensorpack 0.11 (TensorFlow 2.21, graph mode, CPU).

Run by `make golden` in `.venv-golden` (see tools/golden/requirements.txt). For every case in
cases.py and every model below it builds the graph under tensorpack's TowerContext, fills the
variables from a seeded RNG (unless the case pins an initializer), runs one step and saves:

    spec                JSON: the case, replayed by the tests through tpflax's public API
    input, cotangent_i  the input and one cotangent per output (loss = sum(out_i * cot_i))
    output_i            the outputs
    output_name_i       tensorpack's tensor name of each output (e.g. conv0/output)
    capture/<name>      tensors fetched by their TensorFlow name (spec["capture"])
    var/<name>          every variable before the step (tensorpack names)
    trainable           names of trainable variables
    grad/input, grad/var/<name>   d loss / d input and d loss / d trainable variable
    state/<name>        non-trainable variables after the step (EMA updates applied)
    race/runs, race/same  models that reuse a BatchNorm: how many of `race/runs` real
                        one-step runs gave `state/` (to float rounding); TensorFlow does not
                        order the updates of a reused layer (see reused_bn_updates)

Nothing in the fixtures comes from tpflax.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
import tensorpack
from tensorpack import models as tpm
from tensorpack.tfutils.argscope import argscope
from tensorpack.tfutils.tower import TowerContext
from tensorpack.utils.naming import MOVING_SUMMARY_OPS_KEY

sys.path.insert(0, os.path.dirname(__file__))
from cases import CASES

tf1 = tf.compat.v1
ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.nn.tanh, "BNReLU": tpm.BNReLU}


def decode(value):
    if isinstance(value, str) and value in ACTIVATIONS:
        return ACTIVATIONS[value]
    if isinstance(value, dict) and set(value) == {"constant"}:
        return tf1.constant_initializer(value["constant"])
    if isinstance(value, dict) and set(value) == {"array"}:
        return np.asarray(value["array"], "float32")
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    return value


def random_value(rng, name, shape):
    """Seeded values for a variable: positive for scales and variances."""
    base = name.split("/")[-1] if not name.endswith("/EMA") else name.split("/")[-2]
    if base in ("gamma", "variance", "moving_variance", "moving_stddev", "renorm_stddev"):
        return rng.uniform(0.5, 1.5, shape).astype("float32")
    if base == "W":
        fan_in = max(1, int(np.prod(shape[:-1])))
        return (rng.randn(*shape) / np.sqrt(fan_in)).astype("float32")
    return np.asarray(rng.randn(*shape) * 0.3, "float32")


# ------------------------------------------------------------------------ models
def model_tutorial(image):
    """The seed tutorial's argscope + LinearWrap example, at a small size."""
    from tensorpack import Conv2D, LinearWrap, MaxPooling

    with argscope(Conv2D, filters=8, kernel_size=3, activation=tf.nn.relu):
        l1 = (
            LinearWrap(image)
            .Conv2D("conv0")
            .MaxPooling("pool0", 2)
            .Conv2D("conv1", padding="SAME")
            .Conv2D("conv2", kernel_size=5)
            .FullyConnected("fc0", 16, activation=tf.nn.relu)
            .Dropout("dropout", rate=0.5)
            .tf.multiply(0.5)
            .apply(lambda t, k: t * k, 3.0)
            .FullyConnected("fc1", units=10, activation=tf.identity)()
        )
        with argscope([Conv2D, MaxPooling], data_format="NCHW"), argscope(Conv2D, kernel_size=1):
            l2 = (
                LinearWrap(tf.transpose(image, [0, 3, 1, 2]))
                .Conv2D("conv3", strides=2)
                .MaxPooling("pool3", 2)()
            )
    return [l1, l2]


def _resnet(image, data_format):
    from tensorpack import (
        BatchNorm,
        BNReLU,
        Conv2D,
        FullyConnected,
        GlobalAvgPooling,
        l2_regularizer,
        regularize_cost,
    )

    if data_format == "NCHW":
        image = tf.transpose(image, [0, 3, 1, 2])
    with (
        argscope(Conv2D, use_bias=False, kernel_size=3),
        argscope([Conv2D, BatchNorm, GlobalAvgPooling], data_format=data_format),
    ):
        l = Conv2D("conv0", image, 8, strides=2, activation=BNReLU)
        with tf1.variable_scope("group0"):
            for i in range(2):
                with tf1.variable_scope(f"block{i}"):
                    shortcut = l
                    l = Conv2D("conv1", l, 8, activation=BNReLU)
                    l = Conv2D("conv2", l, 8)
                    l = BatchNorm("bn", l)
                    l = tf.nn.relu(l + shortcut)
        l = GlobalAvgPooling("gap", l)
        logits = FullyConnected("linear", l, 5)
    wd = regularize_cost(".*/W", l2_regularizer(1e-2))
    return [logits, wd]


def model_resnet_nhwc(image):
    return _resnet(image, "NHWC")


def model_resnet_nchw(image):
    return _resnet(image, "NCHW")


def model_reuse(x):
    from tensorpack import FullyConnected

    with tf1.variable_scope("tower"):
        a = FullyConnected("fc", x, 4, activation=tf.nn.relu)
    with tf1.variable_scope("tower", reuse=True):
        b = FullyConnected("fc", x * 2.0, 4, activation=tf.nn.relu)
    return [a + b]


def model_regularizers(x):
    """The layers' kernel/bias/activity regularizers, summed by the collection."""
    from tensorpack import Conv2D, FullyConnected, l1_regularizer, l2_regularizer
    from tensorpack.models.regularize import regularize_cost_from_collection

    l = Conv2D(
        "conv0",
        x,
        4,
        3,
        kernel_regularizer=l2_regularizer(0.01),
        bias_regularizer=l1_regularizer(0.1),
        activity_regularizer=l1_regularizer(0.001),
    )
    l = FullyConnected(
        "fc",
        l,
        3,
        activity_regularizer=l2_regularizer(0.5),
        kernel_regularizer=l1_regularizer(0.02),
        bias_regularizer=l2_regularizer(0.3),
    )
    return [l, regularize_cost_from_collection()]


def model_maxout(x):
    """tensorpack 0.11's Maxout fails on every input (`ch / num_unit` is a float shape). This
    is its code with the one fix its docstring implies (`//`), the reference for tpflax."""

    def maxout(t, num_unit):
        shape = t.shape.as_list()
        ch = shape[-1]
        if len(shape) == 4:
            t = tf.reshape(t, [-1, shape[1], shape[2], ch // num_unit, num_unit])
        else:
            t = tf.reshape(t, [-1, ch // num_unit, num_unit])
        return tf.reduce_max(t, len(shape), name="output")

    with tf1.variable_scope("maxout4"):
        a = maxout(x, 3)
    with tf1.variable_scope("maxout2"):
        b = maxout(tf.reshape(x, [x.shape[0], -1]), 2)
    return [a, b]


def model_renorm_2d(x):
    """tensorpack 0.11's BatchRenorm fails on 2-D inputs (it squeezes axes [1, 2] that a
    2-D tensor lacks); its docstring promises NC. The reference runs the same layer on the
    [N, 1, 1, C] view, which has the same statistics."""
    from tensorpack import BatchRenorm

    n, c = x.shape.as_list()
    y = BatchRenorm("renorm", tf.reshape(x, [n, 1, 1, c]), rmax=1.5, dmax=0.5, decay=0.8)
    return [tf.reshape(y, [n, c])]


def model_generator(z):
    """A small DCGAN/pix2pix-style net: Deconv2D, ConcatWith, LayerNorm, InstanceNorm, PReLU,
    FixedUnPooling and BNReLU under argscope and LinearWrap."""
    from tensorpack import (
        BNReLU,
        Deconv2D,
        FixedUnPooling,
        LinearWrap,
    )

    with argscope(Deconv2D, kernel_size=3, strides=2, activation=BNReLU):
        l = (
            LinearWrap(z)
            .FullyConnected("fc0", 2 * 2 * 6)
            .LayerNorm("ln0")
            .tf.reshape([-1, 2, 2, 6])
            .Deconv2D("deconv0", 5)
            .Deconv2D("deconv1", 4, padding="VALID")()
        )
        skip = FixedUnPooling("unpool", tf.nn.tanh(l), 2)
        up = Deconv2D("deconv2", l, 3, activation=tf.identity)
        l = (
            LinearWrap(up)
            .ConcatWith([skip[:, :, :, :2], skip], 3)
            .InstanceNorm("inorm")
            .PReLU("prelu", 0.2)
            .Conv2D("conv_out", 2, 3)()
        )
    return [l]


def model_fpn_rpn_head(x):
    """FasterRCNN's FPN RPN head (examples/FasterRCNN/modeling/model_rpn.py, model_fpn.py) at a
    small size: a registered layer over auto_reuse_variable_scope, called as 'rpn' on every
    level (NCHW), so the levels share rpn/*; the second and third calls' outputs are named
    rpn_1/..., rpn_2/... by TensorFlow."""
    from tensorpack import Conv2D
    from tensorpack.models.registry import layer_register
    from tensorpack.tfutils.scope_utils import auto_reuse_variable_scope

    @layer_register(log_shape=True)
    @auto_reuse_variable_scope
    def rpn_head(featuremap, channel, num_anchors):
        with argscope(Conv2D, data_format="channels_first"):
            hidden = Conv2D("conv0", featuremap, channel, 3, activation=tf.nn.relu)
            label_logits = Conv2D("class", hidden, num_anchors, 1)
            box_logits = Conv2D("box", hidden, 4 * num_anchors, 1)
            label_logits = tf.squeeze(tf.transpose(label_logits, [0, 2, 3, 1]), 0)
            shp = tf.shape(box_logits)
            box_logits = tf.transpose(box_logits, [0, 2, 3, 1])
            box_logits = tf.reshape(box_logits, tf.stack([shp[2], shp[3], num_anchors, 4]))
        return label_logits, box_logits

    with argscope(Conv2D, data_format="channels_first", kernel_size=3, strides=2):
        p3 = Conv2D("fpn/lat3", x, 4)
        p4 = Conv2D("fpn/lat4", p3, 4)
    outs = []
    for p in (x, p3, p4):
        label, box = rpn_head("rpn", p, 4, 2)
        outs += [label, box]
    return outs


def model_discrim_twice(image):
    """InfoGAN's pattern (examples/GAN/InfoGAN-mnist.py): an auto-reused discriminator called
    on real and on fake images in one scope, then once more under reuse=True; TensorFlow names
    the calls' layer outputs discrim/fct/output, discrim/fct_1/output, discrim_1/fct/output."""
    from tensorpack import Conv2D, LinearWrap
    from tensorpack.tfutils.scope_utils import auto_reuse_variable_scope

    @auto_reuse_variable_scope
    def discriminator(imgs):
        with argscope(Conv2D, kernel_size=4, strides=2):
            return (
                LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=tf.nn.leaky_relu)
                .FullyConnected("fct", 1)()
            )

    fake = tf.tanh(image * 0.5)
    with tf1.variable_scope("discrim"):
        real = discriminator(image)
        fake = discriminator(fake)
    with tf1.variable_scope("discrim", reuse=True):
        third = discriminator(image * 2.0)
    return [real, fake, third]


def model_compat_scopes(x):
    """TF 1.x scopes as tensorpack model code writes them (tpflax.compat's port is the same
    code): get_variable under variable_scope, reuse=True and AUTO_REUSE, name_scope and
    identity names, a custom getter over a tensorpack layer, a scope object re-entered."""
    from tensorpack import FullyConnected
    from tensorpack.tfutils.scope_utils import under_name_scope

    def doubled_kernels(getter, name, *args, **kwargs):
        v = getter(name, *args, **kwargs)
        return v * 2.0 if name.endswith("/W") else v

    with tf1.variable_scope("block"):
        w = tf1.get_variable("w", [3], initializer=tf1.constant_initializer(0.5))
        h = tf.identity(x * w, name="proj")
        with tf1.name_scope("viz"):
            twice = tf.identity(h * 2.0, name="twice")
    with tf1.variable_scope("block", reuse=True):
        again = tf.identity(x * tf1.get_variable("w") + 1.0, name="proj")
    with tf1.variable_scope("auto", reuse=tf1.AUTO_REUSE):
        a = tf1.get_variable("a", [3])
        b = tf1.get_variable("a", [3])
    with tf1.variable_scope("getter", custom_getter=doubled_kernels):
        fc = FullyConnected("fc", h, 2)
    with tf1.variable_scope("outer") as outer:
        tf1.get_variable("c", [3], trainable=False)
    with tf1.variable_scope(outer, reuse=True):
        d = tf.identity(tf1.get_variable("c") * a, name="reenter")

    @under_name_scope()
    def viz(t):
        return tf.identity(t * 3.0, name="scaled")

    return [twice, again + a + b, fc, d, viz(h) + viz(twice)]


def model_compat_summaries(x):
    """tensorpack's add_moving_summary on named costs, as its examples write them (the
    zero-debiased EMA it keeps in local variables, after one training step)."""
    from tensorpack import FullyConnected
    from tensorpack.tfutils.summary import add_moving_summary

    logits = FullyConnected("fc", x, 3)
    cost = tf.reduce_mean(tf.square(logits), name="cost")
    wrong = tf.reduce_mean(tf.cast(tf.greater(logits, 0.0), tf.float32), name="train_error")
    add_moving_summary(cost, wrong)
    return [cost, wrong]


def model_compat_extras(x):
    """Tensorpack's tfutils helpers and TF's collections as model code uses them: DoReFa's
    remap_variables reading v.op.name, a regularizer scope over tensorpack layers and
    get_variable, tf.trainable_variables(scope), tf.losses.get_regularization_loss,
    add_param_summary and add_activation_summary, static shapes through get_shape()."""
    from tensorpack import BatchNorm, Conv2D, FullyConnected, l2_regularizer
    from tensorpack.tfutils import symbolic_functions as symbf
    from tensorpack.tfutils.summary import add_activation_summary, add_param_summary
    from tensorpack.tfutils.varreplace import remap_variables

    def binarize(v):
        name = v.op.name
        if "conv0" in name or not name.endswith("W"):
            return v
        return tf.sign(v) * tf.reduce_mean(tf.abs(v))

    x = tf1.placeholder_with_default(x, [2, 6, 6, 3], name="image")
    with remap_variables(binarize):
        h = Conv2D("conv0", x, 4, 3, activation=tf.nn.relu)
        h = Conv2D("conv1", h, 4, 3)
    h = BatchNorm("bn", h)
    shape = h.get_shape().as_list()
    h = tf.reshape(h, [-1, shape[1] * shape[2] * shape[3]])
    with tf1.variable_scope("head", regularizer=l2_regularizer(1e-2)):
        h = FullyConnected("fc", h, 5, activation=tf.nn.relu)
        w = tf1.get_variable("w", [5, 3])
        b = tf1.get_variable(
            "b", [3], initializer=tf1.zeros_initializer(), regularizer=lambda v: tf.reduce_sum(v)
        )
        logits = tf.identity(tf.matmul(h, w) + b, name="logits")
    add_activation_summary(logits)
    add_param_summary((".*/W", ["histogram", "rms"]), ("bn/.*", ["mean", "sparsity"]))
    conv_l2 = tf.add_n([tf.nn.l2_loss(v) for v in tf1.trainable_variables("conv")])
    reg = tf1.losses.get_regularization_loss()
    with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
        cost = tf.reduce_mean(tf.square(logits), name="cost")
    (clipped, _), norm = tf.clip_by_global_norm([logits, h], 1.0)
    rows = tf.map_fn(lambda r: tf.reduce_sum(r * r), tf1.check_numerics(clipped, "clipped"))
    err = symbf.rms(logits - 0.5, name="err_rms")
    return [cost + 1e-3 * conv_l2 + reg, logits, rows * norm, err * symbf.rms(h)]


# ---------------------------------------------------- reused BatchNorm (GANs call D twice)
def _reused_bn(x, calls, ema_update="default", skip_last=False):
    """One BatchNorm called `calls` times under reuse=True on different inputs."""
    from tensorpack import BatchNorm

    outs = []
    for i in range(calls):
        mode = "skip" if skip_last and i == calls - 1 else ema_update
        with tf1.variable_scope("d", reuse=i > 0):
            y = BatchNorm("bn", x * float(i + 1) + float(i), ema_update=mode)
        outs.append(tf.identity(y, name=f"out{i}"))
    return outs


def _leaky(t, name=None):
    return tf.nn.leaky_relu(t, alpha=0.2, name=name)


def model_dcgan(image):
    """tensorpack's examples/GAN/DCGAN.py at a small size: the discriminator, with
    auto_reuse_variable_scope, runs on the real and on the generated images."""
    from tensorpack import BNReLU, Conv2D, Conv2DTranspose, FullyConnected, LinearWrap
    from tensorpack.tfutils.scope_utils import auto_reuse_variable_scope

    @auto_reuse_variable_scope
    def discriminator(imgs):
        with argscope(Conv2D, kernel_size=4, strides=2):
            return (
                LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=tf.nn.leaky_relu)
                .Conv2D("conv1", 8)
                .BatchNorm("bn1")
                .tf.nn.leaky_relu()
                .FullyConnected("fct", 1)()
            )

    z = tf.reshape(image, [image.shape[0], -1])[:, :6]  # z comes from the input on both sides
    with tf1.variable_scope("gen"):
        l = FullyConnected("fc0", z, 2 * 2 * 8, activation=tf.identity)
        l = BNReLU(tf.reshape(l, [-1, 2, 2, 8]))
        with argscope(Conv2DTranspose, activation=BNReLU, kernel_size=4, strides=2):
            l = Conv2DTranspose("deconv1", l, 4)
            l = Conv2DTranspose("deconv2", l, 1, activation=tf.identity)
        fake = tf.tanh(l, name="gen")
    with tf1.variable_scope("discrim"):
        pos = discriminator(image)
        neg = discriminator(fake)
    return [tf.identity(pos, "pos"), tf.identity(neg, "neg"), fake]


def model_pix2pix(x):
    """tensorpack's examples/GAN/Image2Image.py at a small size, batch 1: a U-Net generator
    whose 1x1 bottleneck BatchNorm runs on one value per channel, and a discriminator run
    on the real and on the generated pair."""
    from tensorpack import BatchNorm, BNReLU, Conv2D, Conv2DTranspose, LinearWrap
    from tensorpack.tfutils.scope_utils import auto_reuse_variable_scope

    def bn_lrelu(t, name=None):
        return _leaky(BatchNorm("bn", t), name=name)

    @auto_reuse_variable_scope
    def discriminator(inputs, outputs):
        l = tf.concat([inputs, outputs], 3)
        with argscope(Conv2D, kernel_size=4, strides=2, activation=bn_lrelu):
            return (
                LinearWrap(l)
                .Conv2D("conv0", 4, activation=_leaky)
                .Conv2D("conv1", 8)
                .Conv2D("conv2", 8, strides=1, padding="VALID")
                .Conv2D("convlast", 1, kernel_size=1, strides=1, activation=tf.identity)()
            )

    inputs, outputs = x[..., :1], x[..., 1:]
    with tf1.variable_scope("gen"), argscope(BatchNorm, training=True):
        with argscope(Conv2D, kernel_size=4, strides=2, activation=bn_lrelu):
            e1 = Conv2D("conv1", inputs, 4, activation=_leaky)
            e2 = Conv2D("conv2", e1, 8)
            e3 = Conv2D("conv3", e2, 8)
            e4 = Conv2D("conv4", e3, 8, activation=BNReLU)  # 1x1
        with argscope(Conv2DTranspose, activation=BNReLU, kernel_size=4, strides=2):
            fake = (
                LinearWrap(e4)
                .Conv2DTranspose("deconv1", 8)
                .ConcatWith(e3, 3)
                .Conv2DTranspose("deconv2", 8)
                .ConcatWith(e2, 3)
                .Conv2DTranspose("deconv3", 4)
                .ConcatWith(e1, 3)
                .Conv2DTranspose("deconv4", 1, activation=tf.tanh)()
            )
    with tf1.variable_scope("discrim"):
        real_pred = discriminator(inputs, outputs)
        fake_pred = discriminator(inputs, fake)
    return [tf.identity(real_pred, "real_pred"), tf.identity(fake_pred, "fake_pred"), fake]


MODELS = {
    "model_regularizers_train": (model_regularizers, [2, 5, 5, 2], True),
    "model_tutorial_infer": (model_tutorial, [2, 12, 12, 1], False),
    "model_resnet_nhwc_train": (model_resnet_nhwc, [4, 8, 8, 3], True),
    "model_resnet_nchw_train": (model_resnet_nchw, [4, 8, 8, 3], True),
    "model_resnet_nhwc_infer": (model_resnet_nhwc, [4, 8, 8, 3], False),
    "model_reuse": (model_reuse, [3, 5], False),
    "model_maxout": (model_maxout, [2, 3, 2, 6], False),
    "model_renorm_2d_train": (model_renorm_2d, [6, 3], True),
    "model_generator_train": (model_generator, [3, 4], True),
    "model_bn_reuse2_4d_train": (lambda x: _reused_bn(x, 2), [4, 3, 3, 2], True),
    "model_bn_reuse3_4d_train": (lambda x: _reused_bn(x, 3), [4, 3, 3, 2], True),
    "model_bn_reuse2_2d_train": (lambda x: _reused_bn(x, 2), [6, 3], True),
    "model_bn_reuse3_2d_train": (lambda x: _reused_bn(x, 3), [6, 3], True),
    "model_bn_reuse2_internal_train": (
        lambda x: _reused_bn(x, 2, ema_update="internal"),
        [4, 3, 3, 2],
        True,
    ),
    "model_bn_reuse3_skip_last_train": (lambda x: _reused_bn(x, 3, skip_last=True), [6, 3], True),
    "model_dcgan_train": (model_dcgan, [4, 8, 8, 1], True),
    "model_pix2pix_train": (model_pix2pix, [1, 16, 16, 2], True),
    "model_fpn_rpn_head_train": (model_fpn_rpn_head, [1, 4, 8, 8], True),
    "model_discrim_twice": (model_discrim_twice, [2, 8, 8, 1], False),
    "compat_scopes_train": (model_compat_scopes, [2, 3], True),
    "compat_summaries_train": (model_compat_summaries, [4, 5], True),
    "compat_extras_train": (model_compat_extras, [2, 6, 6, 3], True),
}
# Models that call a BatchNorm more than once in a training step (see reused_bn_updates).
# Layer outputs fetched by TensorFlow's name: a reused layer's calls are named x, x_1, ...
CAPTURE = {
    "model_fpn_rpn_head_train": [
        "fpn/lat3/output",
        "rpn/conv0/output",
        "rpn_1/conv0/output",
        "rpn_2/conv0/output",
        "rpn_2/class/output",
    ],
    "compat_scopes_train": [
        "block/proj",
        "block/viz/twice",
        "block_1/proj",
        "getter/fc/output",
        "outer_1/reenter",
        "viz/scaled",
        "viz_1/scaled",
    ],
    "compat_extras_train": ["image", "err_rms", "head/logits"],
    "model_discrim_twice": [
        "discrim/conv0/output",
        "discrim/conv0_1/output",
        "discrim/fct/output",
        "discrim/fct_1/output",
        "discrim_1/conv0/output",
        "discrim_1/fct/output",
    ],
}
# Models whose tf.summary values (tags and values, parsed from merge_all) are stored too.
SUMMARIES = {"compat_extras_train"}
REUSED_BN = {m for m in MODELS if "bn_reuse" in m} | {"model_dcgan_train", "model_pix2pix_train"}
RACE_RUNS = 10


# ------------------------------------------------------------------------ runner
def build_layer_case(spec, x):
    layer = getattr(tpm, spec["layer"])
    args = [decode(a) for a in spec["args"]]
    kwargs = {k: decode(v) for k, v in spec["kwargs"].items()}

    def call():
        if spec["name"] is None:
            return layer(x, *args, **kwargs)
        return layer(spec["name"], x, *args, **kwargs)

    def with_scopes(scopes):
        if not scopes:
            return call()
        names, kw = scopes[0]
        with argscope(
            [getattr(tpm, n) for n in names.split(",")], **{k: decode(v) for k, v in kw.items()}
        ):
            return with_scopes(scopes[1:])

    if spec["scope"]:
        with tf1.variable_scope(spec["scope"]):
            return [with_scopes(spec["argscope"])]
    return [with_scopes(spec["argscope"])]


def as_f32(value):
    """Fixtures store float32 (bfloat16 has no NumPy dtype); `dtype/<name>` keeps the truth."""
    value = np.asarray(value)
    return value.astype("float32") if value.dtype.kind in "fV" else value


def ops_run_by(fetches):
    """The ops a ``session.run(fetches)`` executes, in graph (creation) order: everything
    the fetches reach through inputs and control inputs (an ``ema_update='skip'`` call's
    update op exists in the graph but is reached by nothing)."""
    todo = [t.op if isinstance(t, tf.Tensor) else t for t in tf.nest.flatten(fetches)]
    seen = set()
    while todo:
        op = todo.pop()
        if op in seen:
            continue
        seen.add(op)
        todo.extend(t.op for t in op.inputs)
        todo.extend(op.control_inputs)
    return [op for op in tf1.get_default_graph().get_operations() if op in seen]


def reused_bn_updates(sess, variables, start, feed, step):
    """The EMA after one step of a model that reuses a BatchNorm, made deterministic.

    Every call of a reused BatchNorm adds its own ``AssignSubVariableOp`` (to UPDATE_OPS, or
    under control dependencies with ``ema_update='internal'``), and TensorFlow runs them in no
    fixed order: usually every update reads the variable before any writes it, sometimes one
    runs after another. This computes what the usual outcome is, with TensorFlow's own ops:
    every delta tensor is evaluated from the start values (nothing is assigned), then each
    AssignSubVariableOp runs once, in the order the calls were made, with its delta fed.

    Returns:
        ``({name: value after the step}, number of RACE_RUNS real steps that gave it)``.
    """
    subs = [op for op in ops_run_by(step) if op.type == "AssignSubVariableOp"]

    def reset():
        for v in variables:
            v.load(start[v.op.name], sess)

    reset()
    deltas = sess.run([op.inputs[1] for op in subs], feed)
    reset()
    for op, delta in zip(subs, deltas, strict=True):
        sess.run(op, {**feed, op.inputs[1]: delta})
    result = {v.op.name: sess.run(v) for v in variables}
    same = 0
    for _ in range(RACE_RUNS):
        reset()
        sess.run(step, feed)
        # the same updates, added in any order (float rounding aside)
        same += all(
            np.allclose(sess.run(v), result[v.op.name], rtol=1e-6, atol=1e-7) for v in variables
        )
    return result, same


def parse_summaries(serialized):
    """``summary/scalar/<tag>`` and ``summary/histogram/<tag>`` (min, max, num, sum,
    sum_squares) from a serialized ``Summary``."""
    from tensorflow.core.framework import summary_pb2

    proto = summary_pb2.Summary()
    proto.ParseFromString(serialized)
    out = {}
    for value in proto.value:
        if value.HasField("histo"):
            h = value.histo
            stats = [h.min, h.max, h.num, h.sum, h.sum_squares]
            out[f"summary/histogram/{value.tag}"] = np.asarray(stats, np.float64)
        else:
            out[f"summary/scalar/{value.tag}"] = np.asarray(value.simple_value, np.float32)
    return out


def run(spec, builder, out_dir):
    tf1.reset_default_graph()
    rng = np.random.RandomState(spec.get("seed", 0))
    shape = spec["input_shape"]
    dtype = tf.as_dtype(spec.get("dtype", "float32"))
    np_dtype = dtype.as_numpy_dtype
    x_val = rng.randn(*shape) * spec.get("input_scale", 1.0) + spec.get("input_shift", 0.0)
    if spec.get("input_ties"):
        x_val = np.maximum(np.round(x_val), 0.0)
    x_val = x_val.astype("float32").astype(np_dtype)
    x = tf1.placeholder(dtype, shape, name="input")
    with TowerContext("", is_training=spec["training"]):
        outputs = builder(x)
    # tensorpack keeps add_moving_summary's EMA in local variables, updated by the
    # MOVING_SUMMARY_OPS its trainer runs with every step; tpflax keeps them in state
    all_vars = tf1.global_variables() + tf1.local_variables()
    trainable = tf1.trainable_variables()
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    update_ops += tf1.get_collection(MOVING_SUMMARY_OPS_KEY)
    # Cotangents are rounded to each output's dtype, so both sides use the same values.
    cots = [
        np.asarray(rng.randn(*o.shape.as_list()), "float32").astype(o.dtype.as_numpy_dtype)
        for o in outputs
    ]
    loss = tf.add_n(
        [tf.reduce_sum(tf.cast(o * c, tf.float32)) for o, c in zip(outputs, cots, strict=True)]
    )
    grads = tf.gradients(loss, [x, *trainable])
    record = {"spec": np.array(json.dumps(spec)), "input": as_f32(x_val)}
    with tf1.Session() as sess:
        sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
        if not spec.get("keep_init", False):
            for v in tf1.global_variables():  # local ones (moving summaries) start at zero
                value = random_value(rng, v.op.name, v.shape.as_list())
                v.load(value.astype(v.dtype.base_dtype.as_numpy_dtype), sess)
        start = {v.op.name: sess.run(v) for v in all_vars}
        for v in all_vars:
            record[f"var/{v.op.name}"] = as_f32(start[v.op.name])
            record[f"dtype/{v.op.name}"] = np.array(v.dtype.base_dtype.name)
        graph = tf1.get_default_graph()
        captures = [graph.get_tensor_by_name(f"{n}:0") for n in spec.get("capture", [])]
        summaries = tf1.summary.merge_all() if spec.get("summaries") else tf.constant(b"")
        fetched = sess.run([outputs, grads, update_ops, captures, summaries], {x: x_val})
        out_vals, grad_vals, _, capture_vals, summary_proto = fetched
        if spec.get("summaries"):
            record.update(parse_summaries(summary_proto))
        for name, value in zip(spec.get("capture", []), capture_vals, strict=True):
            record[f"capture/{name}"] = as_f32(value)
        after = {v.op.name: sess.run(v) for v in all_vars}
        if spec.get("reused_bn"):
            after, same = reused_bn_updates(
                sess, all_vars, start, {x: x_val}, [outputs, update_ops]
            )
            record["race/runs"], record["race/same"] = np.array(RACE_RUNS), np.array(same)
            print(f"  {spec['id']}: {same} of {RACE_RUNS} real steps gave this EMA")
        for v in all_vars:
            if v not in trainable:
                record[f"state/{v.op.name}"] = as_f32(after[v.op.name])
    for i, (o, val, c) in enumerate(zip(outputs, out_vals, cots, strict=True)):
        record[f"output_{i}"] = as_f32(val)
        record[f"output_dtype_{i}"] = np.array(o.dtype.name)
        record[f"cotangent_{i}"] = as_f32(c)
        record[f"output_name_{i}"] = np.array(o.name.rsplit(":", 1)[0])
    record["grad/input"] = as_f32(grad_vals[0])
    for v, g in zip(trainable, grad_vals[1:], strict=True):
        if g is not None:
            record[f"grad/var/{v.op.name}"] = as_f32(g)
    record["trainable"] = np.array([v.op.name for v in trainable] or [""])
    np.savez_compressed(os.path.join(out_dir, spec["id"] + ".npz"), **record)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden")
    parser.add_argument("--only", default=None, help="substrings of case ids to run, a,b,...")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    todo = [(c, lambda x, c=c: build_layer_case(c, x)) for c in CASES]
    for mid, (fn, shape, training) in MODELS.items():
        spec = {"id": mid, "model": mid, "input_shape": shape, "training": training, "seed": 1}
        if mid in REUSED_BN:
            spec["reused_bn"] = True
        if mid in CAPTURE:
            spec["capture"] = CAPTURE[mid]
        if mid in SUMMARIES:
            spec["summaries"] = True
        todo.append((spec, fn))
    for spec, builder in todo:
        if args.only and not any(part in spec["id"] for part in args.only.split(",")):
            continue
        run(spec, builder, args.out)
        print(f"wrote {spec['id']}")
    print(f"tensorflow {tf.__version__}, tensorpack {tensorpack.__version__}")


if __name__ == "__main__":
    main()
