"""``tf.math``: the math ops under their ``tf.math`` names (``tf.math.log``,
``tf.math.reduce_mean``, ``tf.math.top_k``, ...), the same functions as ``tf.log``, ...."""

from __future__ import annotations

from tpflax.compat.tf._math_ops import *  # noqa: F403
from tpflax.compat.tf._math_ops import __all__ as _math_names
from tpflax.compat.tf.nn import in_top_k, l2_normalize, softplus, top_k

__all__ = [*_math_names, "in_top_k", "l2_normalize", "softplus", "top_k"]
