"""Tensorpack's default initializers, as JAX ``(key, shape, dtype)`` functions."""

from __future__ import annotations

from typing import Any

import jax


def variance_scaling_2() -> Any:
    """Tensorpack's default kernel initializer for Conv2D, Conv2DTranspose and FullyConnected:
    ``tf.keras.initializers.VarianceScaling(2.0, distribution='untruncated_normal')``, i.e. a
    normal with standard deviation ``sqrt(2 / fan_in)`` (``fan_in = kh * kw * in_channels``
    for a ``[kh, kw, in, out]`` kernel). JAX's ``'normal'`` distribution is untruncated."""
    return jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


zeros = jax.nn.initializers.zeros
ones = jax.nn.initializers.ones


def resolve(init: Any, default: Any, *, who: str, arg: str) -> Any:
    """``None`` means tensorpack's default; anything else must be a JAX initializer."""
    if init is None:
        return default
    if not callable(init):
        raise TypeError(
            f"{who}: {arg} must be a JAX initializer (key, shape, dtype) -> array, e.g. "
            f"jax.nn.initializers.constant(0.1); got {init!r}"
        )
    return init
