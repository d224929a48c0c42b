"""TensorFlow's array, math, control-flow, gradient and random ops (``tf.reshape``,
``tf.concat``, ``tf.reduce_mean``, ``tf.cond``, ``tf.random_uniform``, ...) and dtypes
(``tf.float32``, ...) on ``jax.numpy``/``lax``, with TensorFlow's argument names, positions
and defaults. The ops live in ``_array_ops``, ``_math_ops``, ``_control_flow_ops``,
``_grad_ops`` and ``_random_ops``; this module gathers them for ``tpflax.compat.tf``."""

from __future__ import annotations

from tpflax.compat.tf._array_ops import *  # noqa: F403
from tpflax.compat.tf._array_ops import __all__ as _array_names
from tpflax.compat.tf._control_flow_ops import *  # noqa: F403
from tpflax.compat.tf._control_flow_ops import __all__ as _control_names
from tpflax.compat.tf._dtypes import *  # noqa: F403
from tpflax.compat.tf._dtypes import __all__ as _dtype_names
from tpflax.compat.tf._grad_ops import *  # noqa: F403
from tpflax.compat.tf._grad_ops import __all__ as _grad_names
from tpflax.compat.tf._math_ops import *  # noqa: F403
from tpflax.compat.tf._math_ops import __all__ as _math_names
from tpflax.compat.tf._random_ops import *  # noqa: F403
from tpflax.compat.tf._random_ops import __all__ as _random_names

__all__ = [
    *_array_names,
    *_control_names,
    *_dtype_names,
    *_grad_names,
    *_math_names,
    *_random_names,
]
