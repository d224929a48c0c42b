"""``tf.image`` (TF1): the legacy resizes ``resize_nearest_neighbor`` and ``resize_bilinear``
with TensorFlow's exact sampling (``align_corners``, ``half_pixel_centers``), and
``grayscale_to_rgb``, on NHWC images. ``non_max_suppression`` raises: its output size depends
on values."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tpflax.compat.tf._common import DATA_DEPENDENT, static_ints, tensor, unsupported
from tpflax.compat.tf._naming import named


def _scale(n_in: int, n_out: int, align_corners: bool) -> float:
    if align_corners and n_out > 1:
        return (n_in - 1) / (n_out - 1)
    return n_in / n_out


def _nearest_index(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    s = np.float32(_scale(n_in, n_out, align))
    dst = np.arange(n_out, dtype=np.float32)
    src = (dst + np.float32(0.5)) * s if half else dst * s
    idx = np.floor(src + np.float32(0.5)) if align else np.floor(src)
    return np.clip(idx, 0, n_in - 1).astype(np.int32)


def _size(size: Any, who: str) -> tuple[int, int]:
    h, w = static_ints(size, who)
    return h, w


def resize_nearest_neighbor(
    images: Any,
    size: Any,
    align_corners: bool = False,
    name: str | None = None,
    half_pixel_centers: bool = False,
) -> Any:
    """``tf.image.resize_nearest_neighbor`` (TF1) on NHWC images."""
    x = tensor(images)
    h, w = _size(size, "tf.image.resize_nearest_neighbor")
    rows = _nearest_index(x.shape[-3], h, align_corners, half_pixel_centers)
    cols = _nearest_index(x.shape[-2], w, align_corners, half_pixel_centers)
    return named(jnp.take(jnp.take(x, rows, axis=-3), cols, axis=-2), name)


def _linear(n_in: int, n_out: int, align: bool, half: bool) -> Any:
    s = np.float32(_scale(n_in, n_out, align))
    dst = np.arange(n_out, dtype=np.float32)
    src = (dst + np.float32(0.5)) * s - np.float32(0.5) if half else dst * s
    lo_f = np.floor(src)
    lo = np.maximum(lo_f, 0).astype(np.int32)
    hi = np.minimum(np.ceil(src), n_in - 1).astype(np.int32)
    return lo, hi, (src - lo_f).astype(np.float32)


def resize_bilinear(
    images: Any,
    size: Any,
    align_corners: bool = False,
    name: str | None = None,
    half_pixel_centers: bool = False,
) -> Any:
    """``tf.image.resize_bilinear`` (TF1) on NHWC images: float32 output, TF's legacy
    sampling (``align_corners=True`` maps corner to corner)."""
    x = tensor(images).astype(jnp.float32)
    h, w = _size(size, "tf.image.resize_bilinear")
    y0, y1, fy = _linear(x.shape[-3], h, align_corners, half_pixel_centers)
    x0, x1, fx = _linear(x.shape[-2], w, align_corners, half_pixel_centers)

    def rows(idx: np.ndarray) -> jax.Array:
        return jnp.take(x, idx, axis=-3)

    lead = (1,) * (x.ndim - 3)
    fx_ = jnp.asarray(fx).reshape(*lead, 1, -1, 1)
    fy_ = jnp.asarray(fy).reshape(*lead, -1, 1, 1)

    def lerp_cols(r: jax.Array) -> jax.Array:
        left, right = jnp.take(r, x0, axis=-2), jnp.take(r, x1, axis=-2)
        return left + (right - left) * fx_

    top, bottom = lerp_cols(rows(y0)), lerp_cols(rows(y1))
    return named(top + (bottom - top) * fy_, name)


class ResizeMethod:
    """``tf.image.ResizeMethod`` (TF1's values)."""

    BILINEAR = 0
    NEAREST_NEIGHBOR = 1
    BICUBIC = 2
    AREA = 3


def resize_images(
    images: Any,
    size: Any,
    method: Any = ResizeMethod.BILINEAR,
    align_corners: bool = False,
    preserve_aspect_ratio: bool = False,
    name: str | None = None,
) -> Any:
    """``tf.image.resize_images`` (TF1): bilinear (float32 output) or nearest neighbour (the
    input's dtype), as ``resize_bilinear``/``resize_nearest_neighbor``; the same size returns
    the images as they are; bicubic and area are not supported."""
    if preserve_aspect_ratio:
        raise NotImplementedError("tf.image.resize_images: preserve_aspect_ratio is not supported")
    kind = {"bilinear": 0, "nearest": 1}.get(method, method) if isinstance(method, str) else method
    x = tensor(images)
    if tuple(x.shape[-3:-1]) == _size(size, "tf.image.resize_images"):
        return named(x, name)  # TF1 returns the images unchanged (and uncast)
    if kind == ResizeMethod.BILINEAR:
        return resize_bilinear(x, size, align_corners, name)
    if kind == ResizeMethod.NEAREST_NEIGHBOR:
        return resize_nearest_neighbor(x, size, align_corners, name)
    raise NotImplementedError(
        f"tf.image.resize_images: method {method!r} is not supported; use BILINEAR or "
        "NEAREST_NEIGHBOR"
    )


def grayscale_to_rgb(images: Any, name: str | None = None) -> Any:
    """``tf.image.grayscale_to_rgb``: the last axis (size 1) repeated 3 times."""
    x = tensor(images)
    if x.shape[-1] != 1:
        raise ValueError(f"tf.image.grayscale_to_rgb: last axis must be 1; got shape {x.shape}")
    return named(jnp.concatenate([x, x, x], axis=-1), name)


def non_max_suppression(
    boxes: Any, scores: Any, max_output_size: Any, *args: Any, **kw: Any
) -> Any:
    """``tf.image.non_max_suppression``: raises (data-dependent shape)."""
    raise unsupported(
        "tf.image.non_max_suppression",
        DATA_DEPENDENT,
        "run NMS outside the jitted model (on its NumPy outputs), or a fixed-size variant "
        "that pads to max_output_size",
    )


__all__ = [
    "ResizeMethod",
    "grayscale_to_rgb",
    "non_max_suppression",
    "resize_bilinear",
    "resize_images",
    "resize_nearest_neighbor",
]
