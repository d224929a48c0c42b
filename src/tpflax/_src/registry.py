"""``layer_register``: the one layer of sugar shared by every tpflax layer.

A registered layer is a plain function ``f(inputs, arg, ..., kwarg=...)`` whose body creates or
reads its variables with :func:`tpflax.get_variable` and computes with pure math. The
:class:`Layer` wrapped around it resolves arguments (tensorpack's aliases, positional names,
``argscope`` defaults), opens the layer's variable scope, checks the name is not used twice,
logs shapes once, records ``name/output`` for ``capture=``, and offers the pure call style
``Layer.init`` / ``Layer.apply``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from tpflax._src import argscope as _argscope
from tpflax._src import intercept, utils
from tpflax._src.frame import Frame, current_frame, maybe_frame
from tpflax._src.shape_log import ShapeLogger

log = logging.getLogger("tpflax")


@dataclasses.dataclass(frozen=True)
class Alias:
    """An old argument name that sets ``target``, optionally through ``convert``.

    ``positional_warning(value)`` may return a message to log when the alias is given
    positionally (tensorpack warns about Dropout's positional ``keep_prob``).
    """

    target: str
    convert: Callable[[Any], Any] | None = None
    positional_warning: Callable[[Any], str | None] | None = None


# tensorpack's map_common_tfargs: accepted by every layer that has the target argument.
_COMMON_ALIASES = {
    "nl": Alias("activation"),
    "W_init": Alias("kernel_initializer"),
    "b_init": Alias("bias_initializer"),
}

_REGISTRY: dict[str, Layer] = {}
# Names whose registered layer yields to another one of the same name (layer_register(yields=)).
_YIELDING: set[str] = set()


def get_registered_layer(name: str) -> Layer | None:
    """Returns the layer registered under ``name`` (e.g. ``'Conv2D'``), or ``None``."""
    return _REGISTRY.get(name)


def register_alias(alias: str, layer: Layer) -> Layer:
    """Makes ``layer`` reachable under a second name too (``LinearWrap(x).Deconv2D(...)``);
    argscope still keys it by its own name, so ``argscope(Deconv2D)`` sets
    ``Conv2DTranspose``'s defaults, as in tensorpack where both are one function."""
    _REGISTRY[alias] = layer
    return layer


def layer_context(kind: str) -> str:
    """``"Conv2D 'group0/conv1'"``: the running layer, for error messages in layer bodies."""
    frame = maybe_frame()
    return utils.where(kind, frame.scope_name if frame is not None else None)


def is_array(value: Any) -> bool:
    return isinstance(value, (jax.Array, np.ndarray)) or (
        hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "ndim")
    )


def _canonical(x: Any) -> Any:
    """A NumPy float64/int64 input as JAX computes it without ``jax_enable_x64`` (float32,
    int32), once at the layer, instead of a truncation warning in each op and variable."""
    if isinstance(x, np.ndarray) and jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype:
        return jax.numpy.asarray(x)
    return x


class Layer:
    """A registered layer: callable by name inside a model, or purely via ``init``/``apply``."""

    __argscope_enabled__ = True

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        log_shape: bool,
        use_scope: bool | None,
        positional: Sequence[str] | None = None,
        aliases: Mapping[str, Alias | str] | None = None,
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.__name__: str = func.__name__
        self.log_shape = log_shape
        self.use_scope = use_scope
        sig = inspect.signature(func)
        params = list(sig.parameters.values())[1:]
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.arg_names: tuple[str, ...] = tuple(p.name for p in params if p.kind in kinds)
        self.required: tuple[str, ...] = tuple(
            p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty
        )
        self.defaults: dict[str, Any] = {
            p.name: p.default
            for p in params
            if p.kind in kinds and p.default is not inspect.Parameter.empty
        }
        if positional is None:
            positional = [
                p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            ]
        self.positional: tuple[str, ...] = tuple(positional)
        table = {k: v for k, v in _COMMON_ALIASES.items() if v.target in self.arg_names}
        for old, new in (aliases or {}).items():
            table[old] = new if isinstance(new, Alias) else Alias(new)
        self.aliases: dict[str, Alias] = table
        self._pure_logger = ShapeLogger()
        # Registered over tp.auto_reuse_variable_scope: calls may share one name.
        self.auto_reuse = bool(getattr(func, "__tpflax_auto_reuse__", False))

    def __repr__(self) -> str:
        return f"<tpflax layer {self.__name__}>"

    # ----------------------------------------------------------------- arguments
    def accepted_arguments(self) -> tuple[str, ...]:
        """Every keyword this layer takes, tensorpack aliases included."""
        return self.arg_names + tuple(self.aliases)

    def _canonical(
        self, kwargs: Mapping[str, Any], who: str, source: str, positional: bool = False
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, value in kwargs.items():
            alias = self.aliases.get(key)
            target = alias.target if alias else key
            if target not in self.arg_names:
                raise TypeError(
                    f"{who}: unknown argument {key!r} ({source}); {self.__name__} takes "
                    f"{', '.join(self.accepted_arguments())}"
                )
            if target in out:
                raise TypeError(
                    f"{who}: arguments {spelled[target]!r} and {key!r} both set {target!r} "
                    f"({source}); give only one"
                )
            if alias and positional and alias.positional_warning:
                message = alias.positional_warning(value)
                if message:
                    log.warning("%s: %s", who, message)
            out[target] = alias.convert(value) if alias and alias.convert else value
            spelled[target] = key
        return out

    def check_arguments(self, kwargs: Mapping[str, Any], source: str) -> None:
        """Validates argument names given to ``tp.argscope`` for this layer."""
        self._canonical(kwargs, f"{source}({self.__name__})", "argscope")

    def _resolve(self, args: Sequence[Any], kwargs: Mapping[str, Any], who: str) -> dict:
        if len(args) > len(self.positional):
            allowed = ", ".join(self.positional) or "none"
            raise TypeError(
                f"{who}: takes at most {len(self.positional)} positional argument(s) after the "
                f"input ({allowed}); got {len(args)}. Pass the others by keyword, as in tensorpack"
            )
        merged = self._canonical(_argscope.scope_defaults(self.__name__), who, "from argscope")
        merged.update(self._canonical(kwargs, who, "keyword"))
        positional = dict(zip(self.positional, args, strict=False))
        merged.update(self._canonical(positional, who, "positional", positional=True))
        missing = [name for name in self.required if name not in merged]
        if missing:
            raise TypeError(
                f"{who}: missing required argument(s) {', '.join(map(repr, missing))} "
                "(pass them positionally, by keyword or through tp.argscope)"
            )
        return merged

    # ----------------------------------------------------------------- named call
    def _split_name(self, args: Sequence[Any]) -> tuple[str | None, Any, Sequence[Any]]:
        if not args:
            raise TypeError(f"{self.__name__}: called with no input")
        first = args[0]
        if self.use_scope is True:
            if not isinstance(first, str):
                raise TypeError(
                    f"{self.__name__}: the first argument must be the layer's name (a string), "
                    f"e.g. {self.__name__}('name', x, ...); got {type(first).__name__}. "
                    "Did you forget the name?"
                )
        elif not isinstance(first, str):
            return None, first, args[1:]
        elif self.use_scope is False:
            log.warning(
                "Please call layer %s without the first scope name argument, or register the "
                "layer with use_scope=None to allow calling it with scope names.",
                self.__name__,
            )
        if not first:
            raise TypeError(f"{self.__name__}: the layer name must be a non-empty string")
        if "" in first.split("/"):
            raise ValueError(
                f"{self.__name__}: the layer name must be non-empty parts joined by '/' (a "
                f"tensorpack variable scope); got {first!r}"
            )
        if len(args) < 2:
            raise TypeError(f"{utils.where(self.__name__, first)}: called with no input")
        return first, args[1], args[2:]

    def _check_inputs(self, inputs: Any, who: str) -> Any:
        if is_array(inputs):
            return _canonical(inputs)
        if isinstance(inputs, (list, tuple)) and inputs and all(is_array(v) for v in inputs):
            return type(inputs)(_canonical(v) for v in inputs)
        raise TypeError(
            f"{who}: inputs must be an array (or a list of arrays); got {type(inputs).__name__}"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name, inputs, rest = self._split_name(args)
        frame = current_frame(utils.where(self.__name__, name))
        who = utils.where(self.__name__, frame.full_name(name) if name else frame.scope_name)
        inputs = self._check_inputs(inputs, who)
        resolved = self._resolve(rest, kwargs, who)
        scope = frame.full_name(name) if name else frame.scope_name
        call = intercept.LayerCall(self.__name__, scope, inputs, {**self.defaults, **resolved})
        if name is None:
            return intercept.call_layer(call, self._body)
        return intercept.call_layer(call, functools.partial(self._scoped, frame, name, who))

    def _body(self, call: intercept.LayerCall) -> Any:
        return self.func(call.inputs, **call.kwargs)

    def _scoped(self, frame: Frame, name: str, who: str, call: intercept.LayerCall) -> Any:
        inputs = call.inputs
        full = frame.full_name(name)
        reuse = frame.reuse[-1]
        owner = frame.layer_names.get(full)
        if owner is not None and not reuse and not (owner is self and self.auto_reuse):
            raise ValueError(
                f"{who}: the layer name {name!r} is used twice in scope "
                f"'{frame.scope_name}'; give each layer its own name, or share variables with "
                "tp.variable_scope(..., reuse=True)"
            )
        frame.layer_names.setdefault(full, self)
        logger = frame.shape_logger
        do_log = self.log_shape and logger.first_time(full)
        frame.reuse.append(reuse)
        try:
            with frame.opened_variable_scope(full), frame.opened_name_scope(name) as name_scope:
                if do_log:
                    logger.push_inputs(full, utils.shape_str(inputs))
                outputs = self._body(call)
                if do_log:
                    logger.push_outputs(full, utils.shape_str(outputs))
        finally:
            frame.reuse.pop()
        # TensorFlow's tensor name: a layer called again is `name_1/output`, and so on.
        frame.outputs[f"{name_scope}/output"] = outputs
        return outputs

    # ----------------------------------------------------------------- pure call
    def _pure(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        from tpflax._src.transform import transform

        def body(inputs: Any) -> Any:
            who = self.__name__
            inputs = self._check_inputs(inputs, who)
            resolved = self._resolve(args, kwargs, who)
            logger = current_frame().shape_logger
            do_log = self.log_shape and logger.first_time(who)
            if do_log:
                logger.push_inputs(who, utils.shape_str(inputs))
            call = intercept.LayerCall(self.__name__, "", inputs, {**self.defaults, **resolved})
            outputs = intercept.call_layer(call, self._body)
            if do_log:
                logger.push_outputs(who, utils.shape_str(outputs))
            return outputs

        return transform(body, shape_logger=self._pure_logger)

    def init(
        self, rng: Any, inputs: Any, *args: Any, is_training: bool = False, **kwargs: Any
    ) -> tuple[dict, dict]:
        """Pure call: creates this layer's ``(params, state)`` for ``inputs``.

        Args are those of the named call, without the name. Keys are tensorpack's variable
        names without the layer scope (``{'W': ..., 'b': ...}``).
        """
        return self._pure(args, kwargs).init(rng, inputs, is_training=is_training)

    def apply(
        self,
        params: Mapping[str, Any],
        state: Mapping[str, Any],
        inputs: Any,
        *args: Any,
        is_training: bool = False,
        rng: Any = None,
        **kwargs: Any,
    ) -> tuple[Any, dict]:
        """Pure call: runs the layer on ``inputs`` and returns ``(outputs, new_state)``."""
        return self._pure(args, kwargs).apply(
            params, state, inputs, is_training=is_training, rng=rng
        )


def layer_register(
    log_shape: bool = False,
    use_scope: bool | None = True,
    *,
    positional: Sequence[str] | None = None,
    aliases: Mapping[str, Alias | str] | None = None,
    yields: bool = False,
) -> Callable[[Callable[..., Any]], Layer]:
    """Registers a layer, as tensorpack's ``layer_register`` does.

    Args:
        log_shape: log the input and output shapes once per layer name.
        use_scope: ``True``: called as ``f('name', x, ...)``, variables under ``name/``.
            ``None``: the name is optional (``BNReLU``). ``False``: called without a name
            (a name is accepted with a warning, as in tensorpack).
        positional: the arguments after the input that may be passed positionally
            (tensorpack's ``args_names``); by default all non-keyword-only ones.
        aliases: old argument names, ``{'out_channel': 'filters'}``.
        yields: another layer of the same name registered later replaces this one in the
            registry (by name, ``LinearWrap`` and ``argscope``) instead of raising: what
            ``tp.zoo``'s ``DepthConv`` and ``GroupNorm`` do, since tensorpack's examples
            define their own. The object itself keeps working.

    Returns:
        A decorator turning ``f(inputs, ...)`` into a :class:`Layer`, registered under
        ``f.__name__`` for ``LinearWrap`` and ``argscope``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> @tp.layer_register(log_shape=True)
        ... def Scale(x, init=1.0):
        ...     s = tp.get_variable('s', (), jax.nn.initializers.constant(init))
        ...     return x * s
        >>> params, state = Scale.init(jax.random.key(0), jnp.ones((2, 3)), init=2.0)
        >>> params
        {'s': Array(2., dtype=float32)}
    """
    if log_shape and use_scope is not True:
        raise ValueError("layer_register: log_shape=True needs use_scope=True, as in tensorpack")

    def decorator(func: Callable[..., Any]) -> Layer:
        name = func.__name__
        if name in ("tf", "jnp", "jax", "lax"):
            raise ValueError(f"layer_register: a layer cannot be named {name!r}")
        previous = _REGISTRY.get(name)
        same = previous is not None and (previous.func.__module__, previous.func.__qualname__) == (
            func.__module__,
            func.__qualname__,
        )
        layer = Layer(
            func, log_shape=log_shape, use_scope=use_scope, positional=positional, aliases=aliases
        )
        if previous is not None and not same:
            if yields:  # another layer holds the name: it keeps it
                return layer
            if name not in _YIELDING:
                raise ValueError(
                    f"layer_register: a layer named {name!r} is already registered "
                    f"(from {previous.func.__module__}); choose another name"
                )
        _REGISTRY[name] = layer
        if yields:
            _YIELDING.add(name)
        else:
            _YIELDING.discard(name)
        return layer

    return decorator
