"""oneDNN convolutions on CPU through the XLA FFI (the native part is ``csrc/onednn_conv.cc``).

``pip install`` builds ``tpflax/_onednn_conv*.so`` from PyPI packages (``setup.py``: the headers
of ``onednn-devel-cpu-gomp`` and ``jaxlib``, linked to ``libdnnl.so.3`` from
``onednn-cpu-gomp``). When the build or the library is missing, :func:`library` logs one
warning and every convolution stays on XLA.

What runs here: float32, NHWC input, HWIO weights, static shapes; forward, backward-data and
backward-weights as three FFI targets, tied together by a ``jax.custom_vjp`` (so reverse mode
only: ``jax.jvp`` through a oneDNN convolution raises, use ``tp.conv_impl('xla')`` for forward
mode). ``vmap`` folds the mapped axis into the batch when the weights are not mapped (one call
on ``[B*N, H, W, C]``); per-example weights or weight gradients run one call per example
(``lax.map``). Everything else (other dtypes, symbolic shapes) is the caller's to route to XLA
(:func:`supported`).

Threads. oneDNN here is built on GNU OpenMP: it runs its own team beside XLA's thread pool.
tpflax sets, unless already set, ``OMP_NUM_THREADS`` to the CPUs this process may run on
(what XLA:CPU's pool uses too) and ``OMP_WAIT_POLICY=PASSIVE`` before the library loads, so a
team that has finished a convolution sleeps instead of spinning on the cores XLA's next op
(BatchNorm, ReLU) needs. The native side runs one convolution at a time: each XLA thread
that calls in would otherwise get its own OpenMP team, all at once (oversubscription).
Measured on this project's 2-core AMD EPYC (AVX-512, a shared machine; a training step of four
3x3 convolutions with BatchNorm and ReLU on [8, 56, 56, 64], one process per setting, three
rounds): 2 threads 155-318 ms, 1 thread 276-303 ms, XLA's convolutions 308-360 ms; passive or
libgomp's default spin-then-sleep waiting could not be told apart (155-318 against 171-222
ms), so passive stays, as it cannot starve XLA's pool. ``benchmarks/RESULTS.md`` has the rest.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

log = logging.getLogger("tpflax")

TARGETS = {
    "fwd": ("tpflax_onednn_conv_fwd", "TpflaxOnednnConvFwd"),
    "bwd_data": ("tpflax_onednn_conv_bwd_data", "TpflaxOnednnConvBwdData"),
    "bwd_weights": ("tpflax_onednn_conv_bwd_weights", "TpflaxOnednnConvBwdWeights"),
}
# dnnl_cpu_isa_t values (oneDNN 3.2's dnnl_types.h) for the report.
_ISA_NAMES = {
    0x0: "default",
    0x1: "sse41",
    0x3: "avx",
    0x7: "avx2",
    0x407: "avx2_vnni",
    0xC07: "avx2_vnni_2",
    0x27: "avx512_core",
    0x67: "avx512_core_vnni",
    0xE7: "avx512_core_bf16",
    0x1E7: "avx512_core_fp16",
    0x3E7: "avx512_core_amx",
    0x7E7: "avx512_core_amx_fp16",
}


def library_path() -> Path | None:
    """The built extension (``tpflax/_onednn_conv*.so``), or ``None``."""
    found = sorted(Path(__file__).resolve().parent.parent.glob("_onednn_conv*.so"))
    return found[0] if found else None


def _set_threads() -> None:
    """OpenMP settings read once by libgomp when it loads (see the module doc)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(cpus))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@functools.cache
def library() -> ctypes.CDLL | None:
    """Loads the extension and registers its FFI targets once per process; ``None`` (after
    one logged warning) when it is missing or does not load."""
    path = library_path()
    if path is None:
        reason = "the native extension was not built at install time (needs g++)"
    else:
        try:
            _set_threads()
            lib = ctypes.CDLL(str(path))
            for name, symbol in TARGETS.values():
                capsule = jax.ffi.pycapsule(getattr(lib, symbol))
                jax.ffi.register_ffi_target(name, capsule, platform="cpu")
            lib.tpflax_onednn_version.restype = ctypes.c_char_p
            return lib
        except (OSError, AttributeError) as e:
            reason = f"{path.name} does not load: {e}"
    log.warning("oneDNN convolutions unavailable (%s); XLA's run instead", reason)
    return None


def available() -> bool:
    """Whether oneDNN convolutions can run in this process (CPU backend, library loaded)."""
    return jax.default_backend() == "cpu" and library() is not None


def describe() -> str:
    """``'oneDNN 3.2.0 (avx512_core_bf16)'``, or why it is unavailable."""
    lib = library()
    if lib is None:
        return "oneDNN unavailable"
    isa = int(lib.tpflax_onednn_isa())
    version = lib.tpflax_onednn_version().decode()
    return f"oneDNN {version} ({_ISA_NAMES.get(isa, hex(isa))})"


def has_avx512() -> bool:
    """Whether oneDNN dispatches AVX-512 kernels here (it was measured slower than XLA:CPU
    with AVX2 only)."""
    lib = library()
    return lib is not None and int(lib.tpflax_onednn_isa()) & 0x27 == 0x27


def supported(*arrays: jax.Array) -> bool:
    """Whether these operands can take the oneDNN path: float32, static, non-empty shapes."""
    return all(
        a.dtype == jnp.float32
        and all(isinstance(d, int) and d > 0 for d in a.shape)
        and a.ndim == 4
        for a in arrays
    )


# (strides, pad_lo, pad_hi, dilation, groups, input [H, W, C], weights [kh, kw, I, O])
Geometry = tuple[
    tuple[int, int],
    tuple[int, int],
    tuple[int, int],
    tuple[int, int],
    int,
    tuple[int, int, int],
    tuple[int, int, int, int],
]


def same_pads(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """TensorFlow's padding ``(lo, hi)`` along one axis: ``SAME`` puts the odd pixel at the end;
    ``VALID`` pads nothing."""
    if padding == "VALID":
        return 0, 0
    extent = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def geometry(
    in_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    strides: tuple[int, int],
    padding: str,
    dilation: tuple[int, int],
    groups: int,
) -> Geometry:
    """The convolution's attributes for the native side, pads made explicit."""
    pads = [
        same_pads(in_shape[1 + i], w_shape[i], strides[i], dilation[i], padding) for i in range(2)
    ]
    return (
        (int(strides[0]), int(strides[1])),
        (pads[0][0], pads[1][0]),
        (pads[0][1], pads[1][1]),
        (int(dilation[0]), int(dilation[1])),
        int(groups),
        (int(in_shape[1]), int(in_shape[2]), int(in_shape[3])),
        (int(w_shape[0]), int(w_shape[1]), int(w_shape[2]), int(w_shape[3])),
    )


def output_hw(geom: Geometry) -> tuple[int, int]:
    """The output's ``(OH, OW)`` under oneDNN's rule (the same as TensorFlow's here)."""
    strides, lo, hi, dilation, _, (h, w, _), (kh, kw, _, _) = geom
    return (
        (h + lo[0] + hi[0] - (kh - 1) * dilation[0] - 1) // strides[0] + 1,
        (w + lo[1] + hi[1] - (kw - 1) * dilation[1] - 1) // strides[1] + 1,
    )


def _varying(out: jax.Array, *operands: jax.Array) -> jax.Array:
    """``out`` marked as varying over every ``shard_map`` axis any operand varies over (an FFI
    call's result is not; a ``custom_vjp``'s gradients must match their inputs' types)."""
    vma = frozenset().union(*(_varying_axes(a) for a in operands))
    missing = tuple(sorted(vma - _varying_axes(out)))
    return lax.pcast(out, missing, to="varying") if missing else out


def _varying_axes(a: jax.Array) -> frozenset[str]:
    aval = jax.typeof(a)
    mat = getattr(aval, "mat", None)  # jax 0.10: the manual axis types; earlier: `vma`
    return frozenset(mat.varying if mat is not None else getattr(aval, "vma", ()))


def _call(op: str, geom: Geometry, shape: tuple[int, ...], a: jax.Array, b: jax.Array) -> Any:
    strides, lo, hi, dilation, groups, _, _ = geom
    out = jax.ffi.ffi_call(TARGETS[op][0], jax.ShapeDtypeStruct(shape, jnp.float32))(
        a,
        b,
        strides=np.array(strides, np.int64),
        pad_lo=np.array(lo, np.int64),
        pad_hi=np.array(hi, np.int64),
        dilation=np.array(dilation, np.int64),
        groups=np.int64(groups),
    )
    return _varying(out, a, b)


def _fold_or_map(fn: Callable[..., jax.Array], fold_first: bool) -> Any:
    """A ``custom_vmap`` rule: with only the first operand mapped (and ``fold_first``), one
    call on ``[B*N, ...]``; otherwise one call per example."""

    def rule(axis_size: int, in_batched: list[bool], a: jax.Array, b: jax.Array) -> Any:
        if fold_first and in_batched[0] and not in_batched[1]:
            out = fn(a.reshape(-1, *a.shape[2:]), b)
            return out.reshape(axis_size, -1, *out.shape[1:]), True
        a, b = (
            x if m else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, m in zip((a, b), in_batched, strict=True)
        )
        return lax.map(lambda ab: fn(*ab), (a, b)), True

    return rule


@functools.cache
def _ops(geom: Geometry) -> tuple[Any, Any, Any]:
    """The three FFI calls for one geometry, each with its batching rule."""
    oh, ow = output_hw(geom)
    h, w, c = geom[5]
    w_shape = geom[6]

    @jax.custom_batching.custom_vmap
    def fwd(x: jax.Array, W: jax.Array) -> jax.Array:
        return _call("fwd", geom, (x.shape[0], oh, ow, w_shape[3]), x, W)

    @jax.custom_batching.custom_vmap
    def bwd_data(dy: jax.Array, W: jax.Array) -> jax.Array:
        return _call("bwd_data", geom, (dy.shape[0], h, w, c), dy, W)

    @jax.custom_batching.custom_vmap
    def bwd_weights(x: jax.Array, dy: jax.Array) -> jax.Array:
        return _call("bwd_weights", geom, w_shape, x, dy)

    fwd.def_vmap(_fold_or_map(fwd, True))
    bwd_data.def_vmap(_fold_or_map(bwd_data, True))
    bwd_weights.def_vmap(_fold_or_map(bwd_weights, False))
    return fwd, bwd_data, bwd_weights


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x: jax.Array, W: jax.Array, geom: Geometry) -> jax.Array:
    return _ops(geom)[0](x, W)


def _conv_fwd(x: jax.Array, W: jax.Array, geom: Geometry) -> tuple[jax.Array, Any]:
    return _ops(geom)[0](x, W), (x, W)


def _conv_bwd(geom: Geometry, res: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, W = res
    _, bwd_data, bwd_weights = _ops(geom)
    return bwd_data(g, W), bwd_weights(x, g)


_conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_t(x: jax.Array, W: jax.Array, geom: Geometry) -> jax.Array:
    return _ops(geom)[1](x, W)


def _conv_t_fwd(x: jax.Array, W: jax.Array, geom: Geometry) -> tuple[jax.Array, Any]:
    return _ops(geom)[1](x, W), (x, W)


def _conv_t_bwd(geom: Geometry, res: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    # y = conv^T(x; W): dx = conv(g; W), dW = the forward convolution's weight gradient with
    # g as its input and x as its output gradient.
    x, W = res
    fwd, _, bwd_weights = _ops(geom)
    return fwd(g, W), bwd_weights(g, x)


_conv_t.defvjp(_conv_t_fwd, _conv_t_bwd)


def conv(
    x: jax.Array,
    W: jax.Array,
    *,
    strides: tuple[int, int],
    padding: str,
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> jax.Array:
    """A convolution through oneDNN: ``x`` ``[N, H, W, C]`` float32, ``W`` ``[kh, kw, C //
    groups, filters]``, TensorFlow's ``SAME``/``VALID``; the same as ``lax.conv_general_dilated``
    up to float rounding. Differentiable in reverse mode (both gradients from oneDNN); ``vmap``
    folds into ``N``."""
    geom = geometry(x.shape, W.shape, strides, padding, dilation, groups)
    return _conv(_varying(x, W), _varying(W, x), geom)


def conv_transpose(
    x: jax.Array,
    W: jax.Array,
    *,
    out_hw: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> jax.Array:
    """TensorFlow's ``conv2d_transpose`` through oneDNN's backward-data: ``x`` ``[N, H, W, C]``,
    ``W`` ``[kh, kw, filters, C]``, output ``[N, *out_hw, filters]``, the input gradient of
    the ``SAME``/``VALID`` convolution that maps ``out_hw`` to ``(H, W)``."""
    in_shape = (x.shape[0], out_hw[0], out_hw[1], W.shape[2])
    geom = geometry(in_shape, W.shape, strides, padding, (1, 1), 1)
    if output_hw(geom) != tuple(x.shape[1:3]):
        raise ValueError(f"oneDNN conv_transpose: {out_hw} does not map to {x.shape[1:3]}")
    return _conv_t(_varying(x, W), _varying(W, x), geom)
