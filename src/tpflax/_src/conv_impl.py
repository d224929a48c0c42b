"""How a convolution (and max pooling's derivative) is lowered: XLA's own op, or an exact
faster formulation.

``'auto'`` (the default) picks, per backend and shape, the formulation measured fastest
(``benchmarks/conv_lowering.py``, results in ``benchmarks/RESULTS.md``):

* a 1x1 convolution (no dilation, no ``split``) on CPU becomes a matrix product over the
  channels, after slicing the input for the stride: XLA:CPU's convolution is slow there, and
  its dot runs at matmul speed. The result is the same sum of the same products.
* a larger kernel (no dilation, no ``split``) on CPU with many input channels (``C >= 256``)
  on a small output map (``OH * OW <= 64``, e.g. ResNet's last stage, 7x7) and few output
  positions in all (``N * OH * OW <= 512``) becomes one matrix product over patches
  (im2col): ``[N*OH*OW, kh*kw*C]`` times ``W.reshape(kh*kw*C, filters)``. There XLA:CPU's
  convolution runs at half the speed it reaches on larger maps, forward and backward (a
  [8, 7, 7, 512] 3x3 convolution's training step 53 -> 34 ms, its forward 12.6 -> 11.7 ms);
  on 14x14 maps or more positions the patches win only the backward and lose the forward,
  with fewer channels they lose both, so XLA's convolution stays there. The sum has the same
  terms in another order (float rounding only).
* everything else stays ``lax.conv_general_dilated``.
* max pooling (``MaxPooling``) with at most 49 taps per window on CPU takes its value and its
  derivative from the window's taps (``tpflax/_src/max_pool.py``): the value as the maximum
  of the strided views (the same values as XLA's ``reduce_window``, 1.3-5x faster on ResNet's
  3x3/2 stem pool, VGG's 2x2/2 and a 7x7/1 window), the derivative with the same
  first-maximum rule as TensorFlow's ``MaxPoolGrad`` and JAX's gradient, 3-15x faster than the
  select-and-scatter XLA:CPU runs for JAX's rule; with more taps (an 8x8/8 or 14x14 window)
  XLA's ``reduce_window`` and select-and-scatter are faster.

* with the native library built (``csrc/onednn_conv.cc``, see ``tpflax/_src/onednn.py``) and
  a CPU whose oneDNN kernels are AVX-512, a float32 NHWC convolution without dilation or
  ``split`` in the measured table (``ONEDNN_CONV``) runs on oneDNN: forward, backward-data and
  backward-weights; an NCHW one too, through transposes, by its NHWC shape. A convolution
  that no transformation differentiates (inference) follows the forward table instead
  (``ONEDNN_INFERENCE``: every such convolution, measured on whole ResNets): a
  ``custom_jvp`` runs that lowering, and JAX calls its JVP rule, which runs the training
  table's, only when it differentiates. With AVX2 only, oneDNN 3.2 was measured slower than
  XLA (0.56-0.85x forward), so XLA's lowerings above stay there. Under ``jax.jit`` such an
  inference convolution also takes the BatchNorm and ReLU of its ``activation`` into its
  oneDNN call (``tpflax/_src/epilogue.py``). A bfloat16 one follows the same inference table
  where oneDNN has bfloat16 kernels (``onednn.has_bf16``; ResNet-50 inference 1.70x float32's
  speed, against 1.15x on XLA's bfloat16 kernels); differentiated, bfloat16 stays on XLA.
* with that library and AVX-512, BatchNorm in training (TensorFlow's fused kernel: float32,
  4-D, no ``sync_statistics`` or virtual batches) on inputs of at least
  ``ONEDNN_BATCH_NORM_MIN_ELEMENTS`` runs on oneDNN's batch normalization, forward and
  backward (``tpflax/_src/onednn_batch_norm.py``): the kernels TensorFlow runs there, 1.1-1.8x
  faster than XLA's passes on ResNet's large maps; below 2^20 elements on one OpenMP thread,
  1.2-3x faster (with two threads these were erratic, often slower than XLA); the ResNet-50
  train step ran 1.07-1.10x faster with it, and 1.02-1.03x more (ResNet-18 1.09x) when the
  threshold came down from 2^20 to 2^16 with the small ones on one thread. On the instruction
  sets of ``XLA_BATCH_NORM_FORWARD_ISAS`` (the Xeon with AMX, where oneDNN lost those
  forward passes to XLA's fusions on every core: one thread, or two that stalled), such a
  BatchNorm that nothing differentiates computes XLA's formula, and JAX calls oneDNN's rule
  only when something differentiates it (as the inference convolutions above).
* with that library and AVX-512, max pooling with overlapping windows (a stride smaller than
  the window, at most 49 taps) on float32 rank-4 inputs of at least
  ``ONEDNN_MAX_POOL_MIN_ELEMENTS`` takes its value and each window's first maximum from
  oneDNN's kernel, TensorFlow's on CPU (``tpflax/_src/onednn_max_pool.py``); the derivative
  is the taps' one above, reading those indices: ResNet's 3x3/2 stem pool 2x faster forward
  and 5-12x in its gradient (XLA recomputed the indices inside the gradient's fusion).
  Values and derivatives are the taps path's, but for a window with NaN or -inf: oneDNN (and
  so TensorFlow on CPU) skips NaN and starts from float32's lowest value.

``'xla'`` uses ``lax.conv_general_dilated``, JAX's max-pool derivative and XLA's BatchNorm
everywhere, for debugging and comparison. ``'onednn'`` runs every float32 convolution,
transposed convolution, 4-D BatchNorm in training and max pooling (of the taps path) it can
on oneDNN (NCHW through transposes; any dilation and ``split``) and the rest as ``'auto'``
does; without the library it says so once and is ``'auto'``. Choose with
``with tp.conv_impl('xla'):`` or the environment variable ``TPFLAX_CONV=xla``;
``tp.conv_impl.active()`` says what runs. Like argscope, the choice is read when a function
is traced: open the block inside the function you ``jax.jit``, or before its first call.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from tpflax._src import onednn, utils

IMPLS = ("auto", "xla", "onednn")
# Backends where a 1x1 convolution as a dot was measured faster (benchmarks/RESULTS.md).
DOT_FOR_POINTWISE = frozenset({"cpu"})
# Per backend, where a kxk convolution as a matrix product over patches was measured faster
# both forward and backward (benchmarks/conv_lowering.py): at most this many output pixels
# per image (OH * OW) and in all (N * OH * OW), and at least this many input channels.
PATCHES_MAX_MAP = {"cpu": 64}
PATCHES_MAX_POSITIONS = {"cpu": 512}
PATCHES_MIN_CHANNELS = {"cpu": 256}

# Per backend, the most taps (kh * kw) of a max-pool window for which the derivative from the
# taps was measured faster than XLA's select-and-scatter (benchmarks/conv_lowering.py).
TAP_MAX_POOL_MAX_TAPS = {"cpu": 49}


# Where oneDNN's convolution (forward and both gradients; AVX-512) was measured faster than the
# lowering 'auto' picks otherwise (benchmarks/conv_lowering.py, onednn_table): output maps of
# at least 14x14 and at least this many multiply-adds, except 1x1 convolutions that widen the
# channels (C -> 4C after ResNet's bottleneck: 0.55-0.89x). On 7x7 maps (the dot and the
# patches product there) and below ~1e8 multiply-adds (the call's fixed cost) it was no faster.
ONEDNN_MIN_MAP = 196
ONEDNN_MIN_MACS = 10**8
ONEDNN_TRANSPOSE_MIN_MACS = 10**6
ONEDNN_INFERENCE_MIN_MACS = 10**6
# BatchNorm with batch statistics on oneDNN (forward and backward, AVX-512) from this many
# input elements (benchmarks/conv_lowering.py, onednn_batch_norm_table): below 2^20 elements
# on one thread (onednn_batch_norm.ONE_THREAD_BELOW), 1.2-3x faster than XLA from 6.6e4,
# at par at 3.3e4.
ONEDNN_BATCH_NORM_MIN_ELEMENTS = 1 << 16
# oneDNN's instruction sets (onednn.isa) on which such a BatchNorm that nothing differentiates
# (a forward pass in training mode outside jax.grad) takes XLA's formula; differentiated, it
# stays oneDNN's. Measured on the Intel Xeon with AMX (benchmarks/RESULTS.md, 2026-12-04):
# below 2^20 elements, where oneDNN runs on one OpenMP thread, those forward passes ran
# 0.75-0.93x XLA's speed (XLA's fusions use every core); above, on two threads, 0.69-1.21x
# with 13-22 ms stalls in some calls (0.87-0.89x at [8, 56, 56, 256] twice in one run),
# while every train pass but stalled ones ran faster on oneDNN. On the AMD EPYC
# (avx512_core_bf16) the forward passes ran 1.03-2.09x faster on oneDNN, so it keeps them
# there, as does any machine not measured.
XLA_BATCH_NORM_FORWARD_ISAS = frozenset({"avx512_core_amx"})
# Max pooling with overlapping windows on oneDNN (its value and first maxima; AVX-512) from
# this many input elements (benchmarks/conv_lowering.py, max_pool_table): ResNet's 3x3/2 stem
# pool's gradient 5-12x faster than from XLA's taps, its forward 2x; windows that do not
# overlap (2x2/2) measured at par, small inputs slower (the call's fixed cost).
ONEDNN_MAX_POOL_MIN_ELEMENTS = 1 << 20


def ONEDNN_CONV(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int]
) -> bool:
    """Whether 'auto' runs this float32 convolution (no dilation or ``split``; its NHWC
    shape) on oneDNN."""
    out_map, macs = _map_and_macs(x_shape, w_shape, strides)
    kh, kw, c, filters = w_shape
    widening = (kh, kw) == (1, 1) and filters > c
    return out_map >= ONEDNN_MIN_MAP and macs >= ONEDNN_MIN_MACS and not widening


def _map_and_macs(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int]
) -> tuple[int, int]:
    """A SAME NHWC convolution's output pixels per image and multiply-adds in all."""
    n, h, w, _ = x_shape
    kh, kw, c, filters = w_shape
    out_map = -(-h // strides[0]) * -(-w // strides[1])
    return out_map, n * out_map * kh * kw * c * filters


def ONEDNN_INFERENCE(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int]
) -> bool:
    """Whether 'auto' runs this float32 convolution (its NHWC shape) on oneDNN when it is not
    differentiated (inference): every one from ``ONEDNN_INFERENCE_MIN_MACS`` multiply-adds.
    The whole ResNet-18 and ResNet-50 forward passes with every convolution on oneDNN ran
    1.16-1.20x faster than with the training table (``benchmarks/RESULTS.md``, 2026-12-03),
    their 7x7 maps' dots and patches products included; a single 3x3 convolution ran 1.17x
    faster at 7.2e6 multiply-adds and 0.55x at 1.5e5, where the call's fixed cost dominates."""
    return _map_and_macs(x_shape, w_shape, strides)[1] >= ONEDNN_INFERENCE_MIN_MACS


def ONEDNN_CONV_TRANSPOSE(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int]
) -> bool:
    """Whether 'auto' runs this NHWC float32 transposed convolution on oneDNN: XLA:CPU's
    gradient of a transposed convolution was 5x slower than oneDNN's at 3e6 multiply-adds and
    14-18x at 4e8-8e8; its forward 0.93-1.2x."""
    n, h, w, c = x_shape
    kh, kw, filters, _ = w_shape
    return n * h * w * kh * kw * c * filters >= ONEDNN_TRANSPOSE_MIN_MACS


_IMPL: contextvars.ContextVar[str | None] = contextvars.ContextVar("tpflax_conv", default=None)


def current_impl() -> str:
    """The lowering in force: the innermost ``tp.conv_impl`` block, else ``TPFLAX_CONV``,
    else ``'auto'``."""
    impl = _IMPL.get() or os.environ.get("TPFLAX_CONV", "auto")
    if impl not in IMPLS:
        raise ValueError(f"TPFLAX_CONV / tp.conv_impl: expected one of {IMPLS}; got {impl!r}")
    return impl


class ConvImpl:
    """Selects how convolutions (and BatchNorm in training) traced inside the block are
    lowered: ``'auto'``, ``'xla'`` (plain ``lax.conv_general_dilated``, XLA's BatchNorm) or
    ``'onednn'`` (oneDNN wherever it can run);
    ``tp.conv_impl.active()`` names the lowering in force and whether oneDNN is available.

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> x, W = jnp.ones((1, 4, 4, 3)), jnp.ones((1, 1, 3, 2))
        >>> with tp.conv_impl('xla'):
        ...     y = tp.Conv2D.apply({'W': W}, {}, x, 2, 1, use_bias=False)[0]
        ...     tp.conv_impl.active()
        'xla'
        >>> y[0, 0, 0]
        Array([3., 3.], dtype=float32)
    """

    def __call__(self, impl: str) -> contextlib.AbstractContextManager[None]:
        if impl not in IMPLS:
            raise ValueError(f"tp.conv_impl: expected one of {IMPLS}; got {impl!r}")
        return _scope(impl)

    def active(self) -> str:
        """The lowering in force, with oneDNN's version and instruction set where it runs,
        e.g. ``'auto: oneDNN 3.2.0 (avx512_core_bf16) where measured faster, else XLA'``."""
        impl = current_impl()
        if impl == "xla":
            return impl
        if jax.default_backend() != "cpu":
            return f"{impl}: XLA ({jax.default_backend()} backend; oneDNN runs on the CPU only)"
        if not onednn.available():
            return f"{impl}: XLA (oneDNN unavailable)"
        if impl == "auto" and not onednn.has_avx512():
            return f"auto: XLA ({onednn.describe()} not used: no AVX-512)"
        where = (
            "where measured faster"
            if impl == "auto"
            else "for every float32 convolution, 4-D BatchNorm in training and max pooling"
        )
        if impl == "onednn" and onednn.has_bf16():
            where += " and bfloat16 one in inference"
        return f"{impl}: {onednn.describe()} {where}, else XLA"

    def __repr__(self) -> str:
        return f"tp.conv_impl (active: {self.active()})"


@contextlib.contextmanager
def _scope(impl: str) -> Iterator[None]:
    token = _IMPL.set(impl)
    try:
        yield
    finally:
        _IMPL.reset(token)


conv_impl = ConvImpl()


def use_onednn(
    x: jax.Array,
    W: jax.Array,
    strides: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    data_format: str,
    transpose: bool = False,
    inference: bool = False,
) -> bool:
    """Whether this convolution (or, with ``transpose``, transposed convolution) runs on
    oneDNN (see the module doc); ``inference``: when it is not differentiated (the forward
    table, ``ONEDNN_INFERENCE``). Cheap tests first: the library loads (and warns once when
    it is missing) only for a convolution it could take."""
    impl = current_impl()
    forward_only = inference and not transpose
    if (
        impl == "xla"
        or jax.default_backend() != "cpu"
        or not onednn.supported(x, W, forward_only=forward_only)
    ):
        return False
    if impl == "onednn":
        return onednn.available()
    if tuple(dilation) != (1, 1) or groups != 1:
        return False
    if inference and not transpose:
        rule = ONEDNN_INFERENCE
    else:
        rule = ONEDNN_CONV_TRANSPOSE if transpose else ONEDNN_CONV
    # NCHW runs on oneDNN through two transposes; the tables read the NHWC shape. A whole
    # NCHW ResNet-18 (batch 8, 224x224) ran 1.47x faster in inference and 1.24x in a train
    # step than with XLA's NCHW convolutions (benchmarks/RESULTS.md).
    shape = x.shape if data_format == "NHWC" else (x.shape[0], *x.shape[2:], x.shape[1])
    return rule(shape, W.shape, strides) and onednn.available() and onednn.has_avx512()


def use_onednn_batch_norm(x: jax.Array, axis: int) -> bool:
    """Whether BatchNorm with batch statistics (training; TensorFlow's fused kernel: 4-D, no
    ``sync_statistics`` or virtual batches) runs on oneDNN for this input with channels on
    ``axis`` (1 or 3; see the module doc): float32 with static shape and at least two values
    per channel; under 'auto' from
    ``ONEDNN_BATCH_NORM_MIN_ELEMENTS`` elements, on AVX-512."""
    impl = current_impl()
    if (
        impl == "xla"
        or jax.default_backend() != "cpu"
        or x.dtype != jnp.float32
        or not onednn.static_rank4(x)
        or x.size // x.shape[axis] < 2
    ):
        return False
    if impl == "onednn":
        return onednn.available()
    return x.size >= ONEDNN_BATCH_NORM_MIN_ELEMENTS and onednn.available() and onednn.has_avx512()


def undifferentiated_batch_norm_on_xla() -> bool:
    """Whether a BatchNorm that :func:`use_onednn_batch_norm` sends to oneDNN takes XLA's
    formula instead when nothing differentiates it (JAX calls oneDNN's rule only when
    something does): under 'auto', on the instruction sets of
    ``XLA_BATCH_NORM_FORWARD_ISAS``, at every input size (measured)."""
    return current_impl() == "auto" and onednn.isa() in XLA_BATCH_NORM_FORWARD_ISAS


def use_onednn_max_pool(x: jax.Array, pool: tuple[int, int], stride: tuple[int, int]) -> bool:
    """Whether max pooling with this window, on this input, runs on oneDNN (see the module
    doc): where the derivative comes from the taps (:func:`use_tap_max_pool`), on a float32
    rank-4 input with static shape; under 'auto' only for overlapping windows (a stride
    smaller than the window) from ``ONEDNN_MAX_POOL_MIN_ELEMENTS`` input elements, on
    AVX-512."""
    impl = current_impl()
    if (
        not use_tap_max_pool(pool)
        or jax.default_backend() != "cpu"
        or x.dtype != jnp.float32
        or not onednn.static_rank4(x)
    ):
        return False
    if impl == "onednn":
        return onednn.available()
    overlapping = any(s < k for s, k in zip(stride, pool, strict=True))
    return (
        overlapping
        and x.size >= ONEDNN_MAX_POOL_MIN_ELEMENTS
        and onednn.available()
        and onednn.has_avx512()
    )


def use_pointwise_dot(kernel_hw: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> bool:
    """Whether a convolution with this kernel is lowered as a dot (see the module doc)."""
    return (
        tuple(kernel_hw) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
        and current_impl() != "xla"
        and jax.default_backend() in DOT_FOR_POINTWISE
    )


def use_patches(
    out_map: int,
    out_positions: int,
    channels: int,
    kernel_hw: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> bool:
    """Whether a convolution with more than one tap is lowered as a matrix product over
    patches (see the module doc)."""
    backend = jax.default_backend()
    return (
        tuple(kernel_hw) != (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
        and 0 < out_map <= PATCHES_MAX_MAP.get(backend, 0)
        and 0 < out_positions <= PATCHES_MAX_POSITIONS.get(backend, 0)
        and channels >= PATCHES_MIN_CHANNELS.get(backend, 1 << 62)
        and current_impl() != "xla"
    )


def use_tap_max_pool(pool: tuple[int, int]) -> bool:
    """Whether max pooling with this window takes its derivative from the taps (see the
    module doc)."""
    taps = pool[0] * pool[1]
    return (
        1 < taps <= TAP_MAX_POOL_MAX_TAPS.get(jax.default_backend(), 0) and current_impl() != "xla"
    )


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """TensorFlow's output size: ``ceil(size / stride)`` for ``SAME``, else
    ``ceil((size - kernel + 1) / stride)``."""
    if padding == "SAME":
        return -(-size // stride)
    return max(-(-(size - kernel + 1) // stride), 0)


def patches_conv(
    x: jax.Array, W: jax.Array, strides: tuple[int, int], padding: str, data_format: str
) -> jax.Array:
    """A convolution as one matrix product over patches: the ``kh * kw`` shifted, strided
    views of the padded input side by side (``[N, OH, OW, kh*kw*C]``, tap-major as in
    ``W``'s HWIO layout) times ``W.reshape(kh*kw*C, filters)``. ``SAME`` pads as
    TensorFlow does (the odd pixel at the end). The patches are gathered with constant
    indices (rows, then columns): the same values as concatenating the ``kh * kw`` slices,
    at a third of the compile time."""
    if data_format == "NCHW":
        y = patches_conv(x.transpose(0, 2, 3, 1), W, strides, padding, "NHWC")
        return y.transpose(0, 3, 1, 2)
    kh, kw, c, filters = W.shape
    n, h, w, _ = x.shape
    (sh, sw) = strides
    oh, ow = output_size(h, kh, sh, padding), output_size(w, kw, sw, padding)
    if padding == "SAME":
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    rows = np.arange(oh)[:, None] * sh + np.arange(kh)[None, :]  # [OH, kh]
    cols = np.arange(ow)[:, None] * sw + np.arange(kw)[None, :]  # [OW, kw]
    taps = x[:, rows][:, :, :, cols]  # [N, OH, kh, OW, kw, C]
    patches = taps.transpose(0, 1, 3, 2, 4, 5).reshape(n * oh * ow, kh * kw * c)
    y = utils.matmul(patches, W.reshape(kh * kw * c, filters))
    return y.reshape(n, oh, ow, filters)


def pointwise_conv(
    x: jax.Array, W: jax.Array, strides: tuple[int, int], data_format: str
) -> jax.Array:
    """A 1x1 convolution (``SAME`` or ``VALID``: no padding either way) as a matrix product:
    ``x[:, ::sh, ::sw]`` times ``W[0, 0]`` (``[C, filters]``) over the channel axis."""
    if data_format == "NCHW":
        y = pointwise_conv(x.transpose(0, 2, 3, 1), W, strides, "NHWC")
        return y.transpose(0, 3, 1, 2)
    sh, sw = strides
    xs = x[:, ::sh, ::sw, :] if (sh, sw) != (1, 1) else x
    n, h, w, c = xs.shape
    # A 2-D product: its filter gradient then needs no transposing copy of the output
    # gradient on XLA:CPU (with [N, H, W] contracted at once, XLA fused one into BatchNorm's
    # backward, ~25% of a ResNet-50 training step).
    y = utils.matmul(xs.reshape(n * h * w, c), W[0, 0])
    return y.reshape(n, h, w, W.shape[3])
