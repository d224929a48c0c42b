"""TensorFlow 1.x's variable and name scopes on tpflax's frame: ``tf.variable_scope``,
``tf.get_variable``, ``tf.get_variable_scope``, ``tf.name_scope``, ``tf.identity``,
``tf.AUTO_REUSE``, and ``tf.assign`` / ``assign_add`` / ``assign_sub`` on non-trainable
variables.

The scopes are tpflax's own (``tp.variable_scope``): a tensorpack layer inside
``tf.variable_scope('discrim')`` creates ``discrim/conv0/W`` as in tensorpack, and TensorFlow
names tensors as it does (``discrim_1/...`` for a scope opened again). A ``custom_getter`` is
a ``tp.Interceptor`` for the scope's duration, so it sees the variables of tensorpack's layers
too (tensorpack's ``remap_variables``, the FPN backbone's frozen affine).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tpflax._src import intercept
from tpflax._src.frame import Frame, assign_state, current_frame, maybe_frame
from tpflax._src.frame import get_variable as core_get_variable
from tpflax._src.tree import lookup
from tpflax.compat import _optimizer_scope
from tpflax.compat.tf._naming import name_of, named, remember
from tpflax.compat.tf._tensor import TensorShape

__all__ = [
    "AUTO_REUSE",
    "TensorSpec",
    "VariableScope",
    "assign",
    "assign_add",
    "assign_sub",
    "get_variable",
    "get_variable_scope",
    "identity",
    "name_scope",
    "placeholder",
    "placeholder_with_default",
    "variable_scope",
]

# tf.AUTO_REUSE: create a variable when it is missing, share it when it exists.
AUTO_REUSE = "auto"
_KEY = "tpflax.compat.tf"


@dataclasses.dataclass(frozen=True)
class VariableScope:
    """What ``tf.get_variable_scope()`` returns; pass it back to ``tf.variable_scope`` to
    re-enter the scope (its variables' prefix, absolute, and its original name scope).

    Attributes:
        name: the variable prefix, ``'discrim'`` (``''`` at the root).
        original_name_scope: the name scope it was first opened in, ``'discrim/'``.
        reuse: ``False``, ``True`` or ``tf.AUTO_REUSE``.
        initializer: the default initializer of ``tf.get_variable`` inside, or ``None``.
    """

    name: str
    original_name_scope: str
    reuse: bool | str = False
    initializer: Any = None


@dataclasses.dataclass
class _State:
    """tpflax.compat's per-call scope settings (``Frame.extensions``)."""

    scopes: list[VariableScope] = dataclasses.field(default_factory=list)
    own_regularizer: set[str] = dataclasses.field(default_factory=set)  # get_variable(regularizer=)
    # id(value tf.assign returned) -> (the variable's name, the value, kept alive)
    assigned: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)


def _state(frame: Frame) -> _State:
    state = frame.extensions.get(_KEY)
    if state is None:
        state = frame.extensions[_KEY] = _State()
    return state


def get_variable_scope() -> VariableScope:
    """``tf.get_variable_scope()``: the current variable scope."""
    frame = current_frame("tf.get_variable_scope()")
    scopes = _state(frame).scopes
    if scopes and scopes[-1].name == frame.scope_name:
        return dataclasses.replace(scopes[-1], reuse=frame.reuse[-1])
    name = frame.scope_name
    return VariableScope(name, f"{name}/" if name else "", frame.reuse[-1])


def _reuse_value(reuse: Any, who: str) -> bool | str:
    if reuse is None or isinstance(reuse, (bool, np.bool_)):
        return bool(reuse)
    if reuse == AUTO_REUSE:
        return AUTO_REUSE
    raise TypeError(f"{who}: reuse must be True, False, None or tf.AUTO_REUSE; got {reuse!r}")


@contextlib.contextmanager
def variable_scope(
    name_or_scope: str | VariableScope | None,
    default_name: str | None = None,
    values: Any = None,
    initializer: Any = None,
    regularizer: Any = None,
    caching_device: Any = None,
    partitioner: Any = None,
    custom_getter: Callable[..., Any] | None = None,
    reuse: Any = None,
    dtype: Any = None,
    use_resource: Any = None,
    constraint: Any = None,
    auxiliary_name_scope: bool = True,
) -> Iterator[VariableScope]:
    """``tf.variable_scope``: variables inside are named ``scope/...``.

    A string opens a scope inside the current one and a name scope (``name_1`` when the
    name was used before); a ``VariableScope`` (from ``tf.get_variable_scope()`` or ``as``)
    re-enters that scope by its absolute name, in a new name scope named after its last
    part, as TensorFlow does. ``reuse=True`` shares
    existing variables, ``tf.AUTO_REUSE`` creates missing ones and shares the others; reuse
    is inherited and cannot be switched off inside. ``initializer`` is the default of
    ``tf.get_variable`` inside; ``custom_getter(getter, name, *args, **kwargs)`` wraps every
    variable created or read inside, tensorpack layers' included. ``regularizer(v)`` is added
    to the regularization losses (``tf.losses.get_regularization_loss()``, tensorpack's
    ``regularize_cost_from_collection()``) for every variable created inside, trainable or
    not, tensorpack's and ``tf.layers``' included, once (not when reused), as TensorFlow
    does.

    Raises:
        NotImplementedError: ``partitioner``, ``caching_device``, ``constraint`` or ``dtype``
            is given (no tpflax counterpart yet).
    """
    who = "tf.variable_scope"
    for arg, value in (
        ("partitioner", partitioner),
        ("caching_device", caching_device),
        ("constraint", constraint),
        ("dtype", dtype),
    ):
        if value is not None:
            raise NotImplementedError(
                f"{who}: {arg}= is not supported by tpflax.compat; for a regularizer use "
                "tp.regularize_cost(regex, func) in the cost, as tensorpack's examples do"
            )
    del values, use_resource
    frame = current_frame(who)
    state = _state(frame)
    parent = get_variable_scope()
    reuse_value = _reuse_value(reuse, who)
    original = None
    if isinstance(name_or_scope, VariableScope):
        # TensorFlow opens a new name scope named after the scope's last part (measured:
        # re-entering 'outer' inside 'other' names tensors other/outer/..., at the root
        # outer_1/...); the scope keeps its original name scope.
        var_name, original = name_or_scope.name, name_or_scope.original_name_scope
        name_scope = var_name.split("/")[-1]
        initializer = initializer if initializer is not None else name_or_scope.initializer
    elif isinstance(name_or_scope, str) and name_or_scope:
        var_name = "/".join(p for p in (frame.scope_name, name_or_scope) if p)
        name_scope = name_or_scope
    elif name_or_scope is None and isinstance(default_name, str) and default_name:
        var_name = frame.full_name(frame.unique_variable_scope(default_name))
        name_scope = default_name
    else:
        raise TypeError(
            f"{who}: expected a non-empty scope name, a scope from tf.get_variable_scope(), or "
            f"None with default_name=; got {name_or_scope!r}"
        )
    inherited = frame.reuse[-1]
    new_reuse = inherited if inherited else reuse_value
    stack = contextlib.ExitStack()
    reentered = isinstance(name_or_scope, VariableScope)
    stack.enter_context(frame.opened_variable_scope(var_name, reentered=reentered))
    frame.reuse.append(new_reuse)
    try:
        opened = frame.name_scope[-1]
        if auxiliary_name_scope and name_scope:
            opened = stack.enter_context(frame.opened_name_scope(name_scope))
        if original is None:
            original = f"{opened}/" if opened else ""
        scope = VariableScope(
            var_name,
            original,
            new_reuse,
            initializer if initializer is not None else parent.initializer,
        )
        if regularizer is not None:
            stack.enter_context(intercept.intercept(_regularizing(regularizer, who)))
        if custom_getter is not None:
            if not callable(custom_getter):
                raise TypeError(f"{who}: custom_getter must be callable; got {custom_getter!r}")
            stack.enter_context(intercept.intercept(_CustomGetter(custom_getter)))
        state.scopes.append(scope)
        try:
            yield scope
        finally:
            state.scopes.pop()
    finally:
        frame.reuse.pop()
        stack.close()


@dataclasses.dataclass(frozen=True)
class _CustomGetter(intercept.Interceptor):
    """A TensorFlow ``custom_getter(getter, name, *args, **kwargs)`` as an interceptor."""

    fn: Callable[..., Any]

    def variable(
        self,
        request: intercept.VariableRequest,
        next: Callable[[intercept.VariableRequest], Any],
    ) -> Any:
        def getter(name: str, *args: Any, **kwargs: Any) -> Any:
            if args:
                kwargs.setdefault("shape", args[0])
            changes = {
                key: kwargs[key]
                for key in ("shape", "dtype", "initializer", "trainable")
                if key in kwargs and kwargs[key] is not None
            }
            if "shape" in changes:
                changes["shape"] = tuple(int(d) for d in changes["shape"])
            value = next(request.replace(name=name, **changes))
            return remember(value, name)

        return self.fn(
            getter,
            request.name,
            shape=request.shape,
            dtype=request.dtype,
            initializer=request.initializer,
            trainable=request.trainable,
        )


@dataclasses.dataclass(frozen=True)
class _Regularizer(intercept.Interceptor):
    """A scope's regularizer: adds ``fn(v)`` to the model's regularization losses for each
    variable created (not reused) while it is active, but for those given their own
    (``tf.get_variable(regularizer=)`` replaces the scope's, as in TensorFlow)."""

    fn: Callable[[Any], Any]

    def variable(
        self,
        request: intercept.VariableRequest,
        next: Callable[[intercept.VariableRequest], Any],
    ) -> Any:
        frame = current_frame(request.who)
        new = request.name not in frame.created
        value = next(request)
        if new and request.name not in _state(frame).own_regularizer:
            frame.reg_losses.append(self.fn(value))
        return value


def _regularizing(fn: Any, who: str) -> _Regularizer:
    _check_regularizer(fn, who)
    return _Regularizer(fn)


def _check_regularizer(fn: Any, who: str) -> None:
    if not callable(fn):
        raise TypeError(f"{who}: regularizer must be a function of a variable; got {fn!r}")


def _glorot_uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """TensorFlow's default for ``tf.get_variable``: ``U(-l, l)``, ``l = sqrt(6 / (fan_in +
    fan_out))``, the fans of the last two axes times the receptive field."""
    init = jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
    if len(shape) < 2:  # TF uses fan_in = fan_out = the size (1 for a scalar)
        size = int(np.prod(shape)) if shape else 1
        limit = np.sqrt(3.0 / size)
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    return init(key, shape, dtype)


def _as_initializer(value: Any, who: str) -> tuple[Callable[..., Any], tuple[int, ...] | None]:
    """An initializer callable, and the shape a value initializer fixes (``None`` else)."""
    if callable(value):
        return value, None
    array = np.asarray(value)
    return (lambda key, shape, dtype: jnp.asarray(array, dtype).reshape(shape)), array.shape


def get_variable(
    name: str,
    shape: Any = None,
    dtype: Any = None,
    initializer: Any = None,
    regularizer: Any = None,
    trainable: bool | None = None,
    collections: Any = None,
    caching_device: Any = None,
    partitioner: Any = None,
    validate_shape: bool = True,
    use_resource: Any = None,
    custom_getter: Any = None,
    constraint: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """``tf.get_variable``: creates (``init``) or reads (``apply``) ``scope/name``.

    ``initializer`` is a JAX/TF initializer ``(key, shape, dtype)`` or a value (then
    ``shape`` comes from it); without one, the scope's, else TensorFlow's default: glorot
    uniform for floats, zeros for integers and booleans. ``regularizer(v)`` joins the
    regularization losses when the variable is created (see ``tf.variable_scope``).
    ``trainable=False`` puts it in ``state`` (``tf.assign`` writes its new value there).
    ``dtype`` defaults to float32. In a ``ModelDesc.optimizer()`` (outside any model),
    ``tf.get_variable('learning_rate', initializer=1e-2, trainable=False)`` is a
    hyperparameter: a schedule the TF optimizers evaluate at each step
    (``tpflax.compat.tensorpack.ModelDesc.build_optimizer``).

    Returns:
        The variable's value (an array: ``tf.assign(v, ...)`` works on it, ``v.assign`` does
        not).

    Raises:
        ValueError: no shape and no value initializer; a value initializer with a different
            ``shape``.
        NotImplementedError: ``partitioner``, ``custom_getter``, ``constraint`` or
            ``collections``.
    """
    who = f"tf.get_variable({name!r})"
    for arg, value in (
        ("partitioner", partitioner),
        ("custom_getter", custom_getter),
        ("constraint", constraint),
        ("collections", collections),
    ):
        if value is not None:
            raise NotImplementedError(
                f"{who}: {arg}= is not supported by tpflax.compat (use tf.variable_scope("
                "custom_getter=...) for a getter, tp.regularize_cost for a regularizer)"
            )
    del caching_device, validate_shape, use_resource, kwargs
    in_optimizer = _optimizer_scope.active()
    if maybe_frame() is None and in_optimizer is not None:  # a ModelDesc.optimizer()
        return in_optimizer.hyperparam(name, initializer, trainable is not False, who)  # type: ignore[return-value]
    frame = current_frame(who)
    dtype = jnp.dtype(jnp.float32 if dtype is None else getattr(dtype, "as_numpy_dtype", dtype))
    if initializer is None:
        initializer = get_variable_scope().initializer
    if initializer is None:
        floating = jnp.issubdtype(dtype, jnp.floating)
        initializer = _glorot_uniform if floating else jax.nn.initializers.zeros
    init, fixed = _as_initializer(initializer, who)
    if fixed is not None:
        if shape is not None and tuple(int(d) for d in shape) != fixed:
            raise ValueError(
                f"{who}: shape {list(shape)} differs from the initial value's {list(fixed)}"
            )
        shape = fixed
    if shape is None:
        shape = _existing_shape(frame, name)
    if shape is None:
        raise ValueError(f"{who}: needs shape= (or an initial value as initializer=)")
    shape = tuple(int(d) for d in shape)
    full = frame.full_name(name)
    new = full not in frame.created
    if regularizer is not None:
        _check_regularizer(regularizer, who)
        _state(frame).own_regularizer.add(full)
    value = core_get_variable(
        name, shape, init, dtype=dtype, trainable=trainable is not False, who=who
    )
    if regularizer is not None and new:
        frame.reg_losses.append(regularizer(value))
    return remember(value, full)


def _existing_shape(frame: Frame, name: str) -> tuple[int, ...] | None:
    """The shape of ``name`` when it exists already (``tf.get_variable('w')`` under reuse)."""
    full = frame.full_name(name)
    if full not in frame.created or not frame.reuse[-1]:
        return None
    value = lookup(frame.params if frame.created[full] else frame.state, full.split("/"))
    return tuple(value.shape) if hasattr(value, "shape") else None


@contextlib.contextmanager
def name_scope(
    name: str | None, default_name: str | None = None, values: Any = None
) -> Iterator[str]:
    """``tf.name_scope``: names the tensors inside (``capture=['scope/x']``), not the
    variables. A name ending in ``/`` re-enters that exact scope; ``None`` is the root.

    Yields:
        The scope's full name with a trailing ``/`` (``''`` at the root), as TensorFlow's.
    """
    del values
    frame = current_frame("tf.name_scope")
    if name is None and default_name is None:
        with frame.opened_name_scope("", exact=True):
            yield ""
        return
    name = name if name is not None else default_name
    if not isinstance(name, str) or not name.strip("/"):
        raise TypeError(f"tf.name_scope: name must be a non-empty string or None; got {name!r}")
    exact = name.endswith("/")
    with frame.opened_name_scope(name.rstrip("/"), exact=exact) as opened:
        yield f"{opened}/"


def identity(input: Any, name: str | None = None) -> Any:
    """``tf.identity``: a new tensor equal to ``input`` (under ``jit`` a copy XLA removes),
    capturable as ``name`` (``capture=['viz']``); ``input`` keeps its own name, as in
    TensorFlow (``g_loss = tf.identity(loss, name='g_loss')`` leaves ``loss`` named
    ``loss``)."""
    return named(jnp.array(input, copy=True), name)


def _state_variable(ref: Any, who: str) -> str:
    frame = current_frame(who)
    full = name_of(ref)
    if full is None or full not in frame.created:
        raise TypeError(
            f"{who}: ref must be a variable returned by tf.get_variable in this model; a "
            "computed tensor cannot be assigned"
        )
    if frame.created.get(full, False):
        raise ValueError(
            f"{who}: '{full}' is trainable; assigning it inside the model is not supported "
            "(create it with trainable=False: its new value goes to new_state)"
        )
    return full


def _assign(ref: Any, value: Any, who: str, name: str | None) -> jax.Array:
    full = _state_variable(ref, who)
    frame = current_frame(who)
    new = jnp.asarray(value, ref.dtype).reshape(ref.shape)
    scope, _, leaf = full.rpartition("/")
    with frame.absolute_scope(scope):
        assign_state(leaf, new, who=who)
    # TF's assignment ops have no gradient: nothing flows back into value through the result
    # (BEGAN's d_loss uses kt's update; its gradient to the generator only goes through L_neg)
    result = named(jax.lax.stop_gradient(new), name)
    _state(frame).assigned[id(result)] = (full, result)
    return result


def assigned_variable(value: Any) -> str | None:
    """The variable whose new value ``value`` is (what ``tf.assign`` returned), else
    ``None``."""
    frame = maybe_frame()
    if frame is None:
        return None
    entry = _state(frame).assigned.get(id(value))
    return entry[0] if entry is not None and entry[1] is value else None


def assign(
    ref: Any,
    value: Any,
    validate_shape: Any = None,
    use_locking: Any = None,
    name: str | None = None,
) -> jax.Array:
    """``tf.assign`` on a non-trainable variable: its new value goes to ``new_state``;
    returns the new value, through which no gradient flows (TF's assignment ops have none;
    reads of ``ref`` in this call still see the old one, as TF's reads before the assignment
    do)."""
    del validate_shape, use_locking
    return _assign(ref, value, "tf.assign", name)


def assign_add(ref: Any, value: Any, use_locking: Any = None, name: str | None = None) -> jax.Array:
    """``tf.assign_add`` on a non-trainable variable (see ``tf.assign``)."""
    del use_locking
    return _assign(ref, ref + value, "tf.assign_add", name)


def assign_sub(ref: Any, value: Any, use_locking: Any = None, name: str | None = None) -> jax.Array:
    """``tf.assign_sub`` on a non-trainable variable (see ``tf.assign``)."""
    del use_locking
    return _assign(ref, ref - value, "tf.assign_sub", name)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """``tf.TensorSpec``: an input's shape (``None`` for the batch), dtype and name, as a
    tensorpack ``ModelDesc.inputs()`` returns them."""

    shape: tuple[int | None, ...]
    dtype: Any = jnp.float32
    name: str | None = None

    def __post_init__(self) -> None:
        shape = tuple(None if d is None else int(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(
            self, "dtype", jnp.dtype(getattr(self.dtype, "as_numpy_dtype", self.dtype))
        )


def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> TensorSpec:
    """``tf.placeholder`` in a ``ModelDesc.inputs()``: the input's spec (there is no graph to
    feed; ``tp.train`` passes the batch to ``build_graph``)."""
    if shape is None:
        raise ValueError(f"tf.placeholder({name!r}): give the shape (None for the batch axis)")
    return TensorSpec(tuple(shape), dtype, name)


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> jax.Array:
    """``tf.placeholder_with_default`` in model code: ``input`` itself (there is nothing to
    feed: pass another value as the model's input instead), checked against ``shape``
    (``None`` for any size) and capturable as ``name``.

    Raises:
        ValueError: ``input``'s shape is not compatible with ``shape``.
    """
    value = jnp.asarray(input)
    want = [None if d is None else int(d) for d in shape]
    if not TensorShape(value.shape).is_compatible_with(want):
        raise ValueError(
            f"tf.placeholder_with_default({name!r}): the default's shape {list(value.shape)} is "
            f"not compatible with shape {want}"
        )
    return named(value, name)
