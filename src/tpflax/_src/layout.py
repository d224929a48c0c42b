"""Layout helpers: where the channels are, and per-channel values broadcast against a
feature map. Every layer and the zoo use these, for ``[N, C]`` and 4-D inputs in either
layout (``'NHWC'``/``'channels_last'`` or ``'NCHW'``/``'channels_first'``)."""

from __future__ import annotations

from typing import overload

import jax

from tpflax._src import utils


def channel_axis(ndim: int, data_format: str, *, who: str) -> int:
    """The channel axis: 1 for ``[N, C]`` and NCHW, 3 for NHWC.

    Raises:
        ValueError: ``data_format`` is no layout (the message names ``who``).
    """
    fmt = utils.data_format(data_format, who=who)
    return 1 if ndim == 2 or fmt == "NCHW" else ndim - 1


def channel_shape(ndim: int, axis: int, channels: int) -> tuple[int, ...]:
    """``(1, C, 1, 1)``-style: the shape that broadcasts ``[C]`` along ``axis``."""
    shape = [1] * ndim
    shape[axis] = channels
    return tuple(shape)


@overload
def per_channel(value: jax.Array, ndim: int, axis: int) -> jax.Array: ...


@overload
def per_channel(value: None, ndim: int, axis: int) -> None: ...


@overload
def per_channel(value: jax.Array | None, ndim: int, axis: int) -> jax.Array | None: ...


def per_channel(value: jax.Array | None, ndim: int, axis: int) -> jax.Array | None:
    """``[C]`` reshaped to broadcast along ``axis`` of an ``ndim``-D array; ``None`` stays."""
    if value is None:
        return None
    return value.reshape(channel_shape(ndim, axis, value.shape[0]))


def add_bias(y: jax.Array, b: jax.Array | None, data_format: str) -> jax.Array:
    """``y + b`` over the channels of a 4-D ``y`` in ``'NHWC'`` or ``'NCHW'``, in ``y``'s
    dtype (``b`` cast to it, as TensorFlow's ``bias_add`` needs equal dtypes)."""
    if b is None:
        return y
    axis = 1 if data_format == "NCHW" else y.ndim - 1
    return y + per_channel(b.astype(y.dtype), y.ndim, axis)
