"""Applying a layer's ``activation`` (a JAX function, or a layer such as ``tp.BNReLU``)."""

from __future__ import annotations

from typing import Any

import jax

from tpflax._src import epilogue


def apply_activation(activation: Any, x: Any, *, who: str) -> Any:
    """Calls ``activation(x)``; a layer passed here creates its variables in the calling
    layer's scope (``conv1/bn/gamma``), as in tensorpack. ``None`` is the identity."""
    if activation is None:
        return x
    if not callable(activation):
        raise TypeError(f"{who}: activation must be callable or None; got {activation!r}")
    if activation is jax.nn.relu:  # fused into a convolution's oneDNN call where it can be
        return epilogue.relu(x)
    return activation(x)
