"""Max pooling on oneDNN, through the XLA FFI (the native part is ``csrc/onednn_max_pool.cc``,
built into the same library as the convolutions: see :mod:`tpflax._src.onednn`).

:data:`POOL` takes a float32 rank-4 input to its max pooling and, for each output, the
row-major index of the first tap of its window that holds the maximum (oneDNN's workspace,
``uint8``): the index :func:`tpflax._src.max_pool.first_max_tap` computes on XLA, from which
:mod:`tpflax._src.max_pool` builds the derivative. It is the kernel TensorFlow's ``MaxPool``
runs on CPU, and with the index as a buffer XLA cannot recompute it inside the derivative's
fusion (which it does, and costs, with the index computed in XLA). Its JVP is registered
by :mod:`tpflax._src.max_pool`; ``vmap`` folds the mapped axis into the batch.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from tpflax._src import onednn

Window = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], bool]


def window(
    shape: tuple[int, ...],
    dims: tuple[int, ...],
    strides: tuple[int, ...],
    pads: list[tuple[int, int]],
) -> Window | None:
    """``(kernel, strides, pad_lo, pad_hi, nchw)`` of a rank-4 window that pools two
    adjacent axes, ``[N, H, W, C]`` or ``[N, C, H, W]``; ``None`` for any other window."""
    if len(shape) != 4:
        return None
    for nchw, axes in ((False, (1, 2)), (True, (2, 3))):
        others = [a for a in range(4) if a not in axes]
        if all(dims[a] == 1 and strides[a] == 1 and pads[a] == (0, 0) for a in others):
            return (
                (dims[axes[0]], dims[axes[1]]),
                (strides[axes[0]], strides[axes[1]]),
                (pads[axes[0]][0], pads[axes[1]][0]),
                (pads[axes[0]][1], pads[axes[1]][1]),
                nchw,
            )
    return None


def full_window(win: Window) -> tuple[tuple[int, ...], tuple[int, ...], list[tuple[int, int]]]:
    """:func:`window`'s inverse: the rank-4 ``(dims, strides, pads)``."""
    kernel, strides, lo, hi, nchw = win
    axes = (2, 3) if nchw else (1, 2)
    dims, steps, pads = [1] * 4, [1] * 4, [(0, 0)] * 4
    for i, a in enumerate(axes):
        dims[a], steps[a], pads[a] = kernel[i], strides[i], (lo[i], hi[i])
    return tuple(dims), tuple(steps), pads


def _out_shape(shape: tuple[int, ...], win: Window) -> tuple[int, ...]:
    kernel, strides, lo, hi, nchw = win
    axes = (2, 3) if nchw else (1, 2)
    out = list(shape)
    for i, a in enumerate(axes):
        out[a] = (shape[a] + lo[i] + hi[i] - kernel[i]) // strides[i] + 1
    return tuple(out)


def _impl(x: jax.Array, *, win: Window) -> list[jax.Array]:
    kernel, strides, lo, hi, nchw = win
    out = _out_shape(x.shape, win)
    results = jax.ffi.ffi_call(
        onednn.TARGETS["max_pool"][0],
        (jax.ShapeDtypeStruct(out, x.dtype), jax.ShapeDtypeStruct(out, jnp.uint8)),
    )(
        x,
        kernel=np.array(kernel, np.int64),
        strides=np.array(strides, np.int64),
        pad_lo=np.array(lo, np.int64),
        pad_hi=np.array(hi, np.int64),
        nchw=bool(nchw),
    )
    return [onednn.varying(r, x) for r in results]


def _abstract(x: Any, *, win: Window) -> tuple[Any, Any]:
    y = onednn.result_type(x, _out_shape(x.shape, win))
    return y, y.update(dtype=jnp.uint8)


def _batched(args: Any, dims: Any, *, win: Window) -> tuple[list, list]:
    (x,), (d,) = args, dims
    x = jnp.moveaxis(x, d, 0)
    y, first = POOL.bind(x.reshape(-1, *x.shape[2:]), win=win)
    return [r.reshape(x.shape[0], -1, *r.shape[1:]) for r in (y, first)], [0, 0]


POOL = Primitive("tpflax_onednn_max_pool")
POOL.multiple_results = True


@functools.cache
def _compiled(win: Window) -> Any:
    return jax.jit(functools.partial(_impl, win=win))


POOL.def_impl(lambda x, *, win: _compiled(win)(x))
POOL.def_abstract_eval(_abstract)
mlir.register_lowering(POOL, mlir.lower_fun(_impl, multiple_results=True), platform="cpu")
batching.primitive_batchers[POOL] = _batched
