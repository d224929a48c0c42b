"""The one interception point: every variable and every layer call passes through it.

An :class:`Interceptor` sees each variable a layer asks for (:class:`VariableRequest`, what
TensorFlow's ``custom_getter`` sees) and each registered layer's call with its resolved
arguments (:class:`LayerCall`, what haiku's ``intercept_methods`` sees), and may change the
request, the value, the arguments or the result. ``tp.freeze_variables`` is one,
``tp.zoo.fold_batchnorm``'s folded-BatchNorm mode another, TF-style custom getters the next:
no layer checks a flag of its own.

Interceptors nest as TensorFlow's custom getters do: the innermost is called first, with a
``next`` that runs the enclosing ones and, last, the real variable store or layer body. Like
``argscope``, the stack lives in a :class:`contextvars.ContextVar` and is read when a function
is traced: open the block inside the function you ``jax.jit``, or before its first call.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tpflax._src.types import Initializer


@dataclasses.dataclass(frozen=True)
class VariableRequest:
    """A variable a layer creates (in ``init``) or reads (in ``apply``).

    Attributes:
        name: tensorpack's full variable name, ``'conv0/W'``.
        shape: the shape the layer needs.
        initializer: the layer's initializer, ``(key, shape, dtype) -> array``.
        dtype: the variable's dtype.
        trainable: ``True`` for ``params``, ``False`` for ``state`` (``mean/EMA``).
        who: the layer, for error messages (``"Conv2D 'conv0'"``).
    """

    name: str
    shape: tuple[int, ...]
    initializer: Initializer
    dtype: Any
    trainable: bool
    who: str

    def replace(self, **changes: Any) -> VariableRequest:
        """A copy with ``changes`` (e.g. ``trainable=False``)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class LayerCall:
    """One call of a registered layer, after its arguments are resolved.

    Attributes:
        layer: the registered name, ``'Conv2D'``.
        scope: the full scope its variables live in: ``'conv0'`` for ``Conv2D('conv0', ...)``,
            the calling scope for a layer called without a name (``BNReLU``).
        inputs: the layer's input (an array or a list of arrays).
        kwargs: every argument by its own name, tensorpack aliases, ``argscope`` and the
            layer's defaults resolved (``{'filters': 8, 'kernel_size': 3, 'use_bias': False,
            ...}``).
    """

    layer: str
    scope: str
    inputs: Any
    kwargs: Mapping[str, Any]

    def replace(self, **changes: Any) -> LayerCall:
        """A copy with ``changes`` (e.g. ``kwargs={**call.kwargs, 'use_bias': True}``)."""
        return dataclasses.replace(self, **changes)


class Interceptor:
    """Base class: override :meth:`variable`, :meth:`layer` or both.

    Example (a quantizer on every kernel, as DoReFa-Net's ``remap_variables`` does):
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> class SignKernels(tp.Interceptor):
        ...     def variable(self, request, next):
        ...         value = next(request)
        ...         return jnp.sign(value) if request.name.endswith('/W') else value
        >>> def net(x):
        ...     with tp.intercept(SignKernels()):
        ...         return tp.FullyConnected('fc', x, 2, use_bias=False)
        >>> model = tp.transform(net)
        >>> params, state = model.init(jax.random.key(0), jnp.ones((1, 3)))
        >>> y, _ = model.apply({'fc': {'W': -2 * jnp.ones((3, 2))}}, state, jnp.ones((1, 3)))
        >>> y
        Array([[-3., -3.]], dtype=float32)
    """

    def variable(self, request: VariableRequest, next: Callable[[VariableRequest], Any]) -> Any:
        """Returns the variable's value; ``next(request)`` gets it from the enclosing
        interceptors and the store. The default passes the request on unchanged."""
        return next(request)

    def layer(self, call: LayerCall, next: Callable[[LayerCall], Any]) -> Any:
        """Returns the layer's outputs; ``next(call)`` runs the enclosing interceptors and the
        layer. The default passes the call on unchanged."""
        return next(call)


_STACK: contextvars.ContextVar[tuple[Interceptor, ...]] = contextvars.ContextVar(
    "tpflax_interceptors", default=()
)


@contextlib.contextmanager
def intercept(interceptor: Interceptor) -> Iterator[None]:
    """Runs every variable and layer call inside the block through ``interceptor`` (see
    :class:`Interceptor`); an inner block's interceptor is called first.

    Raises:
        TypeError: ``interceptor`` is not an :class:`Interceptor`.
    """
    if not isinstance(interceptor, Interceptor):
        raise TypeError(
            f"tp.intercept: expected a tp.Interceptor; got {type(interceptor).__name__}"
        )
    token = _STACK.set((*_STACK.get(), interceptor))
    try:
        yield
    finally:
        _STACK.reset(token)


def _chain(method: str, final: Callable[[Any], Any]) -> Callable[[Any], Any]:
    run = final
    for interceptor in _STACK.get():  # outermost first, so the innermost ends up on top
        run = _bind(getattr(interceptor, method), run)
    return run


def _bind(hook: Callable[[Any, Callable[[Any], Any]], Any], rest: Callable[[Any], Any]) -> Any:
    return lambda value: hook(value, rest)


def get_variable(request: VariableRequest, store: Callable[[VariableRequest], Any]) -> Any:
    """``store(request)`` through the interceptors in force."""
    return _chain("variable", store)(request)


def call_layer(call: LayerCall, body: Callable[[LayerCall], Any]) -> Any:
    """``body(call)`` through the interceptors in force."""
    return _chain("layer", body)(call)
