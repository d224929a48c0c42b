"""Tensorpack model code as written: ``from tpflax.compat import tf`` (with ``tf.compat.v1``
the same module) runs TensorFlow 1.x model code inside ``tp.transform``, ``tp.linen`` and
``tp.nnx``, on ``jax.numpy``/``lax`` with TensorFlow's semantics.

Every name is a thin function with TensorFlow's signature and defaults over tpflax's core,
pinned by fixtures from real TensorFlow (``tools/golden``); a TensorFlow name or idiom that
cannot work under XLA (data-dependent shapes, Python control flow on tensors) fails at the
call, naming it and what to write instead.
"""

from tpflax.compat import tf

__all__ = ["tf"]
