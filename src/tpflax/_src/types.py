"""The types layer signatures share (for readers and mypy; nothing is checked at run time
beyond what each layer checks itself)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

# JAX's initializer signature, ``(key, shape, dtype) -> array``; ``None`` in a layer's
# arguments means tensorpack's default for that variable.
Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]
# ``activation=``: a JAX function or a layer called without a name (``tp.BNReLU``).
Activation = Callable[[jax.Array], jax.Array]
# ``kernel_regularizer=`` and friends: an array to a scalar loss (``tp.l2_regularizer(1e-4)``).
Regularizer = Callable[[jax.Array], jax.Array]
# Tensorpack's ``shape2d`` argument: ``k`` or ``(kh, kw)``.
Size2D = int | Sequence[int]
