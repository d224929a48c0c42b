"""Pooling: pure ops and tensorpack's ``MaxPooling``, ``AvgPooling``, ``GlobalAvgPooling``,
``FixedUnPooling``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tpflax._src import max_pool as tap_max_pool
from tpflax._src import utils
from tpflax._src.conv_impl import use_onednn_max_pool, use_tap_max_pool
from tpflax._src.registry import layer_context, layer_register
from tpflax._src.types import Size2D


def _window(fmt: str, pool: tuple[int, int], stride: tuple[int, int]) -> tuple[tuple, tuple]:
    if fmt == "NHWC":
        return (1, *pool, 1), (1, *stride, 1)
    return (1, 1, *pool), (1, 1, *stride)


def max_pool(
    x: jax.Array, pool: tuple[int, int], stride: tuple[int, int], padding: str, fmt: str
) -> jax.Array:
    """Max pooling; ``'SAME'`` pads with -inf, the odd pixel at the end (TensorFlow's rule).
    The derivative goes to the first maximum of each window (TensorFlow's ``MaxPoolGrad``);
    per ``tp.conv_impl`` it is built from the taps (faster on CPU) or is XLA's."""
    dims, strides = _window(fmt, pool, stride)
    if use_tap_max_pool(pool):
        return tap_max_pool.max_pool(
            x, dims, strides, padding, use_onednn_max_pool(x, pool, stride)
        )
    return tap_max_pool.reduce_window_max(x, dims, strides, padding)


def avg_pool(
    x: jax.Array, pool: tuple[int, int], stride: tuple[int, int], padding: str, fmt: str
) -> jax.Array:
    """Average pooling; with ``'SAME'`` each window is divided by the number of real (not
    padded) elements in it, as TensorFlow does (flax's default counts the padding)."""
    dims, strides = _window(fmt, pool, stride)
    # A concrete NumPy zero (not a traced jnp one) lets JAX see a window *sum*, which it can
    # differentiate under jit; a generic reduce_window it cannot.
    zero = np.zeros((), x.dtype)
    total = lax.reduce_window(x, zero, lax.add, dims, strides, padding)
    if padding == "VALID":
        return total / jnp.asarray(pool[0] * pool[1], x.dtype)
    ones = jnp.ones((1, *x.shape[1:]), x.dtype)
    count = lax.reduce_window(ones, zero, lax.add, dims, strides, padding)
    return total / count


def _pool_args(
    kind: str, inputs: Any, pool_size: Any, strides: Any, padding: str, data_format: str
) -> tuple:
    who = layer_context(kind)
    utils.check_rank(inputs, (4,), who=who)
    fmt = utils.data_format(data_format, who=who)
    pool = utils.shape2d(pool_size, who=who, arg="pool_size")
    stride = pool if strides is None else utils.shape2d(strides, who=who, arg="strides")
    return pool, stride, utils.padding(padding, who=who), fmt


_POOL_ALIASES = {"shape": "pool_size", "stride": "strides"}


@layer_register(log_shape=True, positional=("pool_size", "strides"), aliases=_POOL_ALIASES)
def MaxPooling(
    inputs: jax.Array,
    pool_size: Size2D,
    strides: Size2D | None = None,
    padding: str = "valid",
    data_format: str = "channels_last",
) -> jax.Array:
    """Max pooling, tensorpack's ``MaxPooling`` (``tf.layers.MaxPooling2D``).

    Args:
        inputs: 4-D, in ``data_format``.
        pool_size: int or pair (alias ``shape``).
        strides: int or pair; defaults to ``pool_size`` (alias ``stride``).
        padding: ``'valid'`` (default) or ``'same'``.
        data_format: ``'channels_last'``/``'NHWC'`` or ``'channels_first'``/``'NCHW'``.

    Returns:
        The pooled array, named ``<name>/output``.
    """
    pool, stride, pad, fmt = _pool_args(
        "MaxPooling", inputs, pool_size, strides, padding, data_format
    )
    return max_pool(inputs, pool, stride, pad, fmt)


@layer_register(log_shape=True, positional=("pool_size", "strides"), aliases=_POOL_ALIASES)
def AvgPooling(
    inputs: jax.Array,
    pool_size: Size2D,
    strides: Size2D | None = None,
    padding: str = "valid",
    data_format: str = "channels_last",
) -> jax.Array:
    """Average pooling, tensorpack's ``AvgPooling`` (``tf.layers.AveragePooling2D``).

    With ``padding='same'`` the padded elements are not counted, as in TensorFlow.

    Args:
        inputs: 4-D, in ``data_format``.
        pool_size: int or pair (alias ``shape``).
        strides: int or pair; defaults to ``pool_size`` (alias ``stride``).
        padding: ``'valid'`` (default) or ``'same'``.
        data_format: ``'channels_last'``/``'NHWC'`` or ``'channels_first'``/``'NCHW'``.

    Returns:
        The pooled array, named ``<name>/output``.
    """
    pool, stride, pad, fmt = _pool_args(
        "AvgPooling", inputs, pool_size, strides, padding, data_format
    )
    return avg_pool(inputs, pool, stride, pad, fmt)


@layer_register(log_shape=True)
def GlobalAvgPooling(x: jax.Array, data_format: str = "channels_last") -> jax.Array:
    """Global average pooling, tensorpack's ``GlobalAvgPooling``: ``[N, C]`` from a 4-D map.

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> y, _ = tp.GlobalAvgPooling.apply({}, {}, jnp.ones((2, 3, 3, 5)))
        >>> y.shape
        (2, 5)
    """
    who = layer_context("GlobalAvgPooling")
    utils.check_rank(x, (4,), who=who, arg="x")
    fmt = utils.data_format(data_format, who=who)
    return jnp.mean(x, axis=(1, 2) if fmt == "NHWC" else (2, 3))


def fixed_unpool(x: jax.Array, mat: jax.Array, fmt: str) -> jax.Array:
    """The Kronecker product of each channel of ``x`` with ``mat``: every input pixel becomes
    a ``mat``-shaped block scaled by it (``[N, H, W, C] -> [N, H * sh, W * sw, C]``)."""
    sh, sw = mat.shape
    n = x.shape[0]
    m = mat.astype(x.dtype)
    if fmt == "NHWC":
        _, h, w, c = x.shape
        y = x[:, :, None, :, None, :] * m[None, None, :, None, :, None]
        return y.reshape(n, h * sh, w * sw, c)
    _, c, h, w = x.shape
    y = x[:, :, :, None, :, None] * m[None, None, None, :, None, :]
    return y.reshape(n, c, h * sh, w * sw)


@layer_register(log_shape=True)
def FixedUnPooling(
    x: jax.Array, shape: Any, unpool_mat: Any = None, data_format: str = "channels_last"
) -> jax.Array:
    """Unpooling with a fixed matrix, tensorpack's ``FixedUnPooling``.

    Args:
        x: a 4-D array in ``data_format``.
        shape: int or ``(sh, sw)``, the upsampling factors.
        unpool_mat: an ``(sh, sw)`` array (NumPy or JAX); by default 1 at the top-left corner
            and 0 elsewhere, so each input pixel lands at the top-left of its block.
        data_format: ``'channels_last'``/``'NHWC'`` or ``'channels_first'``/``'NCHW'``.

    Returns:
        ``[N, H * sh, W * sw, C]`` (or the NCHW equivalent), in ``x``'s dtype.

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> y, _ = tp.FixedUnPooling.apply({}, {}, jnp.ones((1, 1, 1, 1)), 2)
        >>> y[0, :, :, 0]
        Array([[1., 0.],
               [0., 0.]], dtype=float32)
    """
    who = layer_context("FixedUnPooling")
    utils.check_rank(x, (4,), who=who, arg="x")
    utils.check_floating(x, who=who, arg="x")
    fmt = utils.data_format(data_format, who=who)
    factors = utils.shape2d(shape, who=who, arg="shape")
    if unpool_mat is None:
        mat = jnp.zeros(factors, x.dtype).at[0, 0].set(1)
    else:
        if not hasattr(unpool_mat, "shape"):
            raise TypeError(
                f"{who}: unpool_mat must be a 2-D array of shape {factors}; got "
                f"{type(unpool_mat).__name__}"
            )
        if tuple(unpool_mat.shape) != factors:
            raise ValueError(
                f"{who}: unpool_mat must have shape {factors} (= shape); got "
                f"{tuple(unpool_mat.shape)}"
            )
        mat = jnp.asarray(unpool_mat)
    return fixed_unpool(x, mat, fmt)
