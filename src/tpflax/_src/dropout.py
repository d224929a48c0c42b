"""Dropout: the pure op and tensorpack's ``Dropout`` layer."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tpflax._src import utils
from tpflax._src.frame import is_training, next_rng_key
from tpflax._src.registry import Alias, layer_context, layer_register


def dropout(x: jax.Array, rate: Any, key: jax.Array, noise_shape: Any = None) -> jax.Array:
    """``tf.nn.dropout``: zero each element with probability ``rate``, scale the rest by
    ``1 / (1 - rate)``. ``noise_shape`` shares the mask along its size-1 dimensions."""
    keep = 1.0 - rate
    shape = x.shape if noise_shape is None else tuple(noise_shape)
    mask = jax.random.bernoulli(key, keep, shape)
    scale = jnp.asarray(1.0, x.dtype) / jnp.asarray(keep, x.dtype)
    return jnp.where(mask, x * scale, jnp.zeros((), x.dtype))


def _keep_prob_note(keep_prob: Any) -> str | None:
    if keep_prob != 0.5:
        return (
            "The first positional argument to Dropout is the probability to keep, rather than "
            "to drop, as in tensorpack; use the keyword argument rate= to be explicit"
        )
    return None


def _keep_to_rate(keep_prob: Any) -> float:
    ok = isinstance(keep_prob, (int, float)) and not isinstance(keep_prob, bool)
    if not ok or not 0 < keep_prob <= 1:
        raise ValueError(
            "Dropout: keep_prob (the probability to keep; the first positional argument, as in "
            f"tensorpack) must be a number in (0, 1]; got {keep_prob!r}. To give the drop "
            "probability, use rate="
        )
    return 1.0 - keep_prob


@layer_register(
    use_scope=None,
    positional=("keep_prob",),
    aliases={
        "keep_prob": Alias("rate", _keep_to_rate, _keep_prob_note),
        "is_training": "training",
    },
)
def Dropout(
    x: jax.Array,
    *,
    rate: float = 0.5,
    training: bool | None = None,
    noise_shape: Any = None,
) -> jax.Array:
    """Dropout, tensorpack's ``Dropout``.

    For historical reasons the first positional argument is ``keep_prob`` (tensorpack logs a
    warning when it is not 0.5); ``rate=`` is the drop probability. It drops only in training
    (``tp.is_training()``, or ``training=`` / ``is_training=``) and then needs ``rng=`` in
    ``apply``. ``noise_shape`` is honoured (tensorpack 0.11 on TF2 ignores it silently).

    Args:
        x: any array.
        rate: drop probability, in ``[0, 1)`` (or ``keep_prob``, positional or keyword).
        training: overrides ``tp.is_training()`` (alias ``is_training``).
        noise_shape: the mask's shape, broadcast against ``x``.

    Returns:
        ``x`` with dropped elements zeroed and the rest scaled by ``1 / (1 - rate)``.
    """
    who = layer_context("Dropout")
    rate = _rate(rate, who)
    utils.check_floating(x, who=who, arg="x")
    if training is None:
        training = is_training()
    if not training or (isinstance(rate, float) and rate == 0):
        return x
    return dropout(x, rate, next_rng_key(who), noise_shape)


def _rate(rate: Any, who: str) -> Any:
    """``rate`` as a float in ``[0, 1)``; a scalar tensor is taken too, as tensorpack takes
    ``rate=tf.constant(...)``: its value when known while tracing (checked), else the traced
    scalar itself (then the layer draws its mask even where the rate is 0)."""
    if isinstance(rate, jax.core.Tracer) and rate.ndim == 0:
        if not jnp.issubdtype(rate.dtype, jnp.floating):
            raise ValueError(f"{who}: rate must be a floating scalar; got {rate.dtype}")
        return rate
    ok = not isinstance(rate, bool) and (
        isinstance(rate, (int, float))
        or (isinstance(rate, (np.ndarray, np.generic, jax.Array)) and np.ndim(rate) == 0)
    )
    value = float(np.asarray(rate)) if ok else None
    if value is None or not 0 <= value < 1:
        raise ValueError(f"{who}: rate must be a number in [0, 1); got {rate!r}")
    return value
