"""BatchNorm with batch statistics (training) on oneDNN, through the XLA FFI (the native part is
``csrc/onednn_batch_norm.cc``, built into the same library as the convolutions: see
:mod:`tpflax._src.onednn`).

:func:`batch_norm` normalizes a float32 rank-4 input with its own biased batch statistics and
returns them, as TensorFlow's ``FusedBatchNormV3`` does on CPU, where it runs these same oneDNN
kernels: on ResNet-sized inputs the batch means came out bitwise equal to TensorFlow 2.21's,
the outputs within one rounding (tests/test_onednn_batch_norm.py, from
tools/golden/tf_batch_norm_large.py). Those kernels sum in
float32 without a shift, so on large maps the statistics are rounded more than XLA's path
(:func:`tpflax._src.norm_ops.moments`): a relative error of 4e-6 to 1e-5 against float64 on
``[8, 112, 112, 64]``, against XLA's 3e-7; TensorFlow's own error there is the same 4e-6 to
1e-5. ``tp.conv_impl('xla')`` keeps every BatchNorm on XLA.

Derivatives. Three JAX primitives: the forward; its tangent, linear in the tangents of ``x``,
``gamma`` and ``beta``, whose transpose is oneDNN's backward (so ``jax.grad`` runs oneDNN both
ways); and that backward. Forward mode and higher derivatives take XLA's closed forms
(:func:`tangent_reference`, :func:`backward_reference`), so every mode works. The means'
and variances' own tangents are XLA's, and cost nothing unless something differentiates them
(BatchNorm's EMA does not). ``vmap`` runs one call per example: each example has its own
statistics.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from tpflax._src import norm_ops, onednn

# Below this many input elements oneDNN's batch normalization runs on one OpenMP thread
# (onednn_common.h's OneThread): with two, its barriers stalled for 2-10x the call's time
# whenever the other core was busy, and one thread reads these sizes as fast
# (benchmarks/RESULTS.md, 2026-12-04). From it, two threads: faster on ResNet's largest maps,
# and there the statistics are bitwise TensorFlow's, which runs two threads too.
ONE_THREAD_BELOW = 1 << 20


def _axes(nchw: bool) -> tuple[int, ...]:
    return (0, 2, 3) if nchw else (0, 1, 2)


def _channel(v: jax.Array, nchw: bool) -> jax.Array:
    """A ``[C]`` vector broadcastable against the rank-4 data."""
    return v.reshape((1, -1, 1, 1) if nchw else (1, 1, 1, -1))


def _normalized(
    x: jax.Array, mean: jax.Array, var: jax.Array, epsilon: float, nchw: bool
) -> tuple[jax.Array, jax.Array]:
    inv = lax.rsqrt(var + jnp.float32(epsilon))
    return (x - _channel(mean, nchw)) * _channel(inv, nchw), inv


def tangent_reference(
    x: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    gamma: jax.Array,
    tx: jax.Array,
    tgamma: jax.Array,
    tbeta: jax.Array,
    *,
    epsilon: float,
    nchw: bool,
) -> jax.Array:
    """The output's tangent (XLA): ``gamma * inv * (tx - mean(tx) - xhat * mean(xhat *
    tx)) + xhat * tgamma + tbeta``, ``xhat = (x - mean) * inv``, ``inv = rsqrt(var +
    epsilon)``; the statistics' own dependence on ``x`` is the two mean terms."""
    axes = _axes(nchw)
    xhat, inv = _normalized(x, mean, var, epsilon, nchw)
    centred = tx - jnp.mean(tx, axes, keepdims=True)
    centred = centred - xhat * jnp.mean(xhat * tx, axes, keepdims=True)
    return (
        _channel(gamma * inv, nchw) * centred
        + xhat * _channel(tgamma, nchw)
        + _channel(tbeta, nchw)
    )


def backward_reference(
    x: jax.Array,
    dy: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    gamma: jax.Array,
    *,
    epsilon: float,
    nchw: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The transpose of :func:`tangent_reference` (XLA): ``(dx, dgamma, dbeta)`` with
    ``dbeta = sum(dy)``, ``dgamma = sum(dy * xhat)`` and ``dx = gamma * inv * (dy -
    mean(dy) - xhat * mean(dy * xhat))``, what oneDNN's backward computes."""
    axes = _axes(nchw)
    xhat, inv = _normalized(x, mean, var, epsilon, nchw)
    n = np.prod([x.shape[a] for a in axes])
    dbeta = jnp.sum(dy, axes)
    dgamma = jnp.sum(dy * xhat, axes)
    dx = _channel(gamma * inv, nchw) * (
        dy - _channel(dbeta / n, nchw) - xhat * _channel(dgamma / n, nchw)
    )
    return dx, dgamma, dbeta


def _channels(x: Any, nchw: bool) -> int:
    return x.shape[1 if nchw else 3]


def _ffi_impl(target: str) -> Any:
    """The lowering of a primitive whose FFI target returns ``x``'s type and two ``[C]``
    float32 vectors (the forward's statistics, the backward's gradients of gamma and beta),
    from ``x`` and the other operands."""

    def impl(
        x: jax.Array, *operands: jax.Array, epsilon: float, nchw: bool, one_thread: bool
    ) -> list:
        c = jax.ShapeDtypeStruct((_channels(x, nchw),), jnp.float32)
        outs = (jax.ShapeDtypeStruct(x.shape, x.dtype), c, c)
        results = jax.ffi.ffi_call(target, outs)(
            x, *operands, epsilon=np.float32(epsilon), nchw=bool(nchw), one_thread=bool(one_thread)
        )
        return [onednn.varying(r, x, *operands) for r in results]

    return impl


def _primitive(name: str, impl: Any, multiple_results: bool) -> Primitive:
    """A primitive with ``impl`` as its CPU lowering and (through ``jit``) eager evaluation;
    its outputs are ``x``'s type and, with ``multiple_results``, two ``[C]`` float32 vectors;
    ``vmap`` runs one call per example."""
    prim = Primitive(name)
    prim.multiple_results = multiple_results

    @functools.cache
    def compiled(**params: Any) -> Any:
        return jax.jit(functools.partial(impl, **params))

    def batched(args: Any, dims: Any, **params: Any) -> tuple[Any, Any]:
        out = onednn.per_example(lambda *ops: onednn.bind(prim, *ops, **params), args, dims)
        return out, ([0] * len(out) if multiple_results else 0)

    prim.def_impl(lambda *args, **params: compiled(**params)(*args))

    def abstract(x: Any, *rest: Any, epsilon: float, nchw: bool, one_thread: bool) -> Any:
        if not multiple_results:
            return onednn.result_type(x, x.shape)
        c = onednn.result_type(x, (_channels(x, nchw),))
        return onednn.result_type(x, x.shape), c, c

    prim.def_abstract_eval(abstract)
    mlir.register_lowering(
        prim, mlir.lower_fun(impl, multiple_results=multiple_results), platform="cpu"
    )
    batching.primitive_batchers[prim] = batched
    return prim


def _reference(fn: Any) -> Any:
    """An XLA reference formula called with the primitives' parameters: it ignores
    ``one_thread``, which only tells oneDNN how to run."""
    return lambda *args, one_thread, **params: fn(*args, **params)


def xla_forward(
    x: jax.Array, gamma: jax.Array, beta: jax.Array, *, epsilon: float, nchw: bool
) -> list:
    """``[y, mean, variance]`` by XLA's formula: tpflax's BatchNorm without oneDNN
    (:func:`tpflax._src.norm_ops.moments`, the fused kernel's rounding)."""
    axes = _axes(nchw)
    mean, var = norm_ops.moments(x, axes)
    g, b = _channel(gamma, nchw), _channel(beta, nchw)
    y = norm_ops.normalize(x, mean, var, g, b, epsilon, centered=True)
    return [y, mean.reshape(-1), var.reshape(-1)]


FWD = _primitive("tpflax_onednn_bn_fwd", _ffi_impl("tpflax_onednn_bn_fwd"), True)
# The forward as XLA's formula where nothing differentiates it, oneDNN's where something does:
# its JVP rule is FWD's (conv_impl.undifferentiated_batch_norm_on_xla says where it is used).
FWD_XLA_UNLESS_DIFFERENTIATED = _primitive(
    "tpflax_bn_fwd_xla_unless_differentiated", _reference(xla_forward), True
)
BWD = _primitive("tpflax_onednn_bn_bwd", _ffi_impl("tpflax_onednn_bn_bwd"), True)
# The forward's output tangent, linear in (tx, tgamma, tbeta); evaluated (forward mode) by
# XLA's formula, transposed (reverse mode) by oneDNN's backward.
TANGENT = _primitive("tpflax_onednn_bn_tangent", _reference(tangent_reference), False)


def _forward_jvp(primals: Any, tangents: Any, **params: Any) -> tuple[list, list]:
    x, gamma, beta = primals
    tx, tgamma, tbeta = (ad.instantiate_zeros(t) for t in tangents)
    y, mean, var = onednn.bind(FWD, x, gamma, beta, **params)
    ty = onednn.bind(TANGENT, x, mean, var, gamma, tx, tgamma, tbeta, **params)
    axes = _axes(params["nchw"])
    tmean = jnp.mean(tx, axes)
    tvar = 2 * jnp.mean((x - _channel(mean, params["nchw"])) * tx, axes)
    return [y, mean, var], [ty, tmean, tvar]


def _tangent_transpose(
    ct: Any, x: Any, mean: Any, var: Any, gamma: Any, *linear: Any, **params: Any
) -> list:
    if any(ad.is_undefined_primal(a) for a in (x, mean, var, gamma)):
        raise NotImplementedError("oneDNN BatchNorm: the tangent is linear only in its last three")
    if type(ct) is ad.Zero:
        return [None] * 4 + [ad.Zero(t.aval) if ad.is_undefined_primal(t) else None for t in linear]
    grads = onednn.bind(BWD, x, ct, mean, var, gamma, **params)
    return [None] * 4 + [
        g if ad.is_undefined_primal(t) else None for g, t in zip(grads, linear, strict=True)
    ]


def _reference_jvp(reference: Any, multiple: bool) -> Any:
    def jvp(primals: Any, tangents: Any, **params: Any) -> Any:
        tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
        out, tout = jax.jvp(
            functools.partial(_reference(reference), **params), tuple(primals), tangents
        )
        return (list(out), list(tout)) if multiple else (out, tout)

    return jvp


ad.primitive_jvps[FWD] = _forward_jvp
ad.primitive_jvps[FWD_XLA_UNLESS_DIFFERENTIATED] = _forward_jvp
ad.primitive_transposes[TANGENT] = _tangent_transpose
ad.primitive_jvps[TANGENT] = _reference_jvp(tangent_reference, False)
ad.primitive_jvps[BWD] = _reference_jvp(backward_reference, True)


def batch_norm(
    x: jax.Array,
    gamma: jax.Array,
    beta: jax.Array,
    epsilon: float,
    *,
    nchw: bool,
    xla_unless_differentiated: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(y, mean, variance)``: float32 ``x`` (``[N, H, W, C]``, or ``[N, C, H, W]`` with
    ``nchw``) normalized by its own batch mean and biased variance over all axes but the
    channels, ``y = gamma * (x - mean) / sqrt(variance + epsilon) + beta``, with float32
    ``[C]`` ``gamma`` and ``beta``; the statistics ``[C]``. Differentiable in every mode
    (see the module doc). With ``xla_unless_differentiated``, a call that nothing
    differentiates computes :func:`xla_forward` instead (XLA's values, bitwise)."""
    if onednn.library() is None:
        raise RuntimeError("oneDNN BatchNorm is unavailable here (see tpflax's log)")
    y, mean, var = onednn.bind(
        FWD_XLA_UNLESS_DIFFERENTIATED if xla_unless_differentiated else FWD,
        x,
        gamma.astype(jnp.float32),
        beta.astype(jnp.float32),
        epsilon=float(epsilon),
        nchw=nchw,
        one_thread=x.size < ONE_THREAD_BELOW,
    )
    return y, mean, var
