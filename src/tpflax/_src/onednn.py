"""oneDNN convolutions on CPU through the XLA FFI (the native part is ``csrc/onednn_conv.cc``).

``pip install`` builds ``tpflax/_onednn_conv*.so`` from PyPI packages (``setup.py``: the headers
of ``onednn-devel-cpu-gomp`` and ``jaxlib``, linked to ``libdnnl.so.3`` from
``onednn-cpu-gomp``). When the build or the library is missing, :func:`library` logs one
warning and every convolution stays on XLA.

What runs here: float32, NHWC input, HWIO weights, static shapes; forward, backward-data and
backward-weights as three FFI targets, each a JAX primitive (plus the forward on bfloat16
where the CPU has oneDNN's bfloat16 kernels, not differentiated, and the forward with
post-ops, :func:`conv_post`). The three are bilinear and each
one's two transposes are the other two, so ``jax.grad``, ``jax.jvp``, ``jax.jacfwd`` and
higher derivatives all run on oneDNN (a ``custom_vjp`` would have refused forward mode).
``vmap`` folds the mapped axis into the batch when the weights are not mapped (one call on
``[B*N, H, W, C]``); per-example weights or weight gradients run one call per example
(``lax.map``). Under ``shard_map`` the operands are cast to vary over the same mesh axes
before each call. Everything else (other dtypes, symbolic shapes) is the caller's to route to
XLA (:func:`supported`).

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
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from tpflax._src import utils

log = logging.getLogger("tpflax")

TARGETS = {
    "fwd": ("tpflax_onednn_conv_fwd", "TpflaxOnednnConvFwd"),
    "fwd_post": ("tpflax_onednn_conv_fwd_post", "TpflaxOnednnConvFwdPost"),
    "fwd_bf16": ("tpflax_onednn_conv_fwd_bf16", "TpflaxOnednnConvFwdBf16"),
    "bwd_data": ("tpflax_onednn_conv_bwd_data", "TpflaxOnednnConvBwdData"),
    "bwd_weights": ("tpflax_onednn_conv_bwd_weights", "TpflaxOnednnConvBwdWeights"),
    # BatchNorm in training (tpflax/_src/onednn_batch_norm.py)
    "bn_fwd": ("tpflax_onednn_bn_fwd", "TpflaxOnednnBnFwd"),
    "bn_bwd": ("tpflax_onednn_bn_bwd", "TpflaxOnednnBnBwd"),
    # max pooling and its first maxima (tpflax/_src/max_pool.py)
    "max_pool": ("tpflax_onednn_max_pool", "TpflaxOnednnMaxPool"),
}
# The post-ops of ``conv_post`` (csrc/onednn_conv.cc's kPost* codes): each binary one takes
# the next per-channel vector.
POST_OPS = {"add": 1, "sub": 2, "mul": 3, "relu": 4}


def library_path() -> Path | None:
    """The built extension (``tpflax/_onednn_conv*.so``), or ``None``."""
    return utils.native_library("_onednn_conv")


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
            lib.tpflax_onednn_isa_name.restype = ctypes.c_char_p
            lib.tpflax_onednn_dispatches.argtypes = [ctypes.c_char_p]
            return lib
        except (OSError, AttributeError) as e:
            reason = f"{path.name} does not load: {e}"
    log.warning("oneDNN convolutions unavailable (%s); XLA's run instead", reason)
    return None


def available() -> bool:
    """Whether oneDNN convolutions can run in this process (CPU backend, library loaded)."""
    return jax.default_backend() == "cpu" and library() is not None


def isa() -> str:
    """The instruction set oneDNN's kernels use here, by oneDNN's name
    (``'avx512_core_amx'``, ``'avx512_core_bf16'``, ...); ``''`` without the library."""
    lib = library()
    if lib is None:
        return ""
    return lib.tpflax_onednn_isa_name().decode() or hex(lib.tpflax_onednn_isa())


def describe() -> str:
    """``'oneDNN 3.2.0 (avx512_core_bf16)'``, or why it is unavailable."""
    lib = library()
    if lib is None:
        return "oneDNN unavailable"
    return f"oneDNN {lib.tpflax_onednn_version().decode()} ({isa()})"


def _dispatches(isa: str) -> bool:
    """Whether oneDNN's kernels here include the instruction set named ``isa`` (oneDNN's
    name, e.g. ``'avx512_core'``; the extension maps it with oneDNN's own header)."""
    lib = library()
    return lib is not None and bool(lib.tpflax_onednn_dispatches(isa.encode()))


def has_avx512() -> bool:
    """Whether oneDNN dispatches AVX-512 kernels here (it was measured slower than XLA:CPU
    with AVX2 only)."""
    return _dispatches("avx512_core")


def has_bf16() -> bool:
    """Whether oneDNN dispatches bfloat16 kernels here (AVX-512 with BF16, or AMX)."""
    return _dispatches("avx512_core_bf16")


def static_rank4(a: Any) -> bool:
    """Whether ``a`` has the shape every oneDNN call here takes: rank 4, static, non-empty."""
    return a.ndim == 4 and all(isinstance(d, int) and d > 0 for d in a.shape)


def supported(x: jax.Array, W: jax.Array, *, forward_only: bool = False) -> bool:
    """Whether these operands can take the oneDNN path: :func:`static_rank4`; float32, or,
    for a forward that is not differentiated (``forward_only``), a bfloat16 input (weights
    cast to it, as XLA's path does) where the CPU has bfloat16 kernels."""
    if not (static_rank4(x) and static_rank4(W)):
        return False
    if x.dtype == jnp.float32 and W.dtype == jnp.float32:
        return True
    return (
        forward_only
        and x.dtype == jnp.bfloat16
        and W.dtype in (jnp.bfloat16, jnp.float32)
        and has_bf16()
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


def varying(out: jax.Array, *operands: jax.Array) -> jax.Array:
    """``out`` marked as varying over every ``shard_map`` axis any operand varies over (an FFI
    call's result is not)."""
    vma = frozenset().union(*(_varying_axes(a) for a in operands))
    missing = tuple(sorted(vma - _varying_axes(out)))
    return lax.pcast(out, missing, to="varying") if missing else out


def _varying_axes(a: jax.Array) -> frozenset[str]:
    aval = jax.typeof(a)
    mat = getattr(aval, "mat", None)  # jax 0.10: the manual axis types; earlier: `vma`
    return frozenset(mat.varying if mat is not None else getattr(aval, "vma", ()))


def _call(
    op: str, geom: Geometry, shape: tuple[int, ...], *operands: jax.Array, **attrs: Any
) -> Any:
    strides, lo, hi, dilation, groups, _, _ = geom
    dtype = operands[0].dtype
    if op == "fwd" and dtype == jnp.bfloat16:
        op = "fwd_bf16"
    out = jax.ffi.ffi_call(TARGETS[op][0], jax.ShapeDtypeStruct(shape, dtype))(
        *operands,
        strides=np.array(strides, np.int64),
        pad_lo=np.array(lo, np.int64),
        pad_hi=np.array(hi, np.int64),
        dilation=np.array(dilation, np.int64),
        groups=np.int64(groups),
        **attrs,
    )
    return varying(out, *operands)


def _out_shape(op: str, geom: Geometry, n: int) -> tuple[int, ...]:
    oh, ow = output_hw(geom)
    h, w, c = geom[5]
    w_shape = geom[6]
    fwd = (n, oh, ow, w_shape[3])
    return {"fwd": fwd, "fwd_post": fwd, "bwd_data": (n, h, w, c), "bwd_weights": w_shape}[op]


def result_type(a: Any, shape: tuple[int, ...]) -> Any:
    """An FFI primitive's output type: ``a``'s (an operand's) with ``shape``. Under
    ``shard_map`` it keeps the mesh and the manual axes all operands vary over (see
    :func:`varying`); no axis of it is sharded."""
    replicated = a.sharding.update(spec=jax.sharding.PartitionSpec(*[None] * len(shape)))
    return a.update(shape=shape, dtype=a.dtype, weak_type=False, sharding=replicated)


def per_example(call: Any, args: Any, dims: Any) -> Any:
    """A batching rule's fallback: ``call`` once per example of the mapped axis (``lax.map``),
    unmapped operands broadcast; the results are mapped on axis 0."""
    size = next(x.shape[d] for x, d in zip(args, dims, strict=True) if d is not None)
    mapped = [
        jnp.broadcast_to(x, (size, *x.shape)) if d is None else jnp.moveaxis(x, d, 0)
        for x, d in zip(args, dims, strict=True)
    ]
    return lax.map(lambda ops: call(*ops), mapped)


def _primitive(op: str, fold: bool) -> Primitive:
    """One FFI target as a JAX primitive (two operands, and for ``fwd_post`` one vector per
    binary post-op; static ``geom``, and ``post`` for ``fwd_post``): its shape rule, its
    lowering to the FFI call, eager evaluation through ``jit``, and ``vmap``: with only the
    first operand mapped (and ``fold``), one call on ``[B*N, ...]``; otherwise one call per
    example (``lax.map``)."""
    prim = Primitive(f"tpflax_onednn_{op}")

    def impl(*operands: jax.Array, geom: Geometry, post: tuple[str, ...] = ()) -> jax.Array:
        attrs = {}
        if op == "fwd_post":
            attrs["post"] = np.array([POST_OPS[p] for p in post], np.int64)
        return _call(op, geom, _out_shape(op, geom, operands[0].shape[0]), *operands, **attrs)

    def abstract(a: Any, *rest: Any, geom: Geometry, post: tuple[str, ...] = ()) -> Any:
        return result_type(a, _out_shape(op, geom, a.shape[0]))

    @functools.cache
    def compiled(geom: Geometry, post: tuple[str, ...]) -> Any:
        return jax.jit(functools.partial(impl, geom=geom, post=post))

    def batched(args: Any, dims: Any, **params: Any) -> tuple[jax.Array, int]:
        if fold and all(d is None for d in dims[1:]):
            a = jnp.moveaxis(args[0], dims[0], 0)
            out = bind(prim, a.reshape(-1, *a.shape[2:]), *args[1:], **params)
            return out.reshape(a.shape[0], -1, *out.shape[1:]), 0
        return per_example(lambda *ops: bind(prim, *ops, **params), args, dims), 0

    prim.def_impl(lambda *args, geom, post=(): compiled(geom, post)(*args))
    prim.def_abstract_eval(abstract)
    mlir.register_lowering(prim, mlir.lower_fun(impl, multiple_results=False), platform="cpu")
    batching.primitive_batchers[prim] = batched
    return prim


FWD = _primitive("fwd", fold=True)
BWD_DATA = _primitive("bwd_data", fold=True)
BWD_WEIGHTS = _primitive("bwd_weights", fold=False)
# The forward with post-ops. It has no derivative rules of its own: its caller gives it one
# (conv_post's doc).
FWD_POST = _primitive("fwd_post", fold=True)


def bind(prim: Primitive, *operands: jax.Array, **params: Any) -> Any:
    """Binds with every operand varying over the same ``shard_map`` axes (the transpose of
    that cast sums an invariant operand's gradient over the axes)."""
    return prim.bind(*(varying(a, *operands) for a in operands), **params)


# All three are bilinear, and each one's transposes are the other two: y = fwd(x, W) has
# dx = bwd_data(dy, W) and dW = bwd_weights(x, dy); and so on round. Forward mode, reverse
# mode and higher derivatives all come from these rules.
ad.defbilinear(
    FWD,
    lambda ct, x, W, *, geom: bind(BWD_DATA, ct, W, geom=geom),
    lambda ct, x, W, *, geom: bind(BWD_WEIGHTS, x, ct, geom=geom),
)
ad.defbilinear(
    BWD_DATA,
    lambda ct, dy, W, *, geom: bind(FWD, ct, W, geom=geom),
    lambda ct, dy, W, *, geom: bind(BWD_WEIGHTS, ct, dy, geom=geom),
)
ad.defbilinear(
    BWD_WEIGHTS,
    lambda ct, x, dy, *, geom: bind(BWD_DATA, dy, ct, geom=geom),
    lambda ct, x, dy, *, geom: bind(FWD, x, ct, geom=geom),
)


def _require() -> None:
    if library() is None:
        raise RuntimeError("oneDNN convolutions are unavailable here (see tpflax's log)")


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
    up to float rounding. Differentiable in both modes and to any order (the gradients are
    oneDNN's backward-data and backward-weights); ``vmap`` folds into ``N``. A bfloat16 ``x``
    and ``W`` (where :func:`has_bf16`) give the bfloat16 result of a float32 sum, as XLA's
    path with ``preferred_element_type=float32``; not differentiable (``conv2d`` runs it
    only where nothing differentiates it)."""
    _require()
    geom = geometry(x.shape, W.shape, strides, padding, dilation, groups)
    return bind(FWD, x, W, geom=geom)


def conv_post(
    x: jax.Array,
    W: jax.Array,
    post: tuple[str, ...],
    vectors: tuple[jax.Array, ...],
    *,
    strides: tuple[int, int],
    padding: str,
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> jax.Array:
    """:func:`conv` followed by ``post`` in oneDNN's own pass over the output: ``'add'``,
    ``'sub'``, ``'mul'`` by the next float32 ``[filters]`` vector of ``vectors``, or
    ``'relu'``; each applied to the float32 result before it is stored, in the order given,
    so the values are those steps on :func:`conv`'s. Not differentiable by itself (the caller
    wraps it: tpflax/_src/epilogue.py); ``vmap`` folds into ``N``."""
    _require()
    if len(vectors) != sum(op != "relu" for op in post):
        raise ValueError(f"oneDNN conv_post: {post} needs one vector per binary op")
    geom = geometry(x.shape, W.shape, strides, padding, dilation, groups)
    return bind(FWD_POST, x, W, *vectors, geom=geom, post=tuple(post))


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
    _require()
    in_shape = (x.shape[0], out_hw[0], out_hw[1], W.shape[2])
    geom = geometry(in_shape, W.shape, strides, padding, (1, 1), 1)
    if output_hw(geom) != tuple(x.shape[1:3]):
        raise ValueError(f"oneDNN conv_transpose: {out_hw} does not map to {x.shape[1:3]}")
    return bind(BWD_DATA, x, W, geom=geom)
