"""``argscope``: default arguments for layers, held in a context variable.

The current scope is an immutable mapping ``{layer name: {argument: value}}`` in a
:class:`contextvars.ContextVar`. Entering ``argscope`` sets a new mapping and leaving restores
the old one, so scopes nest, work while ``jax.jit`` traces, and are isolated between threads
and asyncio tasks (tensorpack's own stack is a process-wide list).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import inspect
import logging
import types
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tpflax._src import utils

log = logging.getLogger("tpflax")

_EMPTY: Mapping[str, Mapping[str, Any]] = types.MappingProxyType({})
_SCOPE: contextvars.ContextVar[Mapping[str, Mapping[str, Any]]] = contextvars.ContextVar(
    "tpflax_argscope", default=_EMPTY
)


def _scope_key(layer: Any) -> str:
    if not getattr(layer, "__argscope_enabled__", False):
        raise TypeError(
            f"tp.argscope: {layer!r} does not take an argscope; pass tpflax layers "
            "(tp.Conv2D, ...), layers made with tp.layer_register, or functions wrapped by "
            "tp.enable_argscope_for_function"
        )
    return layer.__name__


@contextlib.contextmanager
def argscope(layers: Any, **kwargs: Any) -> Iterator[None]:
    """Gives ``layers`` default arguments inside the ``with`` block, as tensorpack's ``argscope``.

    Explicit keyword and positional arguments of a call win over the scope; inner scopes win
    over outer ones.

    The scope is read when the layers run, which under ``jax.jit`` means when the function is
    *traced*: a ``with tp.argscope(...)`` opened around a call of an already-compiled
    function is ignored (jit reuses the first trace). Open it inside the model function, or
    inside the function you ``jax.jit``::

        @jax.jit
        def forward(params, state, x):
            with tp.argscope(tp.Conv2D, data_format='NCHW'):  # traced with the scope
                return model.apply(params, state, x)

    Args:
        layers: a layer or a list of layers.
        **kwargs: default arguments; each must be an argument (or alias) the layer accepts.

    Raises:
        TypeError: a layer does not support argscope, or does not take one of the arguments.

    Example:
        >>> import tpflax as tp
        >>> with tp.argscope(tp.Conv2D, filters=32, kernel_size=3):
        ...     tp.get_arg_scope()['Conv2D']
        {'filters': 32, 'kernel_size': 3}
    """
    if not isinstance(layers, (list, tuple)):
        layers = [layers]
    current = _SCOPE.get()
    new = dict(current)
    for layer in layers:
        key = _scope_key(layer)
        check = getattr(layer, "check_arguments", None)
        if check is not None:
            check(kwargs, source="tp.argscope")
        new[key] = types.MappingProxyType({**current.get(key, {}), **kwargs})
    token = _SCOPE.set(types.MappingProxyType(new))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def get_arg_scope() -> defaultdict[str, dict[str, Any]]:
    """Returns a copy of the current argscope as ``{layer name: {argument: value}}``.

    Like tensorpack's, it is a ``defaultdict(dict)``; changing it changes nothing.
    """
    out: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    for key, args in _SCOPE.get().items():
        out[key] = dict(args)
    return out


def scope_defaults(key: str) -> Mapping[str, Any]:
    """The current defaults for one layer (read by the layer registry)."""
    return _SCOPE.get().get(key, _EMPTY)


def enable_argscope_for_function(func: Callable[..., Any], log_shape: bool = True) -> Any:
    """Makes a plain function take defaults from ``argscope``, as tensorpack's function does.

    The wrapped function gets the argscope's keyword arguments for its ``__name__`` (explicit
    ones win) and, with ``log_shape``, logs its first input's and output's shapes once per
    model (tensorpack logs every call; it is named by ``name=`` when given).

    Args:
        func: a function of one or more arrays.
        log_shape: log ``'name': in --> out`` shapes.

    Returns:
        The wrapped function, usable in ``tp.argscope``.
    """
    if not callable(func):
        raise TypeError(f"tp.enable_argscope_for_function: expected a callable; got {func!r}")
    signature = _signature(func)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        actual = copy.copy(dict(scope_defaults(wrapped.__name__)))
        actual.update(kwargs)
        out = func(*args, **actual)
        if log_shape and args:
            from tpflax._src.frame import maybe_frame

            frame = maybe_frame()
            name = kwargs.get("name", wrapped.__name__)
            first = out[0] if isinstance(out, tuple) else out
            if frame is None or frame.shape_logger.first_time(f"<fn>{name}"):
                log.info(
                    "%-12s: %s --> %s",
                    f"'{name}'",
                    utils.shape_str(args[0]),
                    utils.shape_str(first),
                )
        return out

    def check_arguments(kwargs: Mapping[str, Any], source: str) -> None:
        if signature is None:
            return
        params = signature.parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        for arg in kwargs:
            if arg not in params:
                raise TypeError(
                    f"{source}: {wrapped.__name__} takes no argument {arg!r}; "
                    f"it takes {', '.join(params)}"
                )

    wrapped.__argscope_enabled__ = True  # type: ignore[attr-defined]
    wrapped.check_arguments = check_arguments  # type: ignore[attr-defined]
    return wrapped


def enable_argscope_for_module(module: types.ModuleType, log_shape: bool = True) -> None:
    """Wraps every function of ``module`` with :func:`enable_argscope_for_function`, in place.

    Like tensorpack's, this monkey-patches the module (e.g. ``jax.nn``) for the whole process.
    """
    for name, obj in inspect.getmembers(module):
        if inspect.isfunction(obj) and not getattr(obj, "__argscope_enabled__", False):
            setattr(module, name, enable_argscope_for_function(obj, log_shape=log_shape))


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None
