"""TensorFlow's random ops (``tf.random_uniform``, ``tf.random_normal``,
``tf.truncated_normal``) drawing from the model's rng: each call takes a fresh key split from
the ``rng`` given to ``apply``, so a step is deterministic given that key. TensorFlow's
``seed=`` is accepted and ignored (its stream cannot be reproduced)."""

from __future__ import annotations

import types
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src.frame import next_rng_key
from tpflax.compat.tf import _dtypes
from tpflax.compat.tf._common import as_dtype, static_ints
from tpflax.compat.tf._naming import named


def random_uniform(
    shape: Any,
    minval: Any = 0,
    maxval: Any = None,
    dtype: Any = _dtypes.float32,
    seed: Any = None,
    name: str | None = None,
) -> Any:
    """``tf.random_uniform`` (``tf.random.uniform``): ``[minval, maxval)``; ``maxval`` 1 for
    floats, required for integers."""
    dt = as_dtype(dtype)
    dims = tuple(static_ints(shape, "tf.random_uniform"))
    key = next_rng_key("tf.random_uniform")
    if jnp.issubdtype(dt, jnp.integer):
        if maxval is None:
            raise ValueError("tf.random_uniform: maxval is required for integer dtypes")
        out = jax.random.randint(key, dims, minval, maxval, dt)
    else:
        hi = 1.0 if maxval is None else maxval
        out = jax.random.uniform(key, dims, dt, minval, hi)
    return named(out, name)


def random_normal(
    shape: Any,
    mean: Any = 0.0,
    stddev: Any = 1.0,
    dtype: Any = _dtypes.float32,
    seed: Any = None,
    name: str | None = None,
) -> Any:
    """``tf.random_normal`` (``tf.random.normal``)."""
    dt = as_dtype(dtype)
    dims = tuple(static_ints(shape, "tf.random_normal"))
    out = jax.random.normal(next_rng_key("tf.random_normal"), dims, dt) * stddev + mean
    return named(out.astype(dt), name)


def truncated_normal(
    shape: Any,
    mean: Any = 0.0,
    stddev: Any = 1.0,
    dtype: Any = _dtypes.float32,
    seed: Any = None,
    name: str | None = None,
) -> Any:
    """``tf.truncated_normal``: a normal re-drawn beyond 2 standard deviations."""
    dt = as_dtype(dtype)
    dims = tuple(static_ints(shape, "tf.truncated_normal"))
    z = jax.random.truncated_normal(next_rng_key("tf.truncated_normal"), -2.0, 2.0, dims, dt)
    return named((z * stddev + mean).astype(dt), name)


# tf.random (TF 1.13+ and TF2 names)
random = types.SimpleNamespace(
    uniform=random_uniform, normal=random_normal, truncated_normal=truncated_normal
)

__all__ = ["random", "random_normal", "random_uniform", "truncated_normal"]
