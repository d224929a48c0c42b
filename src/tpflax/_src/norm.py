"""Per-sample normalization: tensorpack's ``LayerNorm`` and ``InstanceNorm``.

Both normalize with the biased variance and ``tf.nn.batch_normalization``'s formula (the
same pure ops as ``BatchNorm``), keep no state, and behave the same in training and
inference. Variables are float32; statistics are computed in float32 and the output has the
input's dtype (tensorpack 0.11 itself fails on float16 inputs here: its float32 ``gamma``
cannot multiply a float16 tensor).
"""

from __future__ import annotations

import logging
from typing import Any

import jax

from tpflax._src import initializers, utils
from tpflax._src.batch_norm import moments, normalize
from tpflax._src.frame import current_frame, get_variable
from tpflax._src.registry import layer_context, layer_register

log = logging.getLogger("tpflax")


def affine_variables(
    center: bool, scale: bool, channels: int, gamma_initializer: Any, who: str
) -> tuple[jax.Array | None, jax.Array | None]:
    """The optional ``gamma`` (ones by default) and ``beta`` (zeros) of a normalization
    layer, ``[C]`` each; ``None`` where switched off."""
    gamma = beta = None
    if scale:
        init = initializers.resolve(
            gamma_initializer, initializers.ones, who=who, arg="gamma_initializer"
        )
        gamma = get_variable("gamma", (channels,), init, who=who)
    if center:
        beta = get_variable("beta", (channels,), initializers.zeros, who=who)
    return gamma, beta


def channel_axis(x: jax.Array, data_format: str, who: str) -> tuple[int, int, tuple[int, ...]]:
    """``(axis, channels, broadcast shape)`` of a 2-D (``[N, C]``) or 4-D input."""
    fmt = utils.data_format(data_format, who=who)
    axis = 1 if x.ndim == 2 or fmt == "NCHW" else 3
    channels = utils.static_dim(x, axis, who=who)
    shape = [1] * x.ndim
    shape[axis] = channels
    return axis, channels, tuple(shape)


def _reshaped(
    pair: tuple[jax.Array | None, jax.Array | None], shape: tuple[int, ...]
) -> tuple[jax.Array | None, jax.Array | None]:
    return tuple(None if v is None else v.reshape(shape) for v in pair)  # type: ignore[return-value]


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
    gamma_initializer: Any = None,
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
    _, channels, shape = channel_axis(x, data_format, who)
    affine = affine_variables(center, scale, channels, gamma_initializer, who)
    gamma, beta = _reshaped(affine, shape)
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
    gamma_initializer: Any = None,
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
    _, channels, shape = channel_axis(x, data_format, who)
    spatial = (1, 2) if fmt == "NHWC" else (2, 3)
    affine = affine_variables(center, scale, channels, gamma_initializer, who)
    gamma, beta = _reshaped(affine, shape)
    mean, var = moments(x, spatial)
    return normalize(x, mean, var, gamma, beta, float(epsilon))
