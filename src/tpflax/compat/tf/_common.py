"""Helpers shared by the ``tpflax.compat.tf`` op modules: dtype narrowing, the axis arguments
TensorFlow spells several ways, static values for shapes, TensorFlow's broadcasting, and the
error raised by ops XLA cannot compile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_dtype(dtype: Any) -> np.dtype:
    """TensorFlow dtype (or name, or NumPy/JAX dtype) to the dtype JAX computes in: 64-bit
    types become 32-bit ones unless ``jax_enable_x64`` is on (TensorFlow keeps them)."""
    if dtype is None:
        raise TypeError("tf: dtype is None")
    return np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(dtype)))


def is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def is_static(value: Any) -> bool:
    """True when ``value`` is known while tracing: Python numbers, NumPy values (what
    ``tf.shape`` gives), and lists of them."""
    if isinstance(value, list | tuple):
        return all(is_static(v) for v in value)
    return isinstance(value, int | float | np.ndarray | np.generic) and not isinstance(
        value, jax.Array
    )


def static_ints(value: Any, what: str) -> list[int]:
    """A shape-like argument (list of ints and ``tf.shape`` entries, a NumPy or concrete JAX
    array) as Python ints; a traced value raises, naming the op."""
    if isinstance(value, list | tuple):
        return [static_int(v, what) for v in value]
    if is_traced(value):
        raise TypeError(
            f"{what}: needs a static value (known when jit traces the model), got a traced "
            "tensor. Build it from static shapes (tf.shape(x), x.shape) or Python ints; "
            "XLA compiles static shapes only."
        )
    return [int(v) for v in np.asarray(value).reshape(-1)]


def static_int(value: Any, what: str) -> int:
    if is_traced(value):
        static_ints(value, what)
    return int(np.asarray(value))


def reduction_axes(axis: Any, reduction_indices: Any, who: str) -> int | tuple[int, ...] | None:
    """``axis`` or TF1's ``reduction_indices`` (only one), as what ``jnp`` reductions take."""
    if axis is not None and reduction_indices is not None:
        raise ValueError(f"{who}: give axis or reduction_indices, not both")
    if axis is None:
        axis = reduction_indices
    if axis is None:
        return None
    if isinstance(axis, Sequence | np.ndarray) or (
        isinstance(axis, jax.Array) and np.ndim(axis) > 0
    ):
        return tuple(static_ints(axis, who))
    return static_int(axis, who)


def keep_dims(keepdims: Any, old: Any, who: str) -> bool:
    """``keepdims`` or TF1's deprecated ``keep_dims`` (only one)."""
    if keepdims is not None and old is not None:
        raise ValueError(f"{who}: give keepdims or keep_dims, not both")
    value = keepdims if keepdims is not None else old
    return False if value is None else bool(value)


def unsupported(op: str, why: str, instead: str) -> NotImplementedError:
    """The error for a TensorFlow op that tpflax cannot run under XLA."""
    return NotImplementedError(f"{op} is not supported in tpflax: {why}. Instead: {instead}")


DATA_DEPENDENT = (
    "its output shape depends on the values of its input, and XLA (jit) compiles static shapes only"
)


def _holds_jax(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return any(_holds_jax(v) for v in value)
    return isinstance(value, jax.Array)


def tensor(value: Any) -> Any:
    """A JAX array for ``value``: Python numbers stay weakly typed (``x * 0.5`` keeps a
    bfloat16 ``x`` in bfloat16, as TF does), lists of Python floats give float32 and of ints
    int32 (TF's defaults), lists holding tensors are stacked (``tf.reduce_mean([a, b])``)."""
    if isinstance(value, jax.Array):
        return value
    if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
        return jnp.asarray(value)
    if isinstance(value, list | tuple) and _holds_jax(value):
        return jnp.stack([tensor(v) for v in value])
    arr = np.asarray(value)
    if arr.dtype == np.float64 and not isinstance(value, np.ndarray | np.generic):
        arr = arr.astype(np.float32)
    elif arr.dtype == np.int64 and not isinstance(value, np.ndarray | np.generic):
        arr = arr.astype(np.int32)
    return jnp.asarray(arr, dtype=as_dtype(arr.dtype))


def broadcast(*arrays: Any) -> list[Any]:
    """TensorFlow's broadcasting (ranks promoted), whatever ``jax_numpy_rank_promotion``
    says: model code written for TF relies on it."""
    xs = [tensor(a) for a in arrays]
    shape = np.broadcast_shapes(*(x.shape for x in xs))
    return [x if x.shape == shape else jnp.broadcast_to(x, shape) for x in xs]
