"""``LinearWrap``: tensorpack's chaining sugar for linear models."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jax import lax

from tpflax._src.registry import get_registered_layer

_MODULES: dict[str, types.ModuleType] = {"jnp": jnp, "jax": jax, "lax": lax}


class _ModuleFunc:
    """``LinearWrap(x).jnp.multiply(0.5)``: calls a module function with the wrapped array first
    (the JAX counterpart of tensorpack's ``.tf`` escape)."""

    def __init__(self, module: types.ModuleType, tensor: Any, path: str, wrap: type) -> None:
        self._mod = module
        self._t = tensor
        self._path = path
        self._wrap = wrap

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            target = getattr(self._mod, name)
        except AttributeError:
            raise AttributeError(f"LinearWrap.{self._path}: has no attribute {name!r}") from None
        if isinstance(target, types.ModuleType):
            return _ModuleFunc(target, self._t, f"{self._path}.{name}", self._wrap)
        if not callable(target):
            raise AttributeError(f"LinearWrap.{self._path}.{name} is not a function")

        def call(*args: Any, **kwargs: Any) -> LinearWrap:
            return self._wrap(target(self._t, *args, **kwargs))

        return call


class LinearWrap:
    """Wraps an array to chain layers: ``LinearWrap(x).Conv2D('c0', 32, 3).MaxPooling('p', 2)()``.

    Any registered layer is a method (named layers take their name first), plus:
    ``.apply(f, ...)``, ``.apply2(f, name, ...)``, ``.print_tensor()``, ``.tensor()`` / ``()``,
    and ``.jnp.<fn>`` / ``.jax.<module>.<fn>`` / ``.lax.<fn>`` in place of tensorpack's ``.tf``.

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> tp.LinearWrap(jnp.ones(3)).jnp.multiply(2.0).jax.nn.relu()()
        Array([2., 2., 2.], dtype=float32)
    """

    # The modules whose functions chain as `.<module>.<fn>(...)`; a subclass may add its own
    # (tpflax.compat.tensorpack's LinearWrap adds tensorpack's `.tf`).
    modules: ClassVar[dict[str, types.ModuleType]] = _MODULES

    def __init__(self, tensor: Any) -> None:
        self._t = tensor

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        layer = get_registered_layer(name)
        if layer is not None:

            def call(*args: Any, **kwargs: Any) -> LinearWrap:
                if layer.use_scope is True or (args and isinstance(args[0], str)):
                    if not args:
                        raise TypeError(f"LinearWrap.{name}: the layer's name is missing")
                    return type(self)(layer(args[0], self._t, *args[1:], **kwargs))
                return type(self)(layer(self._t, *args, **kwargs))

            return call
        if name in self.modules:
            return _ModuleFunc(self.modules[name], self._t, name, type(self))
        if name == "tf":
            raise AttributeError(
                "LinearWrap.tf: there is no TensorFlow here; use .jnp.<fn>, .jax.nn.<fn>, "
                ".lax.<fn> or .apply(fn, ...) instead (or tpflax.compat.tensorpack's "
                "LinearWrap, whose .tf is tpflax.compat.tf)"
            )
        known = ", ".join(repr(m) for m in self.modules)
        raise AttributeError(
            f"LinearWrap.{name}: neither a registered layer nor one of {known}. "
            "Did you forget to extract the array with () ?"
        )

    def apply(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> LinearWrap:
        """``LinearWrap(func(x, *args, **kwargs))``."""
        return type(self)(func(self._t, *args, **kwargs))

    def apply2(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> LinearWrap:
        """``LinearWrap(func(args[0], x, *args[1:], **kwargs))``: for functions that take a
        name first, such as layers."""
        if not args:
            raise TypeError("LinearWrap.apply2: needs at least one argument (e.g. a name)")
        return type(self)(func(args[0], self._t, *args[1:], **kwargs))

    def __call__(self) -> Any:
        """Returns the wrapped array."""
        return self._t

    def tensor(self) -> Any:
        """Returns the wrapped array (same as calling the wrapper)."""
        return self._t

    def print_tensor(self) -> LinearWrap:
        """Prints the wrapped array (its shape and dtype while tracing) and returns ``self``."""
        print(self._t)
        return self
