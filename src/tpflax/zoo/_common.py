"""What every zoo model shares: tensorpack's ImageNet preprocessing and the wrapper that
applies it and moves the image into the network's layout."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from tpflax._src import layout, utils

ModelFn = Callable[[jax.Array], jax.Array]

# examples/ImageNetModels/imagenet_utils.py: ImageNet statistics in RGB order, times 255.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


def image_preprocess(image: jax.Array, bgr: bool = True) -> jax.Array:
    """Tensorpack's ``ImageNetModel.image_preprocess``: float32, minus the ImageNet mean, over
    the ImageNet standard deviation (both times 255), channels last.

    Args:
        image: ``[..., 3]`` pixels in ``[0, 255]`` (any dtype; uint8 is fine).
        bgr: the channels are BGR (tensorpack's default, what OpenCV decodes); ``False`` for
            RGB.
    """
    image = jnp.asarray(image).astype(jnp.float32)
    shape = (1,) * (image.ndim - 1) + (3,)
    mean = jnp.asarray(MEAN_RGB[::-1] if bgr else MEAN_RGB, jnp.float32).reshape(shape) * 255.0
    std = jnp.asarray(STD_RGB[::-1] if bgr else STD_RGB, jnp.float32).reshape(shape) * 255.0
    return (image - mean) / std


def pad_spatial(x: jax.Array, before: int, after: int, data_format: str) -> jax.Array:
    """``tf.pad`` of the two spatial axes by ``(before, after)`` with zeros."""
    pads = [(0, 0)] * 4
    for axis in (2, 3) if layout.channel_axis(4, data_format, who="tp.zoo") == 1 else (1, 2):
        pads[axis] = (before, after)
    return jnp.pad(x, pads)


def to_layout(image: jax.Array, data_format: str) -> jax.Array:
    """NHWC -> the network's layout (``tf.transpose(image, [0, 3, 1, 2])`` for NCHW)."""
    fmt = utils.data_format(data_format, who="tp.zoo")
    return jnp.transpose(image, (0, 3, 1, 2)) if fmt == "NCHW" else image


def classifier(
    logits: ModelFn,
    data_format: str,
    preprocess: bool,
    prepare: Callable[[jax.Array], jax.Array] = image_preprocess,
) -> ModelFn:
    """``logits`` (tensorpack's ``get_logits``: a normalized image in ``data_format``) with,
    when ``preprocess``, tensorpack's ``build_graph`` steps before it: ``prepare`` on the NHWC
    pixels, then the transpose to ``data_format``."""
    fmt = utils.data_format(data_format, who="tp.zoo")
    logits.data_format = fmt  # type: ignore[attr-defined]
    if not preprocess:
        return logits

    def model(image: jax.Array) -> jax.Array:
        if image.ndim != 4 or image.shape[-1] != 3:
            raise ValueError(
                f"tp.zoo: with preprocess=True the input is [N, H, W, 3] pixels; got shape "
                f"{tuple(image.shape)}"
            )
        return logits(to_layout(prepare(image), data_format))

    model.__name__ = getattr(logits, "__name__", "model")
    model.data_format = fmt  # type: ignore[attr-defined]
    return model
