"""Tensorpack's ImageNet model zoo with its exact variable names, so its ``.npz`` files load
with ``strict=True``.

>>> import tpflax as tp
>>> list(tp.zoo.ARCHITECTURES)[:3]
['ResNet18', 'ResNet34', 'ResNet50']
"""

from __future__ import annotations

from collections.abc import Callable

from tpflax.zoo._common import ModelFn, image_preprocess
from tpflax.zoo._layers import DepthConv, GroupNorm, channel_shuffle, lrn
from tpflax.zoo.flops import count_macs
from tpflax.zoo.fold import Folded, fold_batchnorm
from tpflax.zoo.imagenet import alexnet, inception_bn, inception_preprocess, shufflenet, vgg16
from tpflax.zoo.layout import convert_layout, permute_fc_rows
from tpflax.zoo.resnet import resnet, resnet_align_padding

# The name of each architecture in tensorpack's model zoo (models.tensorpack.com) -> builder.
ARCHITECTURES: dict[str, Callable[..., ModelFn]] = {
    **{f"ResNet{d}": (lambda d=d, **kw: resnet(d, "resnet", **kw)) for d in (18, 34, 50, 101, 152)},
    **{
        f"ResNet{d}-preact": (lambda d=d, **kw: resnet(d, "preact", **kw))
        for d in (18, 34, 50, 101, 152)
    },
    **{f"ResNet{d}-SE": (lambda d=d, **kw: resnet(d, "se", **kw)) for d in (50, 101, 152)},
    **{
        f"ResNeXt{d}-32x4d": (lambda d=d, **kw: resnet(d, "resnext32x4d", **kw))
        for d in (50, 101, 152)
    },
    "ImageNet-R50-AlignPadding": lambda **kw: resnet_align_padding(50, **kw),
    "ImageNet-R101-AlignPadding": lambda **kw: resnet_align_padding(101, **kw),
    "VGG16": lambda **kw: vgg16("none", **kw),
    "VGG16-BN": lambda **kw: vgg16("bn", **kw),
    "VGG16-GN": lambda **kw: vgg16("gn", **kw),
    "AlexNet": alexnet,
    "ShuffleNetV1-0.5x-g=8": lambda **kw: shufflenet(1, 0.5, 8, **kw),
    "ShuffleNetV1-1x-g=8": lambda **kw: shufflenet(1, 1.0, 8, **kw),
    "ShuffleNetV2-0.5x": lambda **kw: shufflenet(2, 0.5, **kw),
    "ShuffleNetV2-1x": lambda **kw: shufflenet(2, 1.0, **kw),
    "Inception-BN": inception_bn,
}

# The layout each example trains in (models.tensorpack.com files): only matters for fully
# connected layers after a flatten (see convert_layout).
TRAINED_LAYOUT: dict[str, str] = {name: "NCHW" for name in ARCHITECTURES}
TRAINED_LAYOUT.update({"AlexNet": "NHWC", "Inception-BN": "NHWC"})


def get(name: str, **kwargs: object) -> ModelFn:
    """The model function for a model-zoo name (``'ResNet50'``, ``'ShuffleNetV2-1x'``, ...).

    Keyword arguments (``data_format``, ``preprocess``) go to the builder.
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"tp.zoo.get: unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}"
        )
    return ARCHITECTURES[name](**kwargs)


__all__ = [
    "ARCHITECTURES",
    "TRAINED_LAYOUT",
    "DepthConv",
    "Folded",
    "GroupNorm",
    "alexnet",
    "channel_shuffle",
    "convert_layout",
    "count_macs",
    "fold_batchnorm",
    "get",
    "image_preprocess",
    "inception_bn",
    "inception_preprocess",
    "lrn",
    "permute_fc_rows",
    "resnet",
    "resnet_align_padding",
    "shufflenet",
    "vgg16",
]
