"""Max pooling whose value and derivative are built from the window's taps, not XLA's
``reduce_window`` and select-and-scatter.

The value is the elementwise maximum of the window's strided views of the ``-inf``-padded
input (``taps_max``): ``reduce_window``'s values, NaN and infinities included. The
derivative gives each output's gradient to the *first* element of its window (row-major)
that holds the maximum, which is TensorFlow's ``MaxPoolGrad`` rule and JAX's reverse-mode
one (JAX's forward mode may pick another of equal maxima; here both modes agree). It is
written as a JVP of shifted strided views of the padded input, grouped by the residue of the
tap offset modulo the stride, so that the transposed (reverse-mode) pass is a few padded sums
over output-sized arrays:

* ``first``: for every output, the index of the first tap equal to the output (one pass over
  the ``kh * kw`` views, an ``int8``/``int32`` array of the output's shape);
* the tangent: ``sum_tap where(first == tap, view_tap(dx), 0)``, whose transpose adds each
  tap's share into the padded input with one edge-padding per tap and one interior padding
  per stride residue.

On XLA:CPU this is 3-15x faster than the select-and-scatter that JAX's own rule becomes
(``benchmarks/conv_lowering.py``, the max-pool table in ``benchmarks/RESULTS.md``). Being a
``custom_jvp``, it supports forward mode, reverse mode, ``vmap`` and higher derivatives (the
value inside the rule is taken through the rule again, so that its own tangent also takes
the first maximum).

With ``on_onednn`` (:func:`tpflax._src.conv_impl.use_onednn_max_pool`) the value and
``first`` come from oneDNN's pooling kernel (:mod:`tpflax._src.onednn_max_pool`) and the
tangent is the same one: XLA then reads ``first`` from a buffer, where with ``first`` computed
in XLA it fuses that computation into the transposed pass and repeats it for every window
an element belongs to (the stem pool's gradient 5-12x slower).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.interpreters import ad

from tpflax._src import onednn_max_pool


def reduce_window_max(
    x: jax.Array, dims: tuple[int, ...], strides: tuple[int, ...], padding: str
) -> jax.Array:
    """XLA's max pooling: ``-inf`` padding, ``'SAME'`` with the odd pixel at the end."""
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, padding)


def _padded(
    x: jax.Array, dims: tuple[int, ...], strides: tuple[int, ...], padding: str
) -> tuple[jax.Array, list[tuple[int, int, int]]]:
    """``x`` padded with ``-inf`` as ``reduce_window`` pads it, and the padding."""
    pads = [(lo, hi, 0) for lo, hi in lax.padtype_to_pads(x.shape, dims, strides, padding)]
    return lax.pad(x, jnp.asarray(-jnp.inf, x.dtype), pads), pads


def taps_max(
    x: jax.Array, dims: tuple[int, ...], strides: tuple[int, ...], padding: str
) -> jax.Array:
    """``reduce_window_max``'s values (a maximum is exact, NaN propagates the same) as the
    elementwise maximum of the window's ``kh * kw`` strided views: one loop fusion, which
    XLA:CPU runs 2-3x faster than its ``reduce_window`` on ResNet's 3x3/2 stem pool."""
    xp, _ = _padded(x, dims, strides, padding)
    out = [(n - k) // s + 1 for n, k, s in zip(xp.shape, dims, strides, strict=True)]
    taps = list(np.ndindex(*dims))
    y = _view(xp, taps[0], out, strides)
    for tap in taps[1:]:
        y = jnp.maximum(y, _view(xp, tap, out, strides))
    return y


def _view(
    xp: jax.Array, tap: Sequence[int], out_shape: Sequence[int], strides: Sequence[int]
) -> jax.Array:
    """The strided view of the padded input seen by window position ``tap``."""
    limit = tuple(t + (o - 1) * s + 1 for t, o, s in zip(tap, out_shape, strides, strict=True))
    return lax.slice(xp, tuple(tap), limit, tuple(strides))


def first_max_tap(
    xp: jax.Array, y: jax.Array, dims: tuple[int, ...], strides: tuple[int, ...]
) -> jax.Array:
    """For each output of ``y``, the row-major index of the first tap of its window in the
    padded input ``xp`` whose value equals it (``len(taps)`` where none does: NaN)."""
    taps = list(np.ndindex(*dims))
    index_dtype = jnp.int8 if len(taps) < 127 else jnp.int32
    first = jnp.full(y.shape, len(taps), index_dtype)
    for k in reversed(range(len(taps))):
        hit = _view(xp, taps[k], y.shape, strides) == y
        first = jnp.where(hit, jnp.asarray(k, index_dtype), first)
    return first


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4))
def max_pool(
    x: jax.Array,
    dims: tuple[int, ...],
    strides: tuple[int, ...],
    padding: str,
    on_onednn: bool = False,
) -> jax.Array:
    """``reduce_window`` max over ``dims``/``strides`` (``'SAME'``/``'VALID'``), computed from
    the taps (``taps_max``), with the first-maximum derivative of the module doc. With
    ``on_onednn`` (a float32 rank-4 ``x`` pooled over its two spatial axes, oneDNN loaded), the
    value and each window's first maximum come from oneDNN's kernel instead
    (:mod:`tpflax._src.onednn_max_pool`): the same values and the same derivative, but where
    a window holds NaN or only -inf: oneDNN (and so TensorFlow's CPU kernel) skips NaN and
    starts from float32's lowest value, where XLA's maximum propagates NaN and keeps -inf."""
    if on_onednn:
        return onednn_max_pool.POOL.bind(x, win=_onednn_window(x.shape, dims, strides, padding))[0]
    return taps_max(x, dims, strides, padding)


def _onednn_window(
    shape: tuple[int, ...], dims: tuple[int, ...], strides: tuple[int, ...], padding: str
) -> onednn_max_pool.Window:
    pads = [(int(lo), int(hi)) for lo, hi in lax.padtype_to_pads(shape, dims, strides, padding)]
    win = onednn_max_pool.window(shape, dims, strides, pads)
    if win is None:
        raise ValueError(f"oneDNN max pooling: {dims} / {strides} does not pool two spatial axes")
    return win


@max_pool.defjvp
def _max_pool_jvp(
    dims: tuple[int, ...],
    strides: tuple[int, ...],
    padding: str,
    on_onednn: bool,
    primals: tuple[jax.Array],
    tangents: tuple[jax.Array],
) -> tuple[jax.Array, jax.Array]:
    (x,), (dx,) = primals, tangents
    pads = [(lo, hi, 0) for lo, hi in lax.padtype_to_pads(x.shape, dims, strides, padding)]
    if on_onednn:
        y, first = onednn_max_pool.POOL.bind(x, win=_onednn_window(x.shape, dims, strides, padding))
    else:
        # the value through this rule again, so that a higher derivative's tangent of it also
        # takes the first maximum (taps_max's own would split ties between jnp.maximum's two
        # operands)
        y = max_pool(x, dims, strides, padding, False)
        first = first_max_tap(_padded(x, dims, strides, padding)[0], y, dims, strides)
    return y, tangent(first, dx, dims, strides, pads)


def tangent(
    first: jax.Array,
    dx: jax.Array,
    dims: tuple[int, ...],
    strides: tuple[int, ...],
    pads: Sequence[tuple[int, int, int]],
) -> jax.Array:
    """Max pooling's output tangent given each window's first maximum (``first``, the
    row-major tap index): the tangent ``dx`` of the tap it points at."""
    zero = jnp.zeros((), dx.dtype)
    taps = {tap: k for k, tap in enumerate(np.ndindex(*dims))}
    per_residue = [-(-k // s) for k, s in zip(dims, strides, strict=True)]
    block = [o + q - 1 for o, q in zip(first.shape, per_residue, strict=True)]
    # The tangent padded like x, and at the end to whole blocks of every residue's lane
    # (zeros that only non-taps would read).
    ends = [
        (lo, max(hi, b * s - n - lo), 0)
        for (lo, hi, _), b, s, n in zip(pads, block, strides, dx.shape, strict=True)
    ]
    dxp = lax.pad(dx, zero, ends)
    dy = jnp.zeros(first.shape, dx.dtype)
    for residue in np.ndindex(*strides):
        # padded positions residue + stride * b, b < block (transposed: one interior padding)
        lane = _view(dxp, residue, block, strides)
        for shift in np.ndindex(*per_residue):
            tap = tuple(q * s + r for q, s, r in zip(shift, strides, residue, strict=True))
            if tap in taps:  # (the last shift of a residue may lie past the window)
                part = lax.slice(
                    lane, shift, tuple(q + o for q, o in zip(shift, first.shape, strict=True))
                )
                dy = dy + jnp.where(first == taps[tap], part, zero)
    return dy


def _onednn_pool_jvp(
    primals: tuple[jax.Array], tangents: tuple[Any], *, win: onednn_max_pool.Window
) -> tuple[list, list]:
    """oneDNN's pooling differentiated (forward mode, and so every higher derivative): the
    value's tangent from the first maxima; the indices have none."""
    (x,), (dx,) = primals, tangents
    y, first = onednn_max_pool.POOL.bind(x, win=win)
    dims, strides, pads = onednn_max_pool.full_window(win)
    ty = tangent(first, ad.instantiate_zeros(dx), dims, strides, [(lo, hi, 0) for lo, hi in pads])
    return [y, first], [ty, ad.Zero(jax.typeof(first).to_tangent_aval())]


ad.primitive_jvps[onednn_max_pool.POOL] = _onednn_pool_jvp
