"""TensorFlow's initializers (``tf.constant_initializer``, ``tf.random_normal_initializer``,
``tf.variance_scaling_initializer``, ...) as JAX initializers ``(key, shape, dtype)``."""

from __future__ import annotations

__all__: list[str] = []
