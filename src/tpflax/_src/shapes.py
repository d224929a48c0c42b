"""Shape layers: tensorpack's ``ConcatWith``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src.registry import is_array, layer_context, layer_register


@layer_register(use_scope=None)
def ConcatWith(x: jax.Array, tensor: Any, dim: int) -> jax.Array:
    """``jnp.concatenate([x] + tensor, dim)``, tensorpack's ``ConcatWith`` (for
    ``LinearWrap`` chains).

    Args:
        x: the first array.
        tensor: an array or a list of arrays, placed after ``x``.
        dim: the axis to concatenate along (negative counts from the end).

    Returns:
        The concatenation. Arrays of different dtypes are an error (``tf.concat`` refuses
        them too), not silently promoted.

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> y, _ = tp.ConcatWith.apply({}, {}, jnp.ones((2, 3)), [jnp.zeros((2, 1))], 1)
        >>> y.shape
        (2, 4)
    """
    who = layer_context("ConcatWith")
    others = list(tensor) if isinstance(tensor, (list, tuple)) else [tensor]
    arrays = [x, *others]
    for i, t in enumerate(others):
        if not is_array(t):
            raise TypeError(
                f"{who}: tensor must be an array or a list of arrays; item {i} is "
                f"{type(t).__name__}"
            )
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{who}: dim must be an int; got {dim!r}")
    ndim = x.ndim
    if not -ndim <= dim < ndim:
        raise ValueError(f"{who}: dim (={dim}) is out of range for a {ndim}-D input")
    axis = dim % ndim
    for i, t in enumerate(arrays[1:]):
        other = tuple(s for a, s in enumerate(t.shape) if a != axis)
        mine = tuple(s for a, s in enumerate(x.shape) if a != axis)
        if t.ndim != ndim or other != mine:
            raise ValueError(
                f"{who}: tensor {i} has shape {tuple(t.shape)}, which does not match the "
                f"input's {tuple(x.shape)} outside axis {dim}"
            )
        if t.dtype != x.dtype:
            raise TypeError(
                f"{who}: tensor {i} has dtype {t.dtype}, the input {x.dtype}; cast one first"
            )
    return jnp.concatenate(arrays, axis=axis)
