"""TensorFlow 1.x's initializers (``tf.constant_initializer``, ``tf.random_normal_initializer``,
``tf.variance_scaling_initializer``, ...) as JAX initializers ``(key, shape, dtype)``.

Each is a small object with TensorFlow's constructor arguments and defaults; calling it with a
key gives the values (``dtype`` falls back to the one given to the constructor, float32 by
default). The distributions are TensorFlow's (TF1's ``variance_scaling_initializer`` draws a
normal truncated at 2 standard deviations, its stddev divided by 0.87962566, the stddev of a
standard normal truncated there), but not its random stream: ``seed=`` is accepted and
ignored."""

from __future__ import annotations

import math
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tpflax.compat.tf import _dtypes
from tpflax.compat.tf._array_ops import _filled
from tpflax.compat.tf._common import as_dtype

_TRUNCATED_STD = 0.87962566103423978  # stddev of a standard normal truncated to [-2, 2]


class _Initializer:
    dtype: Any = _dtypes.float32

    def _dtype(self, dtype: Any) -> np.dtype:
        return as_dtype(self.dtype if dtype is None else dtype)

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class constant_initializer(_Initializer):
    """``tf.constant_initializer``: a scalar fills the shape; a list shorter than the shape is
    padded with its last value, as TF1 does."""

    def __init__(self, value: Any = 0, dtype: Any = _dtypes.float32, verify_shape: bool = False):
        self.value, self.dtype, self.verify_shape = value, dtype, verify_shape

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        dt = self._dtype(dtype)
        return jnp.asarray(_filled(self.value, dt, list(shape), "tf.constant_initializer"))


class zeros_initializer(_Initializer):
    """``tf.zeros_initializer``."""

    def __init__(self, dtype: Any = _dtypes.float32):
        self.dtype = dtype

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        return jnp.zeros(tuple(shape), self._dtype(dtype))


class ones_initializer(_Initializer):
    """``tf.ones_initializer``."""

    def __init__(self, dtype: Any = _dtypes.float32):
        self.dtype = dtype

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        return jnp.ones(tuple(shape), self._dtype(dtype))


class random_normal_initializer(_Initializer):
    """``tf.random_normal_initializer`` (mean 0, stddev 1)."""

    def __init__(
        self, mean: float = 0.0, stddev: float = 1.0, seed: Any = None, dtype: Any = _dtypes.float32
    ):
        self.mean, self.stddev, self.seed, self.dtype = mean, stddev, seed, dtype

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        dt = self._dtype(dtype)
        return (jax.random.normal(key, tuple(shape), dt) * self.stddev + self.mean).astype(dt)


class truncated_normal_initializer(random_normal_initializer):
    """``tf.truncated_normal_initializer``: re-drawn beyond 2 stddevs (no correction)."""

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        dt = self._dtype(dtype)
        z = jax.random.truncated_normal(key, -2.0, 2.0, tuple(shape), dt)
        return (z * self.stddev + self.mean).astype(dt)


class random_uniform_initializer(_Initializer):
    """``tf.random_uniform_initializer``: ``[minval, maxval)``, maxval 1 by default."""

    def __init__(
        self,
        minval: float = 0.0,
        maxval: Any = None,
        seed: Any = None,
        dtype: Any = _dtypes.float32,
    ):
        self.minval, self.maxval, self.seed, self.dtype = minval, maxval, seed, dtype

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        dt = self._dtype(dtype)
        hi = 1.0 if self.maxval is None else self.maxval
        if jnp.issubdtype(dt, jnp.integer):
            return jax.random.randint(key, tuple(shape), self.minval, hi, dt)
        return jax.random.uniform(key, tuple(shape), dt, self.minval, hi)


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """TensorFlow's ``_compute_fans``: a kernel's receptive field times its in/out channels."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


class variance_scaling_initializer(_Initializer):
    """``tf.variance_scaling_initializer`` (TF1): ``'normal'`` and ``'truncated_normal'``
    draw a truncated normal with TF's 0.87962566 correction, ``'untruncated_normal'`` a
    plain one, ``'uniform'`` within ``sqrt(3 * scale / n)``."""

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: Any = None,
        dtype: Any = _dtypes.float32,
    ):
        if scale <= 0:
            raise ValueError(f"tf.variance_scaling_initializer: scale must be > 0; got {scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"tf.variance_scaling_initializer: unknown mode {mode!r}")
        distribution = distribution.lower()
        if distribution not in ("normal", "uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(
                f"tf.variance_scaling_initializer: unknown distribution {distribution!r}"
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.seed, self.dtype = seed, dtype

    def __call__(self, key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        dt = self._dtype(dtype)
        dims = tuple(int(d) for d in shape)
        fan_in, fan_out = _fans(dims)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        scale = self.scale / max(1.0, n)
        if self.distribution in ("normal", "truncated_normal"):
            std = math.sqrt(scale) / _TRUNCATED_STD
            return (jax.random.truncated_normal(key, -2.0, 2.0, dims, dt) * std).astype(dt)
        if self.distribution == "untruncated_normal":
            return (jax.random.normal(key, dims, dt) * math.sqrt(scale)).astype(dt)
        limit = math.sqrt(3.0 * scale)
        return jax.random.uniform(key, dims, dt, -limit, limit)


def glorot_uniform_initializer(seed: Any = None, dtype: Any = _dtypes.float32) -> Any:
    """``tf.glorot_uniform_initializer``: variance scaling 1, fan_avg, uniform."""
    return variance_scaling_initializer(1.0, "fan_avg", "uniform", seed, dtype)


def glorot_normal_initializer(seed: Any = None, dtype: Any = _dtypes.float32) -> Any:
    """``tf.glorot_normal_initializer``: variance scaling 1, fan_avg, truncated normal."""
    return variance_scaling_initializer(1.0, "fan_avg", "truncated_normal", seed, dtype)


def _scaling(scale: float, mode: str, distribution: str, name: str) -> Any:
    def make(seed: Any = None, dtype: Any = _dtypes.float32) -> variance_scaling_initializer:
        return variance_scaling_initializer(scale, mode, distribution, seed, dtype)

    make.__name__ = name
    make.__doc__ = f"``tf.initializers.{name}``: variance scaling {scale}, {mode}, {distribution}."
    return make


he_normal = _scaling(2.0, "fan_in", "truncated_normal", "he_normal")
he_uniform = _scaling(2.0, "fan_in", "uniform", "he_uniform")
lecun_normal = _scaling(1.0, "fan_in", "truncated_normal", "lecun_normal")
lecun_uniform = _scaling(1.0, "fan_in", "uniform", "lecun_uniform")


def _keras_random_normal(mean: float = 0.0, stddev: float = 0.05, seed: Any = None) -> Any:
    """``tf.keras.initializers.RandomNormal``: stddev 0.05 by default."""
    return random_normal_initializer(mean, stddev, seed)


def _keras_random_uniform(minval: float = -0.05, maxval: float = 0.05, seed: Any = None) -> Any:
    """``tf.keras.initializers.RandomUniform``: within [-0.05, 0.05) by default."""
    return random_uniform_initializer(minval, maxval, seed)


def _keras_truncated_normal(mean: float = 0.0, stddev: float = 0.05, seed: Any = None) -> Any:
    """``tf.keras.initializers.TruncatedNormal``: stddev 0.05 by default."""
    return truncated_normal_initializer(mean, stddev, seed)


# tf.initializers (TF1)
initializers = types.SimpleNamespace(
    constant=constant_initializer,
    zeros=zeros_initializer,
    ones=ones_initializer,
    random_normal=random_normal_initializer,
    random_uniform=random_uniform_initializer,
    truncated_normal=truncated_normal_initializer,
    variance_scaling=variance_scaling_initializer,
    glorot_uniform=glorot_uniform_initializer,
    glorot_normal=glorot_normal_initializer,
    he_normal=he_normal,
    he_uniform=he_uniform,
    lecun_normal=lecun_normal,
    lecun_uniform=lecun_uniform,
)
# tf.keras.initializers (the TF1 ones): Keras's defaults (stddev 0.05, ...) where they differ.
keras = types.SimpleNamespace(
    initializers=types.SimpleNamespace(
        Constant=constant_initializer,
        Zeros=zeros_initializer,
        Ones=ones_initializer,
        VarianceScaling=variance_scaling_initializer,
        RandomNormal=_keras_random_normal,
        RandomUniform=_keras_random_uniform,
        TruncatedNormal=_keras_truncated_normal,
        glorot_uniform=glorot_uniform_initializer,
        glorot_normal=glorot_normal_initializer,
        GlorotUniform=glorot_uniform_initializer,
        GlorotNormal=glorot_normal_initializer,
        he_normal=he_normal,
        he_uniform=he_uniform,
        HeNormal=he_normal,
        HeUniform=he_uniform,
        lecun_normal=lecun_normal,
        lecun_uniform=lecun_uniform,
    )
)

__all__ = [
    "constant_initializer",
    "glorot_normal_initializer",
    "glorot_uniform_initializer",
    "initializers",
    "keras",
    "ones_initializer",
    "random_normal_initializer",
    "random_uniform_initializer",
    "truncated_normal_initializer",
    "variance_scaling_initializer",
    "zeros_initializer",
]
