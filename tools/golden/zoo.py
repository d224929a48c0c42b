"""Model-zoo fixtures from real tensorpack 0.11 (run by `make golden` in `.venv-golden`).

Each architecture of tensorpack's ImageNet examples is built here in tensorpack, following the
structure published in examples/ResNet, examples/ImageNetModels and
examples/FasterRCNN/modeling/backbone.py, in the example's own layout, inside an inference
TowerContext and after the example's preprocessing. For each one it writes:

* the variable names and shapes at 224x224 (names.json; what a model-zoo .npz holds);
* logits for a 2-image batch at a small resolution, with every variable filled by
  zoo_values.value(name, shape, seed) and the images by zoo_values.image(shape, seed)
  (tests/golden/zoo/<arch>.npz: spec and logits).

Neither weights nor images are committed: the tests regenerate them from the seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
from tensorpack.models import (
    AvgPooling,
    BatchNorm,
    BNReLU,
    Conv2D,
    Dropout,
    FullyConnected,
    GlobalAvgPooling,
    LinearWrap,
    MaxPooling,
    layer_register,
)
from tensorpack.tfutils.argscope import argscope, get_arg_scope
from tensorpack.tfutils.tower import TowerContext

sys.path.insert(0, os.path.dirname(__file__))
import zoo_values

tf1 = tf.compat.v1
SEED = 3


# ----------------------------------------------------------------- preprocessing
def imagenet_preprocess(image):  # ImageNetModel.image_preprocess, image_bgr=True
    mean = tf.constant([0.485, 0.456, 0.406][::-1], tf.float32) * 255.0
    std = tf.constant([0.229, 0.224, 0.225][::-1], tf.float32) * 255.0
    return (image - mean) / std


# ----------------------------------------------------------------- ResNet
def resnet_shortcut(l, n_out, stride, activation=tf.identity):
    data_format = get_arg_scope()["Conv2D"]["data_format"]
    n_in = l.get_shape().as_list()[1 if data_format in ["NCHW", "channels_first"] else 3]
    if n_in != n_out:
        return Conv2D("convshortcut", l, n_out, 1, strides=stride, activation=activation)
    return l


def get_bn(zero_init=False):
    if zero_init:
        return lambda x, name=None: BatchNorm("bn", x, gamma_initializer=tf.zeros_initializer())
    return lambda x, name=None: BatchNorm("bn", x)


def preact_basicblock(l, ch_out, stride, preact):
    shortcut = l
    if preact == "bnrelu":
        l = BNReLU("preact", l)
    l = Conv2D("conv1", l, ch_out, 3, strides=stride, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out, 3)
    return l + resnet_shortcut(shortcut, ch_out, stride)


def preact_bottleneck(l, ch_out, stride, preact):
    shortcut = l
    if preact == "bnrelu":
        l = BNReLU("preact", l)
    l = Conv2D("conv1", l, ch_out, 1, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out, 3, strides=stride, activation=BNReLU)
    l = Conv2D("conv3", l, ch_out * 4, 1)
    return l + resnet_shortcut(shortcut, ch_out * 4, stride)


def preact_group(name, l, block_func, features, count, stride):
    with tf1.variable_scope(name):
        for i in range(count):
            with tf1.variable_scope(f"block{i}"):
                l = block_func(
                    l, features, stride if i == 0 else 1, "no_preact" if i == 0 else "bnrelu"
                )
        l = BNReLU("bnlast", l)
    return l


def resnet_basicblock(l, ch_out, stride):
    shortcut = l
    l = Conv2D("conv1", l, ch_out, 3, strides=stride, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out, 3, activation=get_bn(zero_init=True))
    return tf.nn.relu(l + resnet_shortcut(shortcut, ch_out, stride, activation=get_bn()))


def resnet_bottleneck(l, ch_out, stride):
    shortcut = l
    l = Conv2D("conv1", l, ch_out, 1, strides=1, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out, 3, strides=stride, activation=BNReLU)
    l = Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    return tf.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def se_bottleneck(l, ch_out, stride):
    shortcut = l
    l = Conv2D("conv1", l, ch_out, 1, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out, 3, strides=stride, activation=BNReLU)
    l = Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    squeeze = GlobalAvgPooling("gap", l)
    squeeze = FullyConnected("fc1", squeeze, ch_out // 4, activation=tf.nn.relu)
    squeeze = FullyConnected("fc2", squeeze, ch_out * 4, activation=tf.nn.sigmoid)
    data_format = get_arg_scope()["Conv2D"]["data_format"]
    shape = [-1, 1, 1, 1]
    shape[1 if data_format in ["NCHW", "channels_first"] else 3] = ch_out * 4
    l = l * tf.reshape(squeeze, shape)
    return tf.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def resnext32x4d_bottleneck(l, ch_out, stride):
    shortcut = l
    l = Conv2D("conv1", l, ch_out * 2, 1, strides=1, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out * 2, 3, strides=stride, activation=BNReLU, split=32)
    l = Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    return tf.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def resnet_group(name, l, block_func, features, count, stride):
    with tf1.variable_scope(name):
        for i in range(count):
            with tf1.variable_scope(f"block{i}"):
                l = block_func(l, features, stride if i == 0 else 1)
    return l


DEPTHS = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}
BLOCKS = {
    ("resnet", 18): resnet_basicblock,
    ("preact", 18): preact_basicblock,
    ("resnet", 50): resnet_bottleneck,
    ("preact", 50): preact_bottleneck,
    ("se", 50): se_bottleneck,
    ("resnext32x4d", 50): resnext32x4d_bottleneck,
}


def resnet(depth, mode, data_format="NCHW"):
    block = BLOCKS[(mode, 18 if depth < 50 else 50)]
    group = preact_group if mode == "preact" else resnet_group

    def build(image):
        image = imagenet_preprocess(image)
        if data_format == "NCHW":
            image = tf.transpose(image, [0, 3, 1, 2])
        with (
            argscope([Conv2D, MaxPooling, GlobalAvgPooling, BatchNorm], data_format=data_format),
            argscope(Conv2D, use_bias=False),
        ):
            l = Conv2D("conv0", image, 64, 7, strides=2, activation=BNReLU)
            l = MaxPooling("pool0", l, pool_size=3, strides=2, padding="SAME")
            for g, (f, s) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
                l = group(f"group{g}", l, block, f, DEPTHS[depth][g], s)
            l = GlobalAvgPooling("gap", l)
            return [FullyConnected("linear", l, 1000)]

    return build


def resnet_align_padding(depth):
    """The FasterRCNN backbone (NCHW, TF_PAD_MODE=False, STRIDE_1X1=False, FPN-style shortcut,
    BatchNorm) as an ImageNet classifier: + GlobalAvgPooling + linear."""

    def pad(l, a, b):
        return tf.pad(l, [[0, 0], [0, 0], [a, b], [a, b]])

    def bottleneck(l, ch_out, stride):
        shortcut = l
        l = Conv2D("conv1", l, ch_out, 1, strides=1)
        if stride == 2:
            l = Conv2D("conv2", pad(l, 1, 0), ch_out, 3, strides=2, padding="VALID")
        else:
            l = Conv2D("conv2", l, ch_out, 3, strides=stride)
        l = Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
        return tf.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))

    def nonlin(x):
        return tf.nn.relu(BatchNorm("bn", x))

    def build(image):
        image = imagenet_preprocess(image)
        image = tf.transpose(image, [0, 3, 1, 2])
        with (
            argscope(
                [Conv2D, MaxPooling, BatchNorm, GlobalAvgPooling], data_format="channels_first"
            ),
            argscope(Conv2D, use_bias=False, activation=nonlin),
        ):
            l = Conv2D("conv0", pad(image, 3, 2), 64, 7, strides=2, padding="VALID")
            l = MaxPooling("pool0", pad(l, 1, 0), 3, strides=2, padding="VALID")
            for g, (f, s) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
                l = resnet_group(f"group{g}", l, bottleneck, f, DEPTHS[depth][g], s)
            l = GlobalAvgPooling("gap", l)
            return [FullyConnected("linear", l, 1000, activation=tf.identity)]

    return build


# ----------------------------------------------------------------- VGG16
def vgg16(norm):
    def group_norm(x, group=32):
        shape = x.get_shape().as_list()
        chan = shape[1]
        orig = tf.shape(x)
        x = tf.reshape(x, tf.stack([-1, group, chan // group, orig[2], orig[3]]))
        mean, var = tf.nn.moments(x, [2, 3, 4], keepdims=True)
        new_shape = [1, group, chan // group, 1, 1]
        beta = tf.reshape(
            tf1.get_variable("beta", [chan], initializer=tf1.constant_initializer()), new_shape
        )
        gamma = tf.reshape(
            tf1.get_variable("gamma", [chan], initializer=tf1.constant_initializer(1.0)), new_shape
        )
        out = tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-5)
        return tf.reshape(out, orig)

    def convnormrelu(x, name, chan):
        x = Conv2D(name, x, chan, 3)
        if norm == "bn":
            x = BatchNorm(name + "_bn", x)
        elif norm == "gn":
            with tf1.variable_scope(name + "_gn"):
                x = group_norm(x, 32)
        return tf.nn.relu(x)

    def build(image):
        image = tf.transpose(imagenet_preprocess(image), [0, 3, 1, 2])
        with argscope([Conv2D, MaxPooling, BatchNorm], data_format="channels_first"):
            l = LinearWrap(image)
            for block, (count, chan) in enumerate(
                ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
            ):
                for i in range(count):
                    l = l.apply(convnormrelu, f"conv{block + 1}_{i + 1}", chan)
                l = l.MaxPooling(f"pool{block + 1}", 2)
            logits = (
                l.FullyConnected("fc6", 4096)
                .tf.nn.relu()
                .Dropout("drop0", rate=0.5)
                .FullyConnected("fc7", 4096)
                .tf.nn.relu()
                .Dropout("drop1", rate=0.5)
                .FullyConnected("fc8", 1000)()
            )
        return [logits]

    return build


# ----------------------------------------------------------------- AlexNet
def alexnet():
    def build(image):
        image = imagenet_preprocess(image)
        with (
            argscope([Conv2D, FullyConnected], activation=tf.nn.relu),
            argscope([Conv2D, MaxPooling], data_format="channels_last"),
        ):
            image = tf.pad(image, [[0, 0], [2, 2], [2, 2], [0, 0]])
            l = Conv2D("conv1", image, filters=96, kernel_size=11, strides=4, padding="VALID")
            l = tf.nn.lrn(l, 2, bias=1.0, alpha=2e-5, beta=0.75)
            l = MaxPooling("pool1", l, 3, strides=2, padding="VALID")
            l = Conv2D("conv2", l, filters=256, kernel_size=5, split=2)
            l = tf.nn.lrn(l, 2, bias=1.0, alpha=2e-5, beta=0.75)
            l = MaxPooling("pool2", l, 3, strides=2, padding="VALID")
            l = Conv2D("conv3", l, filters=384, kernel_size=3)
            l = Conv2D("conv4", l, filters=384, kernel_size=3, split=2)
            l = Conv2D("conv5", l, filters=256, kernel_size=3, split=2)
            l = MaxPooling("pool3", l, 3, strides=2, padding="VALID")
            l = FullyConnected("fc6", l, 4096, bias_initializer=tf1.ones_initializer())
            l = Dropout(l, rate=0.5)
            l = FullyConnected("fc7", l, 4096)
            l = Dropout(l, rate=0.5)
        return [FullyConnected("fc8", l, 1000)]

    return build


# ----------------------------------------------------------------- ShuffleNet
@layer_register(log_shape=True)
def DepthConv(
    x, out_channel, kernel_shape, padding="SAME", stride=1, W_init=None, activation=tf.identity
):
    in_channel = x.get_shape().as_list()[1]
    channel_mult = out_channel // in_channel
    W_init = W_init or tf1.variance_scaling_initializer(2.0)
    W = tf1.get_variable(
        "W", [kernel_shape, kernel_shape, in_channel, channel_mult], initializer=W_init
    )
    conv = tf.nn.depthwise_conv2d(x, W, [1, 1, stride, stride], padding=padding, data_format="NCHW")
    return activation(conv, name="output")


def channel_shuffle(l, group):
    in_shape = l.get_shape().as_list()
    in_channel = in_shape[1]
    l = tf.reshape(l, [-1, in_channel // group, group, *in_shape[-2:]])
    l = tf.transpose(l, [0, 2, 1, 3, 4])
    return tf.reshape(l, [-1, in_channel, *in_shape[-2:]])


@layer_register()
def shufflenet_unit(l, out_channel, group, stride):
    in_channel = l.get_shape().as_list()[1]
    shortcut = l
    first_split = group if in_channel > 24 else 1
    l = Conv2D("conv1", l, out_channel // 4, 1, split=first_split, activation=BNReLU)
    l = channel_shuffle(l, group)
    l = DepthConv("dconv", l, out_channel // 4, 3, stride=stride)
    l = BatchNorm("dconv_bn", l)
    l = Conv2D("conv2", l, out_channel if stride == 1 else out_channel - in_channel, 1, split=group)
    l = BatchNorm("conv2_bn", l)
    if stride == 1:
        return tf.nn.relu(shortcut + l)
    shortcut = AvgPooling("avgpool", shortcut, 3, 2, padding="SAME")
    return tf.concat([shortcut, tf.nn.relu(l)], axis=1)


@layer_register()
def shufflenet_unit_v2(l, out_channel, stride):
    if stride == 1:
        shortcut, l = tf.split(l, 2, axis=1)
    else:
        shortcut = l
    shortcut_channel = int(shortcut.shape[1])
    l = Conv2D("conv1", l, out_channel // 2, 1, activation=BNReLU)
    l = DepthConv("dconv", l, out_channel // 2, 3, stride=stride)
    l = BatchNorm("dconv_bn", l)
    l = Conv2D("conv2", l, out_channel - shortcut_channel, 1, activation=BNReLU)
    if stride == 2:
        shortcut = DepthConv("shortcut_dconv", shortcut, shortcut_channel, 3, stride=2)
        shortcut = BatchNorm("shortcut_dconv_bn", shortcut)
        shortcut = Conv2D("shortcut_conv", shortcut, shortcut_channel, 1, activation=BNReLU)
    return channel_shuffle(tf.concat([shortcut, l], axis=1), 2)


def shufflenet(v2, ratio, group=8):
    def build(image):
        image = tf.transpose(imagenet_preprocess(image), [0, 3, 1, 2])
        with (
            argscope(
                [Conv2D, MaxPooling, AvgPooling, GlobalAvgPooling, BatchNorm],
                data_format="channels_first",
            ),
            argscope(Conv2D, use_bias=False),
        ):
            if not v2:
                channels = {3: [240, 480, 960], 4: [272, 544, 1088], 8: [384, 768, 1536]}[group]
                mul = group * 4
                channels = [int(math.ceil(x * ratio / mul) * mul) for x in channels]
                first_chan = int(math.ceil(24 * ratio / group) * group)
            else:
                channels = {0.5: [48, 96, 192], 1.0: [116, 232, 464]}[ratio]
                first_chan = 24
            l = Conv2D("conv1", image, first_chan, 3, strides=2, activation=BNReLU)
            l = MaxPooling("pool1", l, 3, 2, padding="SAME")
            for stage, (chan, blocks) in enumerate(zip(channels, (4, 8, 4), strict=True)):
                with tf1.variable_scope(f"stage{stage + 2}"):
                    for i in range(blocks):
                        if v2:
                            l = shufflenet_unit_v2(f"block{i}", l, chan, 2 if i == 0 else 1)
                        else:
                            l = shufflenet_unit(f"block{i}", l, chan, group, 2 if i == 0 else 1)
            if v2:
                l = Conv2D("conv5", l, 1024, 1, activation=BNReLU)
            l = GlobalAvgPooling("gap", l)
            return [FullyConnected("linear", l, 1000)]

    return build


# ----------------------------------------------------------------- Inception-BN
def inception_bn():
    def inception(name, x, nr1x1, nr3x3r, nr3x3, nr233r, nr233, nrpool, pooltype):
        stride = 2 if nr1x1 == 0 else 1
        with tf1.variable_scope(name):
            outs = []
            if nr1x1 != 0:
                outs.append(Conv2D("conv1x1", x, nr1x1, 1))
            x2 = Conv2D("conv3x3r", x, nr3x3r, 1)
            outs.append(Conv2D("conv3x3", x2, nr3x3, 3, strides=stride))
            x3 = Conv2D("conv233r", x, nr233r, 1)
            x3 = Conv2D("conv233a", x3, nr233, 3)
            outs.append(Conv2D("conv233b", x3, nr233, 3, strides=stride))
            if pooltype == "max":
                x4 = MaxPooling("mpool", x, 3, stride, padding="SAME")
            else:
                x4 = AvgPooling("apool", x, 3, stride, padding="SAME")
            if nrpool != 0:
                x4 = Conv2D("poolproj", x4, nrpool, 1)
            outs.append(x4)
            return tf.concat(outs, 3, name="concat")

    def build(image):
        image = image / 128.0
        with argscope(Conv2D, activation=BNReLU, use_bias=False):
            l = (
                LinearWrap(image)
                .Conv2D("conv0", 64, 7, strides=2)
                .MaxPooling("pool0", 3, 2, padding="SAME")
                .Conv2D("conv1", 64, 1)
                .Conv2D("conv2", 192, 3)
                .MaxPooling("pool2", 3, 2, padding="SAME")()
            )
            l = inception("incep3a", l, 64, 64, 64, 64, 96, 32, "avg")
            l = inception("incep3b", l, 64, 64, 96, 64, 96, 64, "avg")
            l = inception("incep3c", l, 0, 128, 160, 64, 96, 0, "max")
            br1 = (
                LinearWrap(l)
                .Conv2D("loss1conv", 128, 1)
                .FullyConnected("loss1fc", 1024, activation=tf.nn.relu)
                .FullyConnected("loss1logit", 1000, activation=tf.identity)()
            )
            l = inception("incep4a", l, 224, 64, 96, 96, 128, 128, "avg")
            l = inception("incep4b", l, 192, 96, 128, 96, 128, 128, "avg")
            l = inception("incep4c", l, 160, 128, 160, 128, 160, 128, "avg")
            l = inception("incep4d", l, 96, 128, 192, 160, 192, 128, "avg")
            l = inception("incep4e", l, 0, 128, 192, 192, 256, 0, "max")
            br2 = Conv2D("loss2conv", l, 128, 1)
            br2 = FullyConnected("loss2fc", br2, 1024, activation=tf.nn.relu)
            br2 = FullyConnected("loss2logit", br2, 1000, activation=tf.identity)
            l = inception("incep5a", l, 352, 192, 320, 160, 224, 128, "avg")
            l = inception("incep5b", l, 352, 192, 320, 192, 224, 128, "max")
            l = GlobalAvgPooling("gap", l)
            logits = FullyConnected("linear", l, 1000, activation=tf.identity)
        return [logits, br1, br2]

    return build


# ----------------------------------------------------------------- table
# name -> (builder, small resolution, the example's layout, tpflax's zoo call as JSON)
ARCHS = {
    **{f"ResNet{d}": (resnet(d, "resnet"), 32, "NCHW") for d in (18, 34, 50, 101, 152)},
    **{f"ResNet{d}-preact": (resnet(d, "preact"), 32, "NCHW") for d in (18, 34, 50, 101, 152)},
    **{f"ResNet{d}-SE": (resnet(d, "se"), 32, "NCHW") for d in (50, 101, 152)},
    **{f"ResNeXt{d}-32x4d": (resnet(d, "resnext32x4d"), 32, "NCHW") for d in (50, 101, 152)},
    "ImageNet-R50-AlignPadding": (resnet_align_padding(50), 32, "NCHW"),
    "ImageNet-R101-AlignPadding": (resnet_align_padding(101), 32, "NCHW"),
    # VGG16 and AlexNet at sizes whose last map before the flatten is 2x2, so the layout
    # conversion of fc6's rows is exercised.
    "VGG16": (vgg16("none"), 64, "NCHW"),
    "VGG16-BN": (vgg16("bn"), 64, "NCHW"),
    "VGG16-GN": (vgg16("gn"), 64, "NCHW"),
    "AlexNet": (alexnet(), 99, "NHWC"),
    "ShuffleNetV1-0.5x-g=8": (shufflenet(False, 0.5), 32, "NCHW"),
    "ShuffleNetV1-1x-g=8": (shufflenet(False, 1.0), 32, "NCHW"),
    "ShuffleNetV2-0.5x": (shufflenet(True, 0.5), 32, "NCHW"),
    "ShuffleNetV2-1x": (shufflenet(True, 1.0), 32, "NCHW"),
    "Inception-BN": (inception_bn(), 32, "NHWC"),
}


def build(builder, size, batch):
    tf1.reset_default_graph()
    image = tf1.placeholder(tf.float32, [batch, size, size, 3], "input")
    with TowerContext("", is_training=False):
        outputs = builder(image)
    shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    return image, outputs, shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/zoo")
    parser.add_argument("--only", nargs="*", default=None, help="architecture names")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names_path = os.path.join(args.out, "names.json")
    names = {}
    if os.path.exists(names_path):
        with open(names_path) as f:
            names = json.load(f)
    for arch, (builder, size, layout) in ARCHS.items():
        if args.only and arch not in args.only:
            continue
        _, _, full = build(builder, 224, 1)
        names[arch] = full
        image_t, outputs, shapes = build(builder, size, 2)
        values = zoo_values.fill(shapes, SEED)
        image = zoo_values.image((2, size, size, 3), SEED)
        with tf1.Session() as sess:
            for v in tf1.global_variables():
                v.load(values[v.op.name], sess)
            logits = sess.run(outputs, {image_t: image})
        # the images are regenerated from the seed by the tests (zoo_values.image)
        record = {
            "spec": np.array(
                json.dumps({"arch": arch, "size": size, "layout": layout, "seed": SEED})
            ),
        }
        for i, out in enumerate(logits):
            record[f"logits_{i}"] = out
        np.savez_compressed(os.path.join(args.out, f"{arch}.npz"), **record)
        print(f"{arch}: {len(full)} variables, logits {[o.shape for o in logits]}")
    with open(names_path, "w") as f:
        json.dump(names, f, indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
