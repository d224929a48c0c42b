"""Tensorpack's ImageNet ResNets (examples/ResNet/resnet_model.py) with its exact variable
names, and the ``-AlignPadding`` variant of its detection backbone
(examples/FasterRCNN/modeling/backbone.py).

Names: ``conv0/W``, ``conv0/bn/{beta,gamma,mean/EMA,variance/EMA}``,
``group{g}/block{b}/conv{1,2,3}/...``, ``group{g}/block0/convshortcut/...``, ``linear/{W,b}``;
pre-activation ResNets add ``group{g}/block{b}/preact/bn/...`` (b > 0) and
``group{g}/bnlast/bn/...``; SE blocks add ``group{g}/block{b}/fc1``, ``fc2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

import tpflax as tp
from tpflax.zoo._common import ModelFn, classifier, pad_spatial

DEPTHS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
MODES = ("resnet", "preact", "se", "resnext32x4d")

_conv_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")


def _channels(l: jax.Array) -> int:
    fmt = tp.get_arg_scope()["Conv2D"]["data_format"]
    return l.shape[1 if fmt in ("NCHW", "channels_first") else 3]


def get_bn(zero_init: bool = False) -> Callable[[jax.Array], jax.Array]:
    """``BatchNorm('bn', x)``; with ``zero_init`` its gamma starts at 0 (arXiv:1706.02677)."""
    init = jax.nn.initializers.zeros if zero_init else None
    return lambda x: tp.BatchNorm("bn", x, gamma_initializer=init)


def resnet_shortcut(l: jax.Array, n_out: int, stride: int, activation: Any = None) -> jax.Array:
    if _channels(l) != n_out:
        return tp.Conv2D("convshortcut", l, n_out, 1, strides=stride, activation=activation)
    return l


# ------------------------------------------------------------------ pre-activation
def _preactivation(l: jax.Array, preact: str) -> tuple[jax.Array, jax.Array]:
    if preact == "bnrelu":
        return tp.BNReLU("preact", l), l
    return l, l


def preact_basicblock(l: jax.Array, ch_out: int, stride: int, preact: str) -> jax.Array:
    l, shortcut = _preactivation(l, preact)
    l = tp.Conv2D("conv1", l, ch_out, 3, strides=stride, activation=tp.BNReLU)
    l = tp.Conv2D("conv2", l, ch_out, 3)
    return l + resnet_shortcut(shortcut, ch_out, stride)


def preact_bottleneck(l: jax.Array, ch_out: int, stride: int, preact: str) -> jax.Array:
    l, shortcut = _preactivation(l, preact)
    l = tp.Conv2D("conv1", l, ch_out, 1, activation=tp.BNReLU)
    l = tp.Conv2D("conv2", l, ch_out, 3, strides=stride, activation=tp.BNReLU)
    l = tp.Conv2D("conv3", l, ch_out * 4, 1)
    return l + resnet_shortcut(shortcut, ch_out * 4, stride)


def preact_group(
    name: str, l: jax.Array, block: Callable, features: int, count: int, stride: int
) -> jax.Array:
    with tp.variable_scope(name):
        for i in range(count):
            with tp.variable_scope(f"block{i}"):
                l = block(l, features, stride if i == 0 else 1, "no_preact" if i == 0 else "bnrelu")
        return tp.BNReLU("bnlast", l)


# ------------------------------------------------------------------ post-activation
def resnet_basicblock(l: jax.Array, ch_out: int, stride: int) -> jax.Array:
    shortcut = l
    l = tp.Conv2D("conv1", l, ch_out, 3, strides=stride, activation=tp.BNReLU)
    l = tp.Conv2D("conv2", l, ch_out, 3, activation=get_bn(zero_init=True))
    return jax.nn.relu(l + resnet_shortcut(shortcut, ch_out, stride, activation=get_bn()))


def resnet_bottleneck(
    l: jax.Array, ch_out: int, stride: int, stride_first: bool = False
) -> jax.Array:
    """Stride on the 3x3 conv (fb.resnet.torch); ``stride_first`` puts it on the first 1x1."""
    shortcut = l
    l = tp.Conv2D(
        "conv1", l, ch_out, 1, strides=stride if stride_first else 1, activation=tp.BNReLU
    )
    l = tp.Conv2D(
        "conv2", l, ch_out, 3, strides=1 if stride_first else stride, activation=tp.BNReLU
    )
    l = tp.Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    return jax.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def se_bottleneck(l: jax.Array, ch_out: int, stride: int) -> jax.Array:
    shortcut = l
    l = tp.Conv2D("conv1", l, ch_out, 1, activation=tp.BNReLU)
    l = tp.Conv2D("conv2", l, ch_out, 3, strides=stride, activation=tp.BNReLU)
    l = tp.Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    squeeze = tp.GlobalAvgPooling("gap", l)
    squeeze = tp.FullyConnected("fc1", squeeze, ch_out // 4, activation=jax.nn.relu)
    squeeze = tp.FullyConnected("fc2", squeeze, ch_out * 4, activation=jax.nn.sigmoid)
    fmt = tp.get_arg_scope()["Conv2D"]["data_format"]
    shape = [-1, 1, 1, 1]
    shape[1 if fmt in ("NCHW", "channels_first") else 3] = ch_out * 4
    l = l * squeeze.reshape(shape)
    return jax.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def resnext32x4d_bottleneck(l: jax.Array, ch_out: int, stride: int) -> jax.Array:
    shortcut = l
    l = tp.Conv2D("conv1", l, ch_out * 2, 1, strides=1, activation=tp.BNReLU)
    l = tp.Conv2D("conv2", l, ch_out * 2, 3, strides=stride, activation=tp.BNReLU, split=32)
    l = tp.Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    return jax.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def resnet_group(
    name: str, l: jax.Array, block: Callable, features: int, count: int, stride: int
) -> jax.Array:
    with tp.variable_scope(name):
        for i in range(count):
            with tp.variable_scope(f"block{i}"):
                l = block(l, features, stride if i == 0 else 1)
    return l


def resnet_backbone(
    image: jax.Array, num_blocks: tuple[int, ...], group_func: Callable, block_func: Callable
) -> jax.Array:
    """conv0 (7x7/2, BNReLU), pool0, four groups, global average pooling, ``linear``."""
    with tp.argscope(tp.Conv2D, use_bias=False, kernel_initializer=_conv_init):
        # TF pads the 7x7/2 conv by [2, 3], not [3, 2]; so does tensorpack's ResNet.
        l = tp.Conv2D("conv0", image, 64, 7, strides=2, activation=tp.BNReLU)
        l = tp.MaxPooling("pool0", l, pool_size=3, strides=2, padding="SAME")
        for g, (features, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            l = group_func(f"group{g}", l, block_func, features, num_blocks[g], stride)
        l = tp.GlobalAvgPooling("gap", l)
        return tp.FullyConnected(
            "linear", l, 1000, kernel_initializer=jax.nn.initializers.normal(0.01)
        )


_BLOCKS: dict[tuple[str, str], Callable[..., jax.Array]] = {
    ("resnet", "basic"): resnet_basicblock,
    ("resnet", "bottleneck"): resnet_bottleneck,
    ("preact", "basic"): preact_basicblock,
    ("preact", "bottleneck"): preact_bottleneck,
    ("se", "bottleneck"): se_bottleneck,
    ("resnext32x4d", "bottleneck"): resnext32x4d_bottleneck,
}


def resnet(
    depth: int = 50, mode: str = "resnet", data_format: str = "NHWC", preprocess: bool = True
) -> ModelFn:
    """Tensorpack's ImageNet ResNet (``examples/ResNet/imagenet-resnet.py``).

    Args:
        depth: 18, 34 (basic blocks), 50, 101 or 152 (bottlenecks).
        mode: ``'resnet'`` (zero-init gamma on each block's last BN, stride on the 3x3),
            ``'preact'``, ``'se'`` (50+) or ``'resnext32x4d'`` (50+).
        data_format: the layout the network computes in. Weights are the same either way.
        preprocess: the model takes ``[N, H, W, 3]`` BGR pixels in ``[0, 255]`` and applies
            tensorpack's ``image_preprocess``; with ``False`` it takes the normalized image
            already in ``data_format``.

    Returns:
        ``f(image) -> logits [N, 1000]``, for ``tp.transform``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> model = tp.transform(tp.zoo.resnet(18))
        >>> params, state = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
        >>> params['group0']['block0']['conv1']['W'].shape
        (3, 3, 64, 64)
    """
    if depth not in DEPTHS:
        raise ValueError(f"tp.zoo.resnet: depth must be one of {sorted(DEPTHS)}; got {depth!r}")
    if mode not in MODES:
        raise ValueError(f"tp.zoo.resnet: mode must be one of {MODES}; got {mode!r}")
    kind = "basic" if depth < 50 else "bottleneck"
    block = _BLOCKS.get((mode, kind))
    if block is None:
        raise ValueError(f"tp.zoo.resnet: mode={mode!r} has no depth-{depth} variant (50+ only)")
    group = preact_group if mode == "preact" else resnet_group

    def logits(image: jax.Array) -> jax.Array:
        layers = [tp.Conv2D, tp.MaxPooling, tp.GlobalAvgPooling, tp.BatchNorm]
        with tp.argscope(layers, data_format=data_format):
            return resnet_backbone(image, DEPTHS[depth], group, block)

    return classifier(logits, data_format, preprocess)


# ------------------------------------------------------------------ AlignPadding
def _pad(l: jax.Array, before: int, after: int) -> jax.Array:
    return pad_spatial(l, before, after, tp.get_arg_scope()["Conv2D"]["data_format"])


def _align_bottleneck(l: jax.Array, ch_out: int, stride: int) -> jax.Array:
    shortcut = l
    l = tp.Conv2D("conv1", l, ch_out, 1, strides=1)
    if stride == 2:
        l = tp.Conv2D("conv2", _pad(l, 1, 0), ch_out, 3, strides=2, padding="VALID")
    else:
        l = tp.Conv2D("conv2", l, ch_out, 3, strides=stride)
    l = tp.Conv2D("conv3", l, ch_out * 4, 1, activation=get_bn(zero_init=True))
    return jax.nn.relu(l + resnet_shortcut(shortcut, ch_out * 4, stride, activation=get_bn()))


def resnet_align_padding(
    depth: int = 50, data_format: str = "NCHW", preprocess: bool = True
) -> ModelFn:
    """The ``-AlignPadding`` ResNet of tensorpack's detection backbone
    (``ImageNet-R50-AlignPadding.npz``): explicit padding then VALID wherever a convolution or
    pooling has stride 2 (top/left 3 and bottom/right 2 for the 7x7 conv, top/left 1
    elsewhere), as Caffe/Detectron align them; otherwise names and structure as ``resnet``
    with bottlenecks, followed by global pooling and ``linear``.
    """
    if depth not in (50, 101, 152):
        raise ValueError(f"tp.zoo.resnet_align_padding: depth must be 50, 101 or 152; got {depth}")

    def logits(image: jax.Array) -> jax.Array:
        with (
            tp.argscope(
                [tp.Conv2D, tp.MaxPooling, tp.BatchNorm, tp.GlobalAvgPooling],
                data_format=data_format,
            ),
            tp.argscope(
                tp.Conv2D, use_bias=False, activation=tp.BNReLU, kernel_initializer=_conv_init
            ),
        ):
            l = tp.Conv2D("conv0", _pad(image, 3, 2), 64, 7, strides=2, padding="VALID")
            l = tp.MaxPooling("pool0", _pad(l, 1, 0), 3, strides=2, padding="VALID")
            for g, (features, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
                l = resnet_group(
                    f"group{g}", l, _align_bottleneck, features, DEPTHS[depth][g], stride
                )
            l = tp.GlobalAvgPooling("gap", l)
            return tp.FullyConnected("linear", l, 1000)

    return classifier(logits, data_format, preprocess)
