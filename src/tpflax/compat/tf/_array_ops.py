"""TensorFlow's array ops (``tf.reshape``, ``tf.concat``, ``tf.shape``, ``tf.gather``,
``tf.pad``, ...) on ``jax.numpy``/``lax``, with TensorFlow's argument names and positions.

Shapes are static under ``jit``: ``tf.shape(x)`` and ``tf.size(x)`` give NumPy int32 values
(concrete while tracing), and ``tf.stack``/``tf.concat`` of such integers stay NumPy, so that
``tf.reshape(x, [tf.shape(x)[0], -1])`` and ``tf.reshape(x, tf.stack([n, -1]))`` compile.
Ops whose output shape depends on values (``tf.boolean_mask``, one-argument ``tf.where``,
``tf.unique``) raise at the call."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tpflax.compat.tf import _dtypes
from tpflax.compat.tf._common import (
    DATA_DEPENDENT,
    as_dtype,
    broadcast,
    is_static,
    is_traced,
    static_int,
    static_ints,
    tensor,
    unsupported,
)
from tpflax.compat.tf._naming import named

newaxis = None


def _all_static_ints(values: Any) -> bool:
    return all(is_static(v) and np.asarray(v).dtype.kind in "iu" for v in values)


def cast(x: Any, dtype: Any, name: str | None = None) -> Any:
    """``tf.cast``; 64-bit dtypes compute in 32 bits without ``jax_enable_x64``."""
    return named(tensor(x).astype(as_dtype(dtype)), name)


def to_float(x: Any, name: str = "ToFloat") -> Any:
    """``tf.to_float`` (TF1): ``tf.cast(x, tf.float32)``."""
    return cast(x, _dtypes.float32, name if name != "ToFloat" else None)


def to_int32(x: Any, name: str = "ToInt32") -> Any:
    """``tf.to_int32`` (TF1): ``tf.cast(x, tf.int32)``."""
    return cast(x, _dtypes.int32, name if name != "ToInt32" else None)


def shape(input: Any, name: str | None = None, out_type: Any = _dtypes.int32) -> Any:
    """``tf.shape``: the static shape as a NumPy int32 array, concrete under ``jit`` (XLA's
    shapes are static), so its entries can build other shapes.

    >>> import jax, jax.numpy as jnp
    >>> from tpflax.compat import tf
    >>> flat = jax.jit(lambda x: tf.reshape(x, [tf.shape(x)[0], -1]))
    >>> flat(jnp.ones((2, 3, 4))).shape
    (2, 12)
    """
    return named(np.asarray(np.shape(input), as_dtype(out_type)), name)


def size(input: Any, name: str | None = None, out_type: Any = _dtypes.int32) -> Any:
    """``tf.size``: a NumPy int32 scalar, static under ``jit``."""
    return named(np.asarray(np.size(input), as_dtype(out_type)), name)


def rank(input: Any, name: str | None = None) -> Any:
    """``tf.rank``: a NumPy int32 scalar, static under ``jit``."""
    return named(np.asarray(np.ndim(input), np.int32), name)


def reshape(tensor_: Any, shape: Any, name: str | None = None) -> Any:
    """``tf.reshape``: ``shape`` must be static (ints, ``tf.shape`` entries, ``-1``)."""
    return named(jnp.reshape(tensor(tensor_), static_ints(shape, "tf.reshape")), name)


def concat(values: Any, axis: Any, name: str | None = None) -> Any:
    """``tf.concat``; integer values known while tracing (``tf.shape`` pieces) stay static."""
    ax = static_int(axis, "tf.concat")
    out: Any
    if _all_static_ints(values):
        out = np.concatenate([np.atleast_1d(np.asarray(v, np.int32)) for v in values], ax)
    else:
        out = jnp.concatenate([tensor(v) for v in values], axis=ax)
    return named(out, name)


def stack(values: Any, axis: int = 0, name: str | None = None) -> Any:
    """``tf.stack``; integers known while tracing (``tf.shape`` entries) stay static."""
    out: Any
    if _all_static_ints(values):
        out = np.stack([np.asarray(v, np.int32) for v in values], axis)
    else:
        out = jnp.stack([tensor(v) for v in values], axis=axis)
    return named(out, name)


def unstack(value: Any, num: int | None = None, axis: int = 0, name: str = "unstack") -> Any:
    """``tf.unstack``: a list of slices along ``axis``."""
    x = tensor(value)
    n = x.shape[axis]
    if num is not None and num != n:
        raise ValueError(f"tf.unstack: num={num} but axis {axis} has size {n}")
    return [jnp.take(x, i, axis=axis) for i in range(n)]


def transpose(a: Any, perm: Any = None, name: str | None = None, conjugate: bool = False) -> Any:
    """``tf.transpose``: ``perm`` defaults to reversing the axes."""
    p = None if perm is None else static_ints(perm, "tf.transpose")
    return named(jnp.transpose(tensor(a), p), name)


def expand_dims(input: Any, axis: Any = None, name: str | None = None, dim: Any = None) -> Any:
    """``tf.expand_dims`` (``axis`` or TF1's ``dim``)."""
    ax = axis if axis is not None else dim
    if ax is None:
        raise ValueError("tf.expand_dims: axis is required")
    return named(jnp.expand_dims(tensor(input), static_int(ax, "tf.expand_dims")), name)


def squeeze(
    input: Any,
    axis: Any = None,
    name: str | None = None,
    squeeze_dims: Any = None,
) -> Any:
    """``tf.squeeze`` (``axis`` or TF1's ``squeeze_dims``); all size-1 axes by default."""
    ax = axis if axis is not None else squeeze_dims
    if isinstance(ax, int):
        ax = [ax]
    x = tensor(input)
    out = jnp.squeeze(x) if not ax else jnp.squeeze(x, tuple(static_ints(ax, "tf.squeeze")))
    return named(out, name)


def _batched(fn: Any, batch_dims: int) -> Any:
    for _ in range(batch_dims):
        fn = jax.vmap(fn)
    return fn


def gather(
    params: Any,
    indices: Any,
    validate_indices: Any = None,
    name: str | None = None,
    axis: Any = None,
    batch_dims: int = 0,
) -> Any:
    """``tf.gather``. Out-of-range indices give NaN (floats) instead of TF's error on CPU."""
    p, i = tensor(params), tensor(indices)
    ax = 0 if axis is None else static_int(axis, "tf.gather")
    if ax < 0:
        ax += p.ndim
    if batch_dims < 0:
        batch_dims += i.ndim
    inner = ax - batch_dims
    out = _batched(lambda p, i: jnp.take(p, i, axis=inner), batch_dims)(p, i)
    return named(out, name)


def gather_nd(params: Any, indices: Any, name: str | None = None, batch_dims: int = 0) -> Any:
    """``tf.gather_nd``: the last axis of ``indices`` indexes the leading axes of ``params``."""
    p, i = tensor(params), tensor(indices)

    def one(p: jax.Array, i: jax.Array) -> jax.Array:
        return p[tuple(jnp.moveaxis(i, -1, 0))]

    return named(_batched(one, batch_dims)(p, i), name)


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Any:
    """``tf.where(condition, x, y)`` (TF1: a vector condition picks rows; shapes broadcast as
    in ``tf.where_v2``); the one-argument form (coordinates of true entries) raises, its
    output shape depending on values."""
    if x is None and y is None:
        raise unsupported(
            "tf.where(condition) with one argument",
            DATA_DEPENDENT,
            "tf.where(condition, x, y) with both branches, a mask multiply "
            "(x * tf.cast(condition, x.dtype)), or jnp.nonzero(condition, size=N, "
            "fill_value=...) with a static bound N",
        )
    if x is None or y is None:
        raise ValueError("tf.where: give both x and y, or neither")
    c, a, b = tensor(condition), tensor(x), tensor(y)
    if c.ndim == 1 and a.ndim > 1 and c.shape[0] == a.shape[0]:  # TF1: picks whole rows
        c = c.reshape(c.shape + (1,) * (a.ndim - 1))
    return named(jnp.where(*broadcast(c, a, b)), name)


where_v2 = where


def boolean_mask(tensor_: Any, mask: Any, name: str = "boolean_mask", axis: Any = None) -> Any:
    """``tf.boolean_mask``: raises (data-dependent shape)."""
    raise unsupported(
        "tf.boolean_mask",
        DATA_DEPENDENT,
        "keep the shape and zero the dropped entries (tf.where(mask, x, tf.zeros_like(x))), "
        "or weight a loss by tf.cast(mask, tf.float32) and divide by its sum",
    )


def unique(x: Any, out_idx: Any = None, name: str | None = None) -> Any:
    """``tf.unique``: raises (data-dependent shape)."""
    raise unsupported(
        "tf.unique",
        DATA_DEPENDENT,
        "jnp.unique(x, size=N, fill_value=...) with a static bound N",
    )


def split(
    value: Any, num_or_size_splits: Any, axis: Any = 0, num: Any = None, name: str = "split"
) -> Any:
    """``tf.split``: equal parts (an int) or sizes (a list, one entry may be -1)."""
    x = tensor(value)
    ax = static_int(axis, "tf.split")
    n = x.shape[ax]
    if isinstance(num_or_size_splits, int | np.integer):
        parts = int(num_or_size_splits)
        if n % parts:
            raise ValueError(f"tf.split: axis {ax} (size {n}) is not divisible by {parts}")
        sizes = [n // parts] * parts
    else:
        sizes = static_ints(num_or_size_splits, "tf.split")
        if sizes.count(-1) == 1:
            sizes[sizes.index(-1)] = n - (sum(sizes) + 1)
        if sum(sizes) != n:
            raise ValueError(f"tf.split: sizes {sizes} do not add up to axis {ax} (size {n})")
    return jnp.split(x, np.cumsum(sizes)[:-1].tolist(), axis=ax)


def pad(
    tensor_: Any,
    paddings: Any,
    mode: str = "CONSTANT",
    name: str | None = None,
    constant_values: Any = 0,
) -> Any:
    """``tf.pad``: modes ``'CONSTANT'``, ``'REFLECT'``, ``'SYMMETRIC'`` (any case)."""
    x = tensor(tensor_)
    widths = np.asarray(static_ints(np.asarray(paddings), "tf.pad")).reshape(-1, 2).tolist()
    m = mode.upper()
    if m == "CONSTANT":
        out = jnp.pad(x, widths, constant_values=tensor(constant_values).astype(x.dtype))
    elif m in ("REFLECT", "SYMMETRIC"):
        out = jnp.pad(x, widths, mode=m.lower())
    else:
        raise ValueError(f"tf.pad: mode must be CONSTANT, REFLECT or SYMMETRIC; got {mode!r}")
    return named(out, name)


def _filled(value: Any, dtype: Any, shape: Any, who: str) -> np.ndarray:
    """TensorFlow's constant: a scalar or short list fills ``shape``, padded with its last
    value (graph mode); too many values raise."""
    arr = np.asarray(value)
    if dtype is not None:
        arr = arr.astype(as_dtype(dtype))
    elif arr.dtype == np.float64 and not isinstance(value, np.ndarray | np.generic):
        arr = arr.astype(np.float32)
    elif arr.dtype == np.int64 and not isinstance(value, np.ndarray | np.generic):
        arr = arr.astype(np.int32)
    if shape is None:
        return arr.astype(as_dtype(arr.dtype))
    dims = static_ints(shape, who)
    total = int(np.prod(dims))
    flat = arr.reshape(-1)
    if flat.size > total:
        raise ValueError(f"{who}: {flat.size} values do not fit shape {dims}")
    if flat.size < total:
        flat = np.concatenate([flat, np.repeat(flat[-1:], total - flat.size)])
    return flat.reshape(dims).astype(as_dtype(arr.dtype))


def constant(
    value: Any,
    dtype: Any = None,
    shape: Any = None,
    name: str | None = None,
    verify_shape: bool = False,
) -> Any:
    """``tf.constant`` (TF1): a NumPy array (static under ``jit``, so it can give shapes and
    paddings); Python floats give float32, ints int32; a short value fills ``shape`` with its
    last element."""
    arr = _filled(value, dtype, shape, "tf.constant")
    if verify_shape and shape is not None and np.shape(value) != arr.shape:
        raise TypeError(f"tf.constant: value shape {np.shape(value)} is not {arr.shape}")
    return named(arr, name)


def zeros(shape: Any, dtype: Any = _dtypes.float32, name: str | None = None) -> Any:
    """``tf.zeros``."""
    return named(jnp.zeros(static_ints(shape, "tf.zeros"), as_dtype(dtype)), name)


def ones(shape: Any, dtype: Any = _dtypes.float32, name: str | None = None) -> Any:
    """``tf.ones``."""
    return named(jnp.ones(static_ints(shape, "tf.ones"), as_dtype(dtype)), name)


def fill(dims: Any, value: Any, name: str | None = None) -> Any:
    """``tf.fill``."""
    v = tensor(value)
    return named(jnp.full(static_ints(dims, "tf.fill"), v, v.dtype), name)


def zeros_like(
    tensor_: Any, dtype: Any = None, name: str | None = None, optimize: bool = True
) -> Any:
    """``tf.zeros_like``."""
    x = tensor(tensor_)
    return named(jnp.zeros_like(x, None if dtype is None else as_dtype(dtype)), name)


def ones_like(
    tensor_: Any, dtype: Any = None, name: str | None = None, optimize: bool = True
) -> Any:
    """``tf.ones_like``."""
    x = tensor(tensor_)
    return named(jnp.ones_like(x, None if dtype is None else as_dtype(dtype)), name)


def tile(input: Any, multiples: Any, name: str | None = None) -> Any:
    """``tf.tile``: ``multiples`` must be static."""
    return named(jnp.tile(tensor(input), static_ints(multiples, "tf.tile")), name)


def one_hot(
    indices: Any,
    depth: Any,
    on_value: Any = None,
    off_value: Any = None,
    axis: Any = None,
    dtype: Any = None,
    name: str | None = None,
) -> Any:
    """``tf.one_hot``: float32 by default; an index outside ``[0, depth)`` gives all
    ``off_value``."""
    if dtype is None:
        given = on_value if on_value is not None else off_value
        dt = tensor(given).dtype if given is not None else _dtypes.float32
    else:
        dt = as_dtype(dtype)
    on = jnp.asarray(1 if on_value is None else on_value, dt)
    off = jnp.asarray(0 if off_value is None else off_value, dt)
    i = tensor(indices)
    hot = jnp.equal(
        *broadcast(i[..., None], jnp.arange(static_int(depth, "tf.one_hot"), dtype=i.dtype))
    )
    out = jnp.where(hot, on, off)
    if axis is not None and axis != -1:
        out = jnp.moveaxis(out, -1, axis)
    return named(out, name)


def range(
    start: Any,
    limit: Any = None,
    delta: Any = 1,
    dtype: Any = None,
    name: str | None = None,
) -> Any:
    """``tf.range``: a NumPy array (static under ``jit``: usable as axes and indices); floats
    accumulate ``delta`` step by step in the dtype, as TF does."""
    if limit is None:
        start, limit = 0, start
    values = [np.asarray(v).item() for v in (start, limit, delta)]
    if dtype is None:
        floating = any(isinstance(v, float) for v in values)
        dt = as_dtype(_dtypes.float32 if floating else _dtypes.int32)
    else:
        dt = as_dtype(dtype)
    lo, hi, step = values
    count = max(0, int(np.ceil((hi - lo) / step)))
    steps = np.full(count, step, dt)
    if count:
        steps[0] = lo
    return named(np.cumsum(steps, dtype=dt), name)


def linspace(start: Any, stop: Any, num: Any, name: str | None = None, axis: int = 0) -> Any:
    """``tf.linspace`` (float32 for Python numbers)."""
    a, b = tensor(start), tensor(stop)
    out = jnp.linspace(a, b, static_int(num, "tf.linspace"), axis=axis, dtype=a.dtype)
    return named(out, name)


def meshgrid(*args: Any, indexing: str = "xy", name: str | None = None) -> Any:
    """``tf.meshgrid``."""
    return jnp.meshgrid(*(tensor(a) for a in args), indexing=indexing)


def sequence_mask(
    lengths: Any, maxlen: Any = None, dtype: Any = _dtypes.bool, name: str | None = None
) -> Any:
    """``tf.sequence_mask``: ``maxlen`` must be given (TF's default, ``max(lengths)``, is a
    data-dependent shape)."""
    if maxlen is None:
        raise unsupported(
            "tf.sequence_mask without maxlen",
            DATA_DEPENDENT,
            "pass maxlen= (a static int, e.g. the padded length x.shape[1])",
        )
    n = tensor(lengths)
    steps = jnp.arange(static_int(maxlen, "tf.sequence_mask"), dtype=n.dtype)
    mask = jnp.less(*broadcast(steps, n[..., None]))
    return named(mask.astype(as_dtype(dtype)), name)


def scatter_nd(indices: Any, updates: Any, shape: Any, name: str | None = None) -> Any:
    """``tf.scatter_nd``: repeated indices add up, as in TF."""
    i, u = tensor(indices), tensor(updates)
    out = jnp.zeros(static_ints(shape, "tf.scatter_nd"), u.dtype)
    return named(out.at[tuple(jnp.moveaxis(i, -1, 0))].add(u), name)


def slice(input_: Any, begin: Any, size: Any, name: str | None = None) -> Any:
    """``tf.slice``: ``size`` static (``-1``: to the end); a traced ``begin`` is allowed."""
    x = tensor(input_)
    sizes = static_ints(size, "tf.slice")
    if is_traced(begin) or (isinstance(begin, jax.Array) and not is_static(begin)):
        starts = jnp.asarray(begin)
        if -1 in sizes:
            raise ValueError("tf.slice: size -1 needs a static begin")
        return named(lax.dynamic_slice(x, list(starts), sizes), name)
    b = static_ints(begin, "tf.slice")
    ends = [
        x.shape[k] if s == -1 else bk + s for k, (bk, s) in enumerate(zip(b, sizes, strict=True))
    ]
    return named(lax.slice(x, b, ends), name)


def reverse(tensor_: Any, axis: Any, name: str | None = None) -> Any:
    """``tf.reverse``."""
    return named(jnp.flip(tensor(tensor_), tuple(static_ints(axis, "tf.reverse"))), name)


def stop_gradient(input: Any, name: str | None = None) -> Any:
    """``tf.stop_gradient``."""
    return named(lax.stop_gradient(tensor(input)), name)


__all__ = [
    "boolean_mask",
    "cast",
    "concat",
    "constant",
    "expand_dims",
    "fill",
    "gather",
    "gather_nd",
    "linspace",
    "meshgrid",
    "newaxis",
    "one_hot",
    "ones",
    "ones_like",
    "pad",
    "range",
    "rank",
    "reshape",
    "reverse",
    "scatter_nd",
    "sequence_mask",
    "shape",
    "size",
    "slice",
    "split",
    "squeeze",
    "stack",
    "stop_gradient",
    "tile",
    "to_float",
    "to_int32",
    "transpose",
    "unique",
    "unstack",
    "where",
    "where_v2",
    "zeros",
    "zeros_like",
]
