"""tpflax.compat.tf.nn's argument errors (the values are pinned by TensorFlow's fixtures in
tests/test_compat_ops.py)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from tpflax.compat import tf


def test_weighted_cross_entropy_errors_name_the_op_and_argument() -> None:
    x, z = jnp.zeros((2, 3)), jnp.ones((2, 3))
    who = r"tf.nn.weighted_cross_entropy_with_logits: "
    with pytest.raises(ValueError, match=who + "give labels or targets"):
        tf.nn.weighted_cross_entropy_with_logits(labels=z, targets=z, logits=x, pos_weight=2.0)
    with pytest.raises(ValueError, match=who + r"labels \(or targets\), logits and pos_weight"):
        tf.nn.weighted_cross_entropy_with_logits(labels=z, logits=x)
    with pytest.raises(
        ValueError,
        match=who + r"logits and labels must have the same shape, got \(2, 3\) and \(3,\)",
    ):
        tf.nn.weighted_cross_entropy_with_logits(z[0], x, 2.0)
