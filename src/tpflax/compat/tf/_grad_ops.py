"""TensorFlow's gradient ops in model code: ``tf.custom_gradient`` (on ``jax.custom_vjp``)
and ``tf.gradients`` (``_graph_grad.py``: the traced graph from xs to ys, differentiated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from tpflax.compat.tf._common import tensor
from tpflax.compat.tf._graph_grad import gradients


def custom_gradient(f: Callable[..., Any] | None = None) -> Any:
    """``tf.custom_gradient``: ``f(*xs)`` returns ``(y, grad_fn)`` and ``grad_fn(dy)`` the
    gradients of the inputs; the forward pass runs again for the backward one (JAX keeps
    arrays, not closures, between the two). ``grad_fn``'s ``variables=`` is not supported."""
    if f is None:
        return custom_gradient

    @jax.custom_vjp
    def wrapped(*xs: Any) -> Any:
        return f(*xs)[0]

    def forward(*xs: Any) -> Any:
        return f(*xs)[0], xs

    def backward(xs: Any, dy: Any) -> Any:
        grad_fn = f(*xs)[1]
        grads = grad_fn(*dy) if isinstance(dy, tuple | list) else grad_fn(dy)  # one per y
        grads = tuple(grads) if isinstance(grads, list | tuple) else (grads,)
        if len(grads) != len(xs):
            raise ValueError(
                f"tf.custom_gradient: grad_fn gave {len(grads)} gradients for {len(xs)} inputs"
            )
        return tuple(
            jax.numpy.zeros_like(x) if g is None else tensor(g).astype(x.dtype)
            for g, x in zip(grads, xs, strict=True)
        )

    wrapped.defvjp(forward, backward)

    def call(*xs: Any) -> Any:
        return wrapped(*(tensor(x) for x in xs))

    call.__name__ = getattr(f, "__name__", "custom_gradient")
    call.__doc__ = f.__doc__
    return call


__all__ = ["custom_gradient", "gradients"]
