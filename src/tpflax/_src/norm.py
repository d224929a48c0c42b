"""Per-sample normalization: tensorpack's ``LayerNorm`` and ``InstanceNorm``.

Both normalize with the biased variance and ``tf.nn.batch_normalization``'s formula (the
same pure ops as ``BatchNorm``), keep no state, and behave the same in training and
inference. Variables are float32; statistics are computed in float32 and the output has the
input's dtype (tensorpack 0.11 itself fails on float16 inputs here: its float32 ``gamma``
cannot multiply a float16 tensor).
"""

from __future__ import annotations

import logging

import jax

from tpflax._src import layout, utils
from tpflax._src.frame import Initializer, current_frame
from tpflax._src.norm_ops import affine_variables, moments, normalize
from tpflax._src.registry import layer_context, layer_register

log = logging.getLogger("tpflax")


def _affine(
    x: jax.Array,
    data_format: str,
    center: bool,
    scale: bool,
    gamma_initializer: Initializer | None,
    who: str,
) -> tuple[jax.Array | None, jax.Array | None]:
    """``gamma`` and ``beta`` broadcast along the channels of ``x``."""
    axis = layout.channel_axis(x.ndim, data_format, who=who)
    channels = utils.static_dim(x, axis, who=who)
    gamma, beta = affine_variables(center, scale, channels, gamma_initializer, who)
    return layout.per_channel(gamma, x.ndim, axis), layout.per_channel(beta, x.ndim, axis)


@layer_register(
    positional=(),
    aliases={"use_bias": "center", "use_scale": "scale", "gamma_init": "gamma_initializer"},
)
def LayerNorm(
    x: jax.Array,
    epsilon: float = 1e-5,
    *,
    center: bool = True,
    scale: bool = True,
    gamma_initializer: Initializer | None = None,
    data_format: str = "channels_last",
) -> jax.Array:
    """Layer normalization, tensorpack's ``LayerNorm``: statistics over every axis but the
    batch axis, a per-channel affine transform.

    Args:
        x: ``[N, C]`` or a 4-D array in ``data_format``.
        epsilon: added to the variance (keyword only, as in tensorpack).
        center: create ``beta`` (alias ``use_bias``).
        scale: create ``gamma`` (alias ``use_scale``).
        gamma_initializer: ones by default (alias ``gamma_init``).
        data_format: where the channels of a 4-D input are.

    Returns:
        The normalized array, named ``<name>/output``.

    Variable names:
        ``beta``, ``gamma``: ``[C]``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> x = jnp.array([[1.0, 2.0, 3.0]])
        >>> params, _ = tp.LayerNorm.init(jax.random.key(0), x)
        >>> y, _ = tp.LayerNorm.apply(params, {}, x)
        >>> y.round(3)
        Array([[-1.225,  0.   ,  1.225]], dtype=float32)
    """
    who = layer_context("LayerNorm")
    utils.check_rank(x, (2, 4), who=who)
    utils.check_floating(x, who=who)
    gamma, beta = _affine(x, data_format, center, scale, gamma_initializer, who)
    mean, var = moments(x, tuple(range(1, x.ndim)))
    return normalize(x, mean, var, gamma, beta, float(epsilon))


@layer_register(
    positional=(),
    aliases={"gamma_init": "gamma_initializer"},
)
def InstanceNorm(
    x: jax.Array,
    epsilon: float = 1e-5,
    *,
    center: bool = True,
    scale: bool = True,
    gamma_initializer: Initializer | None = None,
    data_format: str = "channels_last",
    use_affine: bool | None = None,
) -> jax.Array:
    """Instance normalization, tensorpack's ``InstanceNorm``: statistics over the spatial
    axes of each sample and channel, a per-channel affine transform.

    Args:
        x: a 4-D array in ``data_format``.
        epsilon: added to the variance (keyword only, as in tensorpack).
        center: create ``beta``.
        scale: create ``gamma``.
        gamma_initializer: ones by default (alias ``gamma_init``).
        data_format: ``'channels_last'``/``'NHWC'`` or ``'channels_first'``/``'NCHW'``.
        use_affine: deprecated in tensorpack; when given it sets both ``center`` and
            ``scale`` (logged once, as tensorpack does).

    Returns:
        The normalized array, named ``<name>/output``.

    Variable names:
        ``beta``, ``gamma``: ``[C]``.
    """
    who = layer_context("InstanceNorm")
    utils.check_rank(x, (4,), who=who)
    utils.check_floating(x, who=who)
    fmt = utils.data_format(data_format, who=who)
    if use_affine is not None:
        if current_frame(who).shape_logger.first_time(f"<deprecated>{who}/use_affine"):
            log.warning(
                "%s: use_affine= is deprecated in tensorpack; use center= and scale= instead "
                "(both are set to use_affine=%r)",
                who,
                use_affine,
            )
        center = scale = bool(use_affine)
    gamma, beta = _affine(x, data_format, center, scale, gamma_initializer, who)
    spatial = (1, 2) if fmt == "NHWC" else (2, 3)
    mean, var = moments(x, spatial)
    return normalize(x, mean, var, gamma, beta, float(epsilon))
