"""`tf.losses`: TensorFlow's names on jax.numpy/lax, with TensorFlow's semantics."""

from __future__ import annotations

__all__: list[str] = []
