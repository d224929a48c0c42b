"""Batch renormalization: tensorpack's ``BatchRenorm`` (TF 2.21's Keras renorm layer).

In training the batch is normalized with its own statistics, then corrected towards the
running renorm statistics by ``r = clip(std_B / renorm_stddev, 1/rmax, rmax)`` and
``d = clip((mean_B - renorm_mean) / renorm_stddev, -dmax, dmax)`` (both without gradient):
``y = ((x - mean_B) / std_B * r + d) * gamma + beta``, ``std_B = sqrt(var_B + epsilon)``.
Then, as tensorpack's training tower runs the layer's update ops:

* ``renorm_mean``, ``renorm_stddev``: moving averages of ``mean_B``, ``std_B`` with momentum
  0.99 (tensorpack fixes ``renorm_momentum``);
* ``moving_mean``, ``moving_stddev``: moving averages of ``mean_B``, ``std_B`` with
  ``momentum``; ``moving_variance = max(moving_stddev^2 - epsilon, 0)``.

Inference normalizes with ``moving_mean`` and ``moving_variance``. The variance is the
biased one everywhere, and ``renorm_stddev`` is floored at ``sqrt(epsilon)`` in ``r`` and
``d``. All of this is pinned by golden fixtures from tensorpack.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from tpflax._src import initializers, layout, utils
from tpflax._src.frame import (
    Initializer,
    assign_state,
    assign_sub_state,
    get_variable,
    is_training,
)
from tpflax._src.norm_ops import NORM_ALIASES, affine_variables, ema_delta, moments, normalize
from tpflax._src.registry import layer_context, layer_register

RENORM_MOMENTUM = 0.99
_STATE = ("moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev")


def renorm_correction(
    mean: jax.Array,
    stddev: jax.Array,
    renorm_mean: jax.Array,
    renorm_stddev: jax.Array,
    rmax: Any,
    dmax: Any,
    epsilon: float,
) -> tuple[jax.Array, jax.Array]:
    """Keras' ``r`` and ``d`` (clipped, no gradient) from the batch and renorm statistics."""
    denom = jnp.maximum(renorm_stddev, jnp.sqrt(jnp.asarray(epsilon, jnp.float32)))
    rmax = jnp.asarray(rmax, jnp.float32)
    dmax = jnp.asarray(dmax, jnp.float32)
    r = jnp.minimum(jnp.maximum(stddev / denom, 1.0 / rmax), rmax)
    d = jnp.clip((mean - renorm_mean) / denom, -dmax, dmax)
    return lax.stop_gradient(r), lax.stop_gradient(d)


@layer_register(positional=(), aliases=NORM_ALIASES)
def BatchRenorm(
    x: jax.Array,
    rmax: Any,
    dmax: Any,
    *,
    momentum: float = 0.9,
    epsilon: float = 1e-5,
    center: bool = True,
    scale: bool = True,
    gamma_initializer: Initializer | None = None,
    data_format: str = "channels_last",
) -> jax.Array:
    """Batch renormalization, tensorpack's ``BatchRenorm``.

    Every argument is keyword-only, ``rmax`` and ``dmax`` included (tensorpack asserts it).
    ``rmax``/``dmax`` may be Python numbers or traced scalars, so a schedule can feed them.

    Tensorpack 0.11 fails on 2-D inputs (it squeezes axes a 2-D tensor does not have);
    tpflax does what its docstring promises: ``[N, C]`` in, the same shape out, statistics
    over ``N``.

    Args:
        x: ``[N, C]`` or a 4-D array in ``data_format``.
        rmax: the largest allowed ``r`` (the smallest is ``1 / rmax``).
        dmax: the largest allowed ``|d|``.
        momentum: momentum of the inference statistics (alias ``decay``).
        epsilon: added to the variance.
        center: create ``beta`` (alias ``use_bias``).
        scale: create ``gamma`` (alias ``use_scale``).
        gamma_initializer: ones by default (alias ``gamma_init``).
        data_format: layout of a 4-D input.

    Returns:
        The normalized array, named ``<name>/output``.

    Variable names:
        ``gamma``, ``beta`` (params); ``moving_mean``, ``moving_variance``,
        ``moving_stddev``, ``renorm_mean``, ``renorm_stddev`` (state). These are TF 2.21's
        names; tensorpack's docstring still lists the TF 1 ``renorm_mean_weight``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> x = jnp.arange(8.0).reshape(4, 2)
        >>> params, state = tp.BatchRenorm.init(jax.random.key(0), x, rmax=3.0, dmax=5.0)
        >>> sorted(state)
        ['moving_mean', 'moving_stddev', 'moving_variance', 'renorm_mean', 'renorm_stddev']
    """
    who = layer_context("BatchRenorm")
    utils.check_rank(x, (2, 4), who=who)
    utils.check_floating(x, who=who)
    axis = layout.channel_axis(x.ndim, data_format, who=who)
    channels = utils.static_dim(x, axis, who=who)
    for arg, value in (("rmax", rmax), ("dmax", dmax)):
        if getattr(value, "ndim", 0) != 0:
            raise ValueError(f"{who}: {arg} must be a scalar; got shape {value.shape}")
    gamma, beta = affine_variables(center, scale, channels, gamma_initializer, who)
    stats = {
        name: get_variable(
            name,
            (channels,),
            initializers.zeros if name.endswith("mean") else initializers.ones,
            trainable=False,
            who=who,
        )
        for name in _STATE
    }

    def bcast(v: jax.Array | None) -> jax.Array | None:
        return layout.per_channel(v, x.ndim, axis)

    eps = float(epsilon)
    if not is_training():
        return normalize(
            x,
            layout.per_channel(stats["moving_mean"], x.ndim, axis),
            layout.per_channel(stats["moving_variance"], x.ndim, axis),
            bcast(gamma),
            bcast(beta),
            eps,
        )

    mean, var = moments(x, tuple(a for a in range(x.ndim) if a != axis))
    mean_c, var_c = mean.reshape(channels), var.reshape(channels)
    std_c = jnp.sqrt(var_c + jnp.asarray(eps, jnp.float32))
    r, d = renorm_correction(
        mean_c, std_c, stats["renorm_mean"], stats["renorm_stddev"], rmax, dmax, eps
    )
    # (x_hat * r + d) * gamma + beta == x_hat * (r * gamma) + (d * gamma + beta)
    new_scale = r if gamma is None else r * gamma
    new_offset = d if gamma is None else d * gamma
    if beta is not None:
        new_offset = new_offset + beta
    y = normalize(x, mean, var, bcast(new_scale), bcast(new_offset), eps)

    # Keras' assign_moving_average updates; a reused layer's updates add, as BatchNorm's do.
    updates = {
        "renorm_mean": (mean_c, RENORM_MOMENTUM),
        "renorm_stddev": (std_c, RENORM_MOMENTUM),
        "moving_mean": (mean_c, momentum),
        "moving_stddev": (std_c, momentum),
    }
    updated = {
        name: assign_sub_state(name, stats[name], ema_delta(stats[name], new, m), who=who)
        for name, (new, m) in updates.items()
    }
    moving_std = updated["moving_stddev"]
    moving_var = jax.nn.relu(moving_std * moving_std - jnp.asarray(eps, jnp.float32))
    assign_state("moving_variance", moving_var, who=who)
    return y
