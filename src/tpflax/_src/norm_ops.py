"""The normalization ops every normalization layer shares (``BatchNorm``, ``BatchRenorm``,
``LayerNorm``, ``InstanceNorm``, the zoo's ``GroupNorm``): statistics, the normalization
formula in TensorFlow's two roundings, the EMA step, and the optional ``gamma``/``beta``.
Pure functions of arrays, except :func:`affine_variables`, which creates the variables."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from tpflax._src import initializers
from tpflax._src.frame import Initializer, get_variable

# tensorpack's old names for the normalization layers' arguments (BatchNorm, BatchRenorm)
NORM_ALIASES = {
    "use_bias": "center",
    "use_scale": "scale",
    "gamma_init": "gamma_initializer",
    "decay": "momentum",
}


# Backends on which ``moments`` sums ``d`` and ``d^2`` in one pass over the activation
# instead of two; measured by benchmarks/bn_variance.py. On an NVIDIA H200 (jax 0.11.2,
# ResNet-50 float32 train step, batch 256, interleaved medians of 20): two passes 77.9 ms, one
# pass 74.9 ms, flax.linen (one unshifted pass) 74.1 ms; XLA:GPU fuses the two sums into one
# read, and BatchNorm's reductions were the step's largest kernels. On the CPU it is within
# noise (ResNet-18 batch 8, 9 rounds: 356 ms two passes, 350 one; most of its BatchNorms run
# on oneDNN there), and tpflax's statistics there follow TensorFlow's CPU kernels, so CPUs
# keep two passes. The price: ``mean(d^2) - mean(d)^2`` cancels about ``log10(1 + k^2)``
# digits where the channel's first value lies ``k`` standard deviations from its mean; the
# shift keeps ``k`` small where it matters most (a large mean with a small variance). The
# golden tests pass under either rule.
ONE_PASS_VARIANCE_BACKENDS = frozenset({"gpu"})


def moments(
    x: jax.Array, axes: tuple[int, ...], axis_name: Any = None
) -> tuple[jax.Array, jax.Array]:
    """Batch mean and biased variance over ``axes`` (kept), in float32.

    The sums run over ``d = x - s``, ``s`` being each channel's first value: that
    subtraction is exact for values close together, so a large mean with a small variance
    (``50 + 0.01 * randn``) keeps its digits, as TensorFlow's kernels do; the mean is
    rounded once. The variance is ``mean((d - mean(d))^2)`` (two passes over ``x``, as
    TensorFlow's CPU kernels), except on ``ONE_PASS_VARIANCE_BACKENDS`` (GPUs), where it is
    ``mean(d^2) - mean(d)^2``, clipped at 0: one pass, the cancellation bounded by the shift
    (see that constant). The gradient is that of ``mean(x)`` and ``mean((x - mean)^2)``.

    With ``axis_name``, each device's ``E[x]`` and ``E[x^2]`` are averaged across that named
    axis (``shard_map``/``pmap``) and ``var = E[x^2] - E[x]^2``, as tensorpack's SyncBN does.
    """
    x = x.astype(jnp.float32)
    if axis_name is None and math.prod(x.shape[a] for a in axes) == 1:
        # one value per channel: the mean is the value itself, as in TensorFlow
        return x, jnp.zeros_like(x)
    if axis_name is None:
        first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))
        shift = lax.stop_gradient(x[first])
        d = x - shift
        mean_d = jnp.mean(d, axes, keepdims=True)
        if jax.default_backend() in ONE_PASS_VARIANCE_BACKENDS:
            mean_sq = jnp.mean(jnp.square(d), axes, keepdims=True)
            return shift + mean_d, jnp.maximum(mean_sq - jnp.square(mean_d), 0.0)
        var = jnp.mean(jnp.square(d - lax.stop_gradient(mean_d)), axes, keepdims=True)
        return shift + mean_d, var
    mean = lax.pmean(jnp.mean(x, axes, keepdims=True), axis_name)
    mean_sq = lax.pmean(jnp.mean(jnp.square(x), axes, keepdims=True), axis_name)
    return mean, mean_sq - jnp.square(mean)


def normalize(
    x: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    gamma: jax.Array | None,
    beta: jax.Array | None,
    epsilon: float,
    *,
    centered: bool = False,
) -> jax.Array:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta``; statistics broadcast against ``x``,
    computed in float32 and returned in ``x``'s dtype.

    The two forms round differently, and each follows one TensorFlow kernel:

    * ``centered=False``: ``x * inv + (beta - mean * inv)`` with ``inv = rsqrt(var + eps) *
      gamma``, as ``tf.nn.batch_normalization`` (Keras' non-fused layer, tensorpack's
      SyncBN/Ghost BN, LayerNorm, InstanceNorm).
    * ``centered=True``: ``(x - mean) * inv + beta``, as TensorFlow's fused CPU kernel (4-D
      BatchNorm, training and inference). With one value per channel it returns ``beta``
      exactly, and it keeps the digits of inputs with a large mean and a small variance.
    """
    steps = normalize_steps(mean, var, gamma, beta, epsilon, centered=centered)
    return apply_steps(x.astype(jnp.float32), steps).astype(x.dtype)


Steps = tuple[tuple[str, Any], ...]  # (op, operand): operand None for "relu"


def normalize_steps(
    mean: jax.Array,
    var: jax.Array,
    gamma: jax.Array | None,
    beta: jax.Array | None,
    epsilon: float,
    *,
    centered: bool,
) -> Steps:
    """:func:`normalize` as steps on float32 ``x``, each ``(op, operand)`` with ``op`` one of
    ``'sub'``, ``'mul'``, ``'add'`` (:func:`apply_steps`): the one description of both
    roundings, which a convolution's oneDNN epilogue runs too (tpflax/_src/epilogue.py)."""
    inv = lax.rsqrt(var + jnp.asarray(epsilon, jnp.float32))
    if gamma is not None:
        inv = inv * gamma
    if centered:
        return (("sub", mean), ("mul", inv)) + ((("add", beta),) if beta is not None else ())
    shift = -mean * inv
    if beta is not None:
        shift = shift + beta
    return (("mul", inv), ("add", shift))


def apply_steps(x: jax.Array, steps: Steps) -> jax.Array:
    """``x`` through steps such as :func:`normalize_steps`', in order; ``('relu', None)`` is
    a ReLU (``jax.nn.relu``)."""
    ops = {"sub": jnp.subtract, "mul": jnp.multiply, "add": jnp.add}
    for op, operand in steps:
        x = jax.nn.relu(x) if op == "relu" else ops[op](x, operand)
    return x


def ema_delta(old: jax.Array, new: jax.Array, momentum: float, *, fused: bool = False) -> jax.Array:
    """What TensorFlow's ``assign_moving_average`` (no debiasing) subtracts from ``old``:
    ``(old - new) * (1 - momentum)``.

    ``1 - momentum`` is rounded as Keras' BatchNormalization (under tensorpack's BatchNorm
    and ``tf.layers``) computes it: from the Python float on the non-fused path, and, with
    ``fused`` (TensorFlow's fused kernel, 4-D), in float32 from momentum as a float32 tensor
    (``1.0f - 0.9f`` is 0.100000024, not 0.1f): measured, tensorpack's EMA after one step
    is then bitwise ours (tests/test_onednn_batch_norm.py's large cases)."""
    if fused:
        decay = jnp.float32(1.0) - jnp.float32(momentum)
    else:
        decay = jnp.asarray(1.0 - momentum, jnp.float32)
    return (old - lax.stop_gradient(new).astype(old.dtype)) * decay


def affine_variables(
    center: bool,
    scale: bool,
    channels: int,
    gamma_initializer: Initializer | None,
    who: str,
    beta_initializer: Initializer | None = None,
) -> tuple[jax.Array | None, jax.Array | None]:
    """The optional ``gamma`` (ones by default) and ``beta`` (zeros) of a normalization
    layer, ``[C]`` float32 each; ``None`` where switched off.

    Variable names:
        ``gamma``, ``beta``.
    """
    gamma = beta = None
    if scale:
        init = initializers.resolve(
            gamma_initializer, initializers.ones, who=who, arg="gamma_initializer"
        )
        gamma = get_variable("gamma", (channels,), init, who=who)
    if center:
        init = initializers.resolve(
            beta_initializer, initializers.zeros, who=who, arg="beta_initializer"
        )
        beta = get_variable("beta", (channels,), init, who=who)
    return gamma, beta
