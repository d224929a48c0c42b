"""TensorFlow's math ops (``tf.reduce_mean``, ``tf.maximum``, ``tf.equal``, ``tf.argmax``, ...)
on ``jax.numpy``/``lax`` with TensorFlow's argument names, defaults and gradients.

Gradients follow TensorFlow where JAX's differ: ``tf.maximum``/``tf.minimum`` send a tie's
gradient to ``x`` (JAX splits it), ``tf.abs`` has gradient 0 at 0 (JAX's is 1)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tpflax.compat.tf import _dtypes
from tpflax.compat.tf._common import as_dtype, broadcast, keep_dims, reduction_axes, tensor
from tpflax.compat.tf._naming import named


def _reduce(fn: Any, who: str) -> Any:
    def reduce(
        input_tensor: Any,
        axis: Any = None,
        keepdims: Any = None,
        name: str | None = None,
        reduction_indices: Any = None,
        keep_dims: Any = None,
    ) -> Any:
        ax = reduction_axes(axis, reduction_indices, who)
        kd = _keep(keepdims, keep_dims, who)
        return named(fn(tensor(input_tensor), axis=ax, keepdims=kd), name)

    reduce.__name__ = reduce.__qualname__ = who.removeprefix("tf.")
    reduce.__doc__ = (
        f"``{who}``: ``axis`` (or TF1's ``reduction_indices``), ``keepdims`` (or ``keep_dims``)."
    )
    return reduce


_keep = keep_dims


def _mean(x: jax.Array, axis: Any, keepdims: bool) -> jax.Array:
    if jnp.issubdtype(x.dtype, jnp.integer):  # TensorFlow: integer division, towards zero
        total = jnp.sum(x, axis=axis, keepdims=keepdims)
        count = max(1, x.size // max(1, total.size))
        return lax.div(total, jnp.asarray(count, total.dtype))
    return jnp.mean(x, axis=axis, keepdims=keepdims)


reduce_mean = _reduce(_mean, "tf.reduce_mean")
reduce_sum = _reduce(jnp.sum, "tf.reduce_sum")
reduce_max = _reduce(jnp.max, "tf.reduce_max")
reduce_min = _reduce(jnp.min, "tf.reduce_min")
reduce_prod = _reduce(jnp.prod, "tf.reduce_prod")
reduce_all = _reduce(jnp.all, "tf.reduce_all")
reduce_any = _reduce(jnp.any, "tf.reduce_any")
reduce_logsumexp = _reduce(jax.nn.logsumexp, "tf.reduce_logsumexp")


def _variance(x: jax.Array, axis: Any, keepdims: bool) -> jax.Array:
    mean = jnp.mean(x, axis=axis, keepdims=True)
    return jnp.mean(jnp.square(x - mean), axis=axis, keepdims=keepdims)


def _std(x: jax.Array, axis: Any, keepdims: bool) -> jax.Array:
    return jnp.sqrt(_variance(x, axis, keepdims))


reduce_variance = _reduce(_variance, "tf.reduce_variance")
reduce_std = _reduce(_std, "tf.reduce_std")


def count_nonzero(
    input_tensor: Any = None,
    axis: Any = None,
    keepdims: Any = None,
    dtype: Any = _dtypes.int64,
    name: str | None = None,
    reduction_indices: Any = None,
    keep_dims: Any = None,
    input: Any = None,
) -> Any:
    """``tf.count_nonzero``; int64 in TF, int32 here without ``jax_enable_x64``."""
    x = tensor(input if input_tensor is None else input_tensor)
    ax = reduction_axes(axis, reduction_indices, "tf.count_nonzero")
    kd = _keep(keepdims, keep_dims, "tf.count_nonzero")
    out = jnp.sum(x != 0, axis=ax, keepdims=kd, dtype=as_dtype(dtype))
    return named(out, name)


def _arg(fn: Any, who: str) -> Any:
    def arg(
        input: Any,
        axis: Any = None,
        name: str | None = None,
        dimension: Any = None,
        output_type: Any = _dtypes.int64,
    ) -> Any:
        if axis is not None and dimension is not None:
            raise ValueError(f"{who}: give axis or dimension, not both")
        ax = axis if axis is not None else (dimension if dimension is not None else 0)
        out = fn(tensor(input), axis=int(ax)).astype(as_dtype(output_type))
        return named(out, name)

    arg.__name__ = arg.__qualname__ = who.removeprefix("tf.")
    arg.__doc__ = (
        f"``{who}``: axis defaults to 0 (not flattened); int64 in TF, int32 here without "
        "``jax_enable_x64``."
    )
    return arg


argmax = _arg(jnp.argmax, "tf.argmax")
argmin = _arg(jnp.argmin, "tf.argmin")


def _binary(fn: Any, who: str, doc: str = "") -> Any:
    def op(x: Any, y: Any, name: str | None = None) -> Any:
        return named(fn(*broadcast(x, y)), name)

    op.__name__ = op.__qualname__ = who.removeprefix("tf.")
    op.__doc__ = f"``{who}``{doc}."
    return op


def _unary(fn: Any, who: str, doc: str = "") -> Any:
    def op(x: Any, name: str | None = None) -> Any:
        return named(fn(tensor(x)), name)

    op.__name__ = op.__qualname__ = who.removeprefix("tf.")
    op.__doc__ = f"``{who}``{doc}."
    return op


def _tf_maximum(x: jax.Array, y: jax.Array) -> jax.Array:
    x, y = broadcast(x, y)
    return jnp.where(x >= y, x, y)


def _tf_minimum(x: jax.Array, y: jax.Array) -> jax.Array:
    x, y = broadcast(x, y)
    return jnp.where(x <= y, x, y)


@jax.custom_jvp
def _tf_abs(x: jax.Array) -> jax.Array:
    return jnp.abs(x)


@_tf_abs.defjvp
def _tf_abs_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return jnp.abs(x), t * jnp.sign(x)


def _truediv(x: jax.Array, y: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jnp.integer):
        x, y = x.astype(as_dtype(_dtypes.float64)), y.astype(as_dtype(_dtypes.float64))
    return x / y


def _div(x: jax.Array, y: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jnp.integer):
        return jnp.floor_divide(x, y)
    return x / y


equal = _binary(jnp.equal, "tf.equal")
not_equal = _binary(jnp.not_equal, "tf.not_equal")
greater = _binary(jnp.greater, "tf.greater")
greater_equal = _binary(jnp.greater_equal, "tf.greater_equal")
less = _binary(jnp.less, "tf.less")
less_equal = _binary(jnp.less_equal, "tf.less_equal")
logical_and = _binary(jnp.logical_and, "tf.logical_and")
logical_or = _binary(jnp.logical_or, "tf.logical_or")
logical_xor = _binary(jnp.logical_xor, "tf.logical_xor")
multiply = _binary(jnp.multiply, "tf.multiply")
add = _binary(jnp.add, "tf.add")
subtract = _binary(jnp.subtract, "tf.subtract")
truediv = _binary(_truediv, "tf.truediv", "; integers give float64 in TF, float32 here without x64")
divide = _binary(_truediv, "tf.divide", "; integers give float64 in TF, float32 here without x64")
div = _binary(_div, "tf.div", " (TF1): floor division for integers")
floordiv = _binary(jnp.floor_divide, "tf.floordiv")
floormod = mod = _binary(jnp.remainder, "tf.floormod", " (``tf.mod``)")
maximum = _binary(_tf_maximum, "tf.maximum", "; a tie's gradient goes to x, as in TF")
minimum = _binary(_tf_minimum, "tf.minimum", "; a tie's gradient goes to x, as in TF")
pow = _binary(jnp.power, "tf.pow")
squared_difference = _binary(lambda x, y: jnp.square(x - y), "tf.squared_difference")
logical_not = _unary(jnp.logical_not, "tf.logical_not")
negative = _unary(jnp.negative, "tf.negative")
square = _unary(jnp.square, "tf.square")
sqrt = _unary(jnp.sqrt, "tf.sqrt")
rsqrt = _unary(lax.rsqrt, "tf.rsqrt")
abs = _unary(_tf_abs, "tf.abs", "; gradient 0 at 0, as in TF")
sign = _unary(jnp.sign, "tf.sign")
floor = _unary(jnp.floor, "tf.floor")
ceil = _unary(jnp.ceil, "tf.ceil")
round = _unary(jnp.round, "tf.round", " (half to even)")
exp = _unary(jnp.exp, "tf.exp")
log = _unary(jnp.log, "tf.log")
log1p = _unary(jnp.log1p, "tf.log1p")
tanh = _unary(jnp.tanh, "tf.tanh")
sigmoid = _unary(jax.nn.sigmoid, "tf.sigmoid")
sin = _unary(jnp.sin, "tf.sin")
cos = _unary(jnp.cos, "tf.cos")
reciprocal = _unary(jnp.reciprocal, "tf.reciprocal")
is_nan = _unary(jnp.isnan, "tf.is_nan")
is_finite = _unary(jnp.isfinite, "tf.is_finite")


def add_n(inputs: Any, name: str | None = None) -> Any:
    """``tf.add_n``: the sum of a list of same-shaped tensors."""
    xs = [tensor(x) for x in inputs]
    if not xs:
        raise ValueError("tf.add_n: inputs must be a non-empty list")
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return named(out, name)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any, name: str | None = None) -> Any:
    """``tf.clip_by_value``: gradient passes where ``min <= t <= max``, as in TF."""
    x = tensor(t)
    out = _tf_maximum(_tf_minimum(x, tensor(clip_value_max)), tensor(clip_value_min))
    return named(out, name)


def matmul(
    a: Any,
    b: Any,
    transpose_a: bool = False,
    transpose_b: bool = False,
    adjoint_a: bool = False,
    adjoint_b: bool = False,
    a_is_sparse: bool = False,
    b_is_sparse: bool = False,
    name: str | None = None,
) -> Any:
    """``tf.matmul`` (batched over leading axes), at full float32 precision."""
    x, y = tensor(a), tensor(b)
    if transpose_a or adjoint_a:
        x = jnp.swapaxes(x, -1, -2)
    if transpose_b or adjoint_b:
        y = jnp.swapaxes(y, -1, -2)
    return named(jnp.matmul(x, y, precision=lax.Precision.HIGHEST), name)


def einsum(equation: str, *inputs: Any, name: str | None = None, **kwargs: Any) -> Any:
    """``tf.einsum`` at full float32 precision."""
    out = jnp.einsum(equation, *(tensor(x) for x in inputs), precision=lax.Precision.HIGHEST)
    return named(out, name)


def divide_no_nan(x: Any, y: Any, name: str | None = None) -> Any:
    """``tf.math.divide_no_nan`` (``tf.div_no_nan``): 0 where ``y`` is 0, gradient too."""
    a, b = broadcast(x, y)
    zero = b == 0
    return named(jnp.where(zero, jnp.zeros_like(a), a / jnp.where(zero, jnp.ones_like(b), b)), name)


div_no_nan = divide_no_nan


def norm(
    tensor_: Any,
    ord: Any = "euclidean",
    axis: Any = None,
    keepdims: Any = None,
    name: str | None = None,
    keep_dims: Any = None,
) -> Any:
    """``tf.norm``: the euclidean (``2``), ``1`` or ``inf`` norm of vectors (a matrix norm
    over two axes is only the Frobenius one, ``'euclidean'``/``'fro'``)."""
    x = tensor(tensor_)
    kd = _keep(keepdims, keep_dims, "tf.norm")
    ax = reduction_axes(axis, None, "tf.norm")
    if ord in ("euclidean", "fro", 2, 2.0):
        out = jnp.sqrt(jnp.sum(jnp.square(x), axis=ax, keepdims=kd))
    elif ord in (1, 1.0):
        out = jnp.sum(_tf_abs(x), axis=ax, keepdims=kd)
    elif ord == np.inf:
        out = jnp.max(_tf_abs(x), axis=ax, keepdims=kd)
    else:
        raise ValueError(f"tf.norm: ord must be 'euclidean', 'fro', 1, 2 or np.inf; got {ord!r}")
    return named(out, name)


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Any:
    """``tf.clip_by_norm``: ``t * clip_norm / max(l2norm(t), clip_norm)``."""
    x = tensor(t)
    ax = reduction_axes(axes, None, "tf.clip_by_norm")
    l2sum = jnp.sum(jnp.square(x), axis=ax, keepdims=True)
    pred = l2sum > 0
    l2sum_safe = jnp.where(pred, l2sum, jnp.ones_like(l2sum))
    l2norm = jnp.where(pred, jnp.sqrt(l2sum_safe), l2sum)
    c = tensor(clip_norm).astype(x.dtype)
    return named(x * c / _tf_maximum(l2norm, c), name)


def unsorted_segment_sum(
    data: Any, segment_ids: Any, num_segments: Any, name: str | None = None
) -> Any:
    """``tf.unsorted_segment_sum`` (``num_segments`` static; ids out of range are dropped)."""
    n = int(np.asarray(num_segments))
    out = jax.ops.segment_sum(tensor(data), tensor(segment_ids), num_segments=n)
    return named(out, name)


def cumsum(
    x: Any, axis: int = 0, exclusive: bool = False, reverse: bool = False, name: str | None = None
) -> Any:
    """``tf.cumsum``."""
    v = tensor(x)
    if reverse:
        v = jnp.flip(v, axis)
    out = jnp.cumsum(v, axis=axis)
    if exclusive:
        out = out - v
    if reverse:
        out = jnp.flip(out, axis)
    return named(out, name)


__all__ = [
    "abs",
    "add",
    "add_n",
    "argmax",
    "argmin",
    "ceil",
    "clip_by_norm",
    "clip_by_value",
    "cos",
    "count_nonzero",
    "cumsum",
    "div",
    "div_no_nan",
    "divide",
    "divide_no_nan",
    "einsum",
    "equal",
    "exp",
    "floor",
    "floordiv",
    "floormod",
    "greater",
    "greater_equal",
    "is_finite",
    "is_nan",
    "less",
    "less_equal",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "matmul",
    "maximum",
    "minimum",
    "mod",
    "multiply",
    "negative",
    "norm",
    "not_equal",
    "pow",
    "reciprocal",
    "reduce_all",
    "reduce_any",
    "reduce_logsumexp",
    "reduce_max",
    "reduce_mean",
    "reduce_min",
    "reduce_prod",
    "reduce_std",
    "reduce_sum",
    "reduce_variance",
    "round",
    "rsqrt",
    "sigmoid",
    "sign",
    "sin",
    "sqrt",
    "square",
    "squared_difference",
    "subtract",
    "tanh",
    "truediv",
    "unsorted_segment_sum",
]
