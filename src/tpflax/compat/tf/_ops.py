"""TensorFlow's array and math ops (``tf.reshape``, ``tf.concat``, ``tf.reduce_mean``, ...)
on ``jax.numpy``/``lax``, with TensorFlow's argument names, positions and defaults."""

from __future__ import annotations

__all__: list[str] = []
