"""Tensorpack's other ImageNet examples (examples/ImageNetModels): VGG16, AlexNet, ShuffleNet
V1/V2 and Inception-BN, with their exact variable names. Each takes ``data_format``; the
examples themselves run in one layout (VGG16 and ShuffleNet NCHW, AlexNet and Inception-BN
NHWC), and ``tp.zoo.convert_layout`` moves weights of the fully connected layers that follow
a flatten between layouts.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

import tpflax as tp
from tpflax._src import layout
from tpflax.zoo._common import ModelFn, classifier, pad_spatial
from tpflax.zoo._layers import DepthConv, GroupNorm, channel_shuffle, lrn

_vs2 = jax.nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def _with_flatten_fc(model: ModelFn, table: dict[str, str]) -> ModelFn:
    model.flatten_fc = table  # type: ignore[attr-defined]
    return model


# ------------------------------------------------------------------ VGG16
def vgg16(norm: str = "none", data_format: str = "NCHW", preprocess: bool = True) -> ModelFn:
    """VGG16 of ``examples/ImageNetModels/vgg16.py`` (``--norm none|bn|gn``).

    Names: ``conv{i}_{j}/{W,b}``, with ``norm='bn'`` ``conv{i}_{j}_bn/...``, with ``'gn'``
    ``conv{i}_{j}_gn/{beta,gamma}``; ``fc6``, ``fc7``, ``fc8``. ``fc6`` follows a flatten, so
    its rows depend on the layout (see ``tp.zoo.convert_layout``).
    """
    if norm not in ("none", "bn", "gn"):
        raise ValueError(f"tp.zoo.vgg16: norm must be 'none', 'bn' or 'gn'; got {norm!r}")

    def convnormrelu(x: jax.Array, name: str, chan: int) -> jax.Array:
        x = tp.Conv2D(name, x, chan, 3)
        if norm == "bn":
            x = tp.BatchNorm(name + "_bn", x)
        elif norm == "gn":
            with tp.variable_scope(name + "_gn"):
                x = GroupNorm(x, 32)
        return jax.nn.relu(x)

    def logits(image: jax.Array) -> jax.Array:
        with (
            tp.argscope(tp.Conv2D, kernel_initializer=_vs2),
            tp.argscope(
                [tp.Conv2D, tp.MaxPooling, tp.BatchNorm, GroupNorm], data_format=data_format
            ),
        ):
            l = tp.LinearWrap(image)
            for block, (count, chan) in enumerate(
                ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
            ):
                for i in range(count):
                    l = l.apply(convnormrelu, f"conv{block + 1}_{i + 1}", chan)
                l = l.MaxPooling(f"pool{block + 1}", 2)
            normal = jax.nn.initializers.normal
            return (
                l.FullyConnected("fc6", 4096, kernel_initializer=normal(0.001))
                .jax.nn.relu()
                .Dropout("drop0", rate=0.5)
                .FullyConnected("fc7", 4096, kernel_initializer=normal(0.001))
                .jax.nn.relu()
                .Dropout("drop1", rate=0.5)
                .FullyConnected("fc8", 1000, kernel_initializer=normal(0.01))()
            )

    return _with_flatten_fc(classifier(logits, data_format, preprocess), {"fc6": "pool5/output"})


# ------------------------------------------------------------------ AlexNet
def alexnet(data_format: str = "NHWC", preprocess: bool = True) -> ModelFn:
    """AlexNet of ``examples/ImageNetModels/alexnet.py`` (two-tower ``split=2`` convolutions,
    local response normalization). Names: ``conv1`` ... ``conv5``, ``fc6``, ``fc7``, ``fc8``.
    """

    def logits(image: jax.Array) -> jax.Array:
        gauss = jax.nn.initializers.normal(0.01)
        with (
            tp.argscope(tp.Conv2D, kernel_initializer=_vs2),
            tp.argscope([tp.Conv2D, tp.FullyConnected], activation=jax.nn.relu),
            tp.argscope([tp.Conv2D, tp.MaxPooling], data_format=data_format),
        ):
            l = tp.Conv2D(
                "conv1",
                pad_spatial(image, 2, 2, data_format),
                filters=96,
                kernel_size=11,
                strides=4,
                padding="VALID",
            )
            l = lrn(l, 2, bias=1.0, alpha=2e-5, beta=0.75, data_format=data_format)
            l = tp.MaxPooling("pool1", l, 3, strides=2, padding="VALID")
            l = tp.Conv2D("conv2", l, filters=256, kernel_size=5, split=2)
            l = lrn(l, 2, bias=1.0, alpha=2e-5, beta=0.75, data_format=data_format)
            l = tp.MaxPooling("pool2", l, 3, strides=2, padding="VALID")
            l = tp.Conv2D("conv3", l, filters=384, kernel_size=3)
            l = tp.Conv2D("conv4", l, filters=384, kernel_size=3, split=2)
            l = tp.Conv2D("conv5", l, filters=256, kernel_size=3, split=2)
            l = tp.MaxPooling("pool3", l, 3, strides=2, padding="VALID")
            l = tp.FullyConnected(
                "fc6", l, 4096, kernel_initializer=gauss, bias_initializer=jax.nn.initializers.ones
            )
            l = tp.Dropout(l, rate=0.5)
            l = tp.FullyConnected("fc7", l, 4096, kernel_initializer=gauss)
            l = tp.Dropout(l, rate=0.5)
        return tp.FullyConnected("fc8", l, 1000, kernel_initializer=gauss)

    return _with_flatten_fc(classifier(logits, data_format, preprocess), {"fc6": "pool3/output"})


# ------------------------------------------------------------------ ShuffleNet
def _shufflenet_unit(l: jax.Array, out_channel: int, group: int, stride: int, ax: int) -> jax.Array:
    in_channel = l.shape[ax]
    shortcut = l
    first_split = group if in_channel > 24 else 1
    l = tp.Conv2D("conv1", l, out_channel // 4, 1, split=first_split, activation=tp.BNReLU)
    l = channel_shuffle(l, group, "NCHW" if ax == 1 else "NHWC")
    l = DepthConv("dconv", l, out_channel // 4, 3, stride=stride)
    l = tp.BatchNorm("dconv_bn", l)
    l = tp.Conv2D(
        "conv2", l, out_channel if stride == 1 else out_channel - in_channel, 1, split=group
    )
    l = tp.BatchNorm("conv2_bn", l)
    if stride == 1:
        return jax.nn.relu(shortcut + l)
    shortcut = tp.AvgPooling("avgpool", shortcut, 3, 2, padding="SAME")
    return jnp.concatenate([shortcut, jax.nn.relu(l)], axis=ax)


def _shufflenet_unit_v2(l: jax.Array, out_channel: int, stride: int, ax: int) -> jax.Array:
    if stride == 1:
        shortcut, l = jnp.split(l, 2, axis=ax)
    else:
        shortcut = l
    shortcut_channel = shortcut.shape[ax]
    l = tp.Conv2D("conv1", l, out_channel // 2, 1, activation=tp.BNReLU)
    l = DepthConv("dconv", l, out_channel // 2, 3, stride=stride)
    l = tp.BatchNorm("dconv_bn", l)
    l = tp.Conv2D("conv2", l, out_channel - shortcut_channel, 1, activation=tp.BNReLU)
    if stride == 2:
        shortcut = DepthConv("shortcut_dconv", shortcut, shortcut_channel, 3, stride=2)
        shortcut = tp.BatchNorm("shortcut_dconv_bn", shortcut)
        shortcut = tp.Conv2D("shortcut_conv", shortcut, shortcut_channel, 1, activation=tp.BNReLU)
    out = jnp.concatenate([shortcut, l], axis=ax)
    return channel_shuffle(out, 2, "NCHW" if ax == 1 else "NHWC")


def shufflenet(
    version: int = 2,
    ratio: float = 0.5,
    group: int = 8,
    data_format: str = "NCHW",
    preprocess: bool = True,
) -> ModelFn:
    """ShuffleNet V1 (``group`` 3, 4 or 8) or V2 of ``examples/ImageNetModels/shufflenet.py``
    (``ShuffleNetV1-1x-g=8.npz``, ``ShuffleNetV2-0.5x.npz``, ...).

    Names: ``conv1``, ``stage{2,3,4}/block{i}/{conv1,dconv,dconv_bn,conv2,conv2_bn}`` (V2:
    ``conv2/bn``, and ``shortcut_dconv``, ``shortcut_dconv_bn``, ``shortcut_conv`` in each
    stage's first block), V2's ``conv5``, ``linear``.
    """
    if version == 1:
        if group not in (3, 4, 8):
            raise ValueError(f"tp.zoo.shufflenet: group must be 3, 4 or 8; got {group!r}")
        base = {3: [240, 480, 960], 4: [272, 544, 1088], 8: [384, 768, 1536]}[group]
        mul = group * 4
        channels = [int(math.ceil(x * ratio / mul) * mul) for x in base]
        first_chan = int(math.ceil(24 * ratio / group) * group)
    elif version == 2:
        if ratio not in (0.5, 1.0):
            raise ValueError(f"tp.zoo.shufflenet: V2 ratio must be 0.5 or 1; got {ratio!r}")
        channels = {0.5: [48, 96, 192], 1.0: [116, 232, 464]}[ratio]
        first_chan = 24
    else:
        raise ValueError(f"tp.zoo.shufflenet: version must be 1 or 2; got {version!r}")
    ax = layout.channel_axis(4, data_format, who="tp.zoo")

    def logits(image: jax.Array) -> jax.Array:
        layers = [
            tp.Conv2D,
            tp.MaxPooling,
            tp.AvgPooling,
            tp.GlobalAvgPooling,
            tp.BatchNorm,
            DepthConv,
        ]
        with (
            tp.argscope(layers, data_format=data_format),
            tp.argscope(tp.Conv2D, use_bias=False),
        ):
            l = tp.Conv2D("conv1", image, first_chan, 3, strides=2, activation=tp.BNReLU)
            l = tp.MaxPooling("pool1", l, 3, 2, padding="SAME")
            for stage, (chan, blocks) in enumerate(zip(channels, (4, 8, 4), strict=True)):
                with tp.variable_scope(f"stage{stage + 2}"):
                    for i in range(blocks):
                        with tp.variable_scope(f"block{i}"):
                            stride = 2 if i == 0 else 1
                            if version == 2:
                                l = _shufflenet_unit_v2(l, chan, stride, ax)
                            else:
                                l = _shufflenet_unit(l, chan, group, stride, ax)
            if version == 2:
                l = tp.Conv2D("conv5", l, 1024, 1, activation=tp.BNReLU)
            l = tp.GlobalAvgPooling("gap", l)
            return tp.FullyConnected("linear", l, 1000)

    return classifier(logits, data_format, preprocess)


# ------------------------------------------------------------------ Inception-BN
def _inception(
    name: str,
    x: jax.Array,
    nr1x1: int,
    nr3x3r: int,
    nr3x3: int,
    nr233r: int,
    nr233: int,
    nrpool: int,
    pooltype: str,
    ax: int,
) -> jax.Array:
    stride = 2 if nr1x1 == 0 else 1
    with tp.variable_scope(name):
        outs = []
        if nr1x1 != 0:
            outs.append(tp.Conv2D("conv1x1", x, nr1x1, 1))
        x2 = tp.Conv2D("conv3x3r", x, nr3x3r, 1)
        outs.append(tp.Conv2D("conv3x3", x2, nr3x3, 3, strides=stride))
        x3 = tp.Conv2D("conv233r", x, nr233r, 1)
        x3 = tp.Conv2D("conv233a", x3, nr233, 3)
        outs.append(tp.Conv2D("conv233b", x3, nr233, 3, strides=stride))
        if pooltype == "max":
            x4 = tp.MaxPooling("mpool", x, 3, stride, padding="SAME")
        else:
            x4 = tp.AvgPooling("apool", x, 3, stride, padding="SAME")
        if nrpool != 0:
            x4 = tp.Conv2D("poolproj", x4, nrpool, 1)
        outs.append(x4)
        return jnp.concatenate(outs, axis=ax)


def inception_preprocess(image: jax.Array) -> jax.Array:
    """``examples/ImageNetModels/inception-bn.py``'s only preprocessing: ``image / 128``."""
    return jnp.asarray(image).astype(jnp.float32) / 128.0


def inception_bn(
    data_format: str = "NHWC", preprocess: bool = True, aux_logits: bool = False
) -> ModelFn:
    """Inception-BN of ``examples/ImageNetModels/inception-bn.py``, auxiliary heads included
    (their variables ``loss1conv``, ``loss1fc``, ``loss1logit``, ``loss2*`` are in the
    checkpoint). Returns the main logits (``linear``), or ``(logits, aux1, aux2)`` with
    ``aux_logits=True``. ``loss1fc``/``loss2fc`` follow a flatten (layout-dependent rows).
    """
    ax = layout.channel_axis(4, data_format, who="tp.zoo")

    def logits(image: jax.Array) -> Any:
        with (
            tp.argscope(tp.Conv2D, activation=tp.BNReLU, use_bias=False),
            tp.argscope(
                [tp.Conv2D, tp.MaxPooling, tp.AvgPooling, tp.BatchNorm, tp.GlobalAvgPooling],
                data_format=data_format,
            ),
        ):
            l = (
                tp.LinearWrap(image)
                .Conv2D("conv0", 64, 7, strides=2)
                .MaxPooling("pool0", 3, 2, padding="SAME")
                .Conv2D("conv1", 64, 1)
                .Conv2D("conv2", 192, 3)
                .MaxPooling("pool2", 3, 2, padding="SAME")()
            )
            l = _inception("incep3a", l, 64, 64, 64, 64, 96, 32, "avg", ax)
            l = _inception("incep3b", l, 64, 64, 96, 64, 96, 64, "avg", ax)
            l = _inception("incep3c", l, 0, 128, 160, 64, 96, 0, "max", ax)
            br1 = (
                tp.LinearWrap(l)
                .Conv2D("loss1conv", 128, 1)
                .FullyConnected("loss1fc", 1024, activation=jax.nn.relu)
                .FullyConnected("loss1logit", 1000, activation=None)()
            )
            l = _inception("incep4a", l, 224, 64, 96, 96, 128, 128, "avg", ax)
            l = _inception("incep4b", l, 192, 96, 128, 96, 128, 128, "avg", ax)
            l = _inception("incep4c", l, 160, 128, 160, 128, 160, 128, "avg", ax)
            l = _inception("incep4d", l, 96, 128, 192, 160, 192, 128, "avg", ax)
            l = _inception("incep4e", l, 0, 128, 192, 192, 256, 0, "max", ax)
            br2 = tp.Conv2D("loss2conv", l, 128, 1)
            br2 = tp.FullyConnected("loss2fc", br2, 1024, activation=jax.nn.relu)
            br2 = tp.FullyConnected("loss2logit", br2, 1000, activation=None)
            l = _inception("incep5a", l, 352, 192, 320, 160, 224, 128, "avg", ax)
            l = _inception("incep5b", l, 352, 192, 320, 192, 224, 128, "max", ax)
            l = tp.GlobalAvgPooling("gap", l)
            out = tp.FullyConnected("linear", l, 1000, activation=None)
        return (out, br1, br2) if aux_logits else out

    model = classifier(logits, data_format, preprocess, prepare=inception_preprocess)
    return _with_flatten_fc(model, {"loss1fc": "loss1conv/output", "loss2fc": "loss2conv/output"})
