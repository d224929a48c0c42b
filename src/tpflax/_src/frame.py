"""The frame: what a transformed function's layers read while it runs.

A :class:`Frame` carries the params and state being read or built, the new state being
written, the rng, the ``is_training`` flag and the variable-scope stack. It lives in a
:class:`contextvars.ContextVar`, so threads and asyncio tasks each see their own, and a pure
layer call inside a model gets a fresh frame of its own. Nothing here is a module global.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import logging
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from tpflax._src import intercept
from tpflax._src.shape_log import ShapeLogger
from tpflax._src.tree import lookup as _lookup
from tpflax._src.tree import store as _store
from tpflax._src.types import Initializer

log = logging.getLogger("tpflax")

Tree = dict[str, Any]


class VariableBackend(Protocol):
    """Variable storage outside tpflax's own trees (``tp.linen`` keeps them in a flax
    module's collections)."""

    def get(
        self, name: str, shape: tuple[int, ...], init: Initializer, dtype: Any, trainable: bool
    ) -> Any: ...

    def assign(self, name: str, value: Any) -> None: ...

    def assign_sub(self, name: str, delta: Any) -> Any: ...


@dataclasses.dataclass
class Frame:
    """Everything a running model's layers share; one per ``init``/``apply`` call."""

    mode: str  # 'init', 'apply', or 'linen' (variables in a flax module: see backend)
    params: Tree
    state: Tree
    new_state: Tree
    is_training: bool
    rng: jax.Array | None
    shape_logger: ShapeLogger
    scope: list[str] = dataclasses.field(default_factory=list)
    # per scope: False, True (share only), or AUTO_REUSE (create when missing, else share)
    reuse: list[bool | str] = dataclasses.field(default_factory=lambda: [False])
    created: dict[str, bool] = dataclasses.field(default_factory=dict)  # name -> trainable
    # full layer name -> the Layer that opened it (a reused layer may open it again)
    layer_names: dict[str, Any] = dataclasses.field(default_factory=dict)
    # TensorFlow's name scopes, which name outputs (``discrim/fct_1/output``) but not
    # variables: the stack of full name-scope names, and how often each name was taken.
    name_scope: list[str] = dataclasses.field(default_factory=lambda: [""])
    names_in_use: dict[str, int] = dataclasses.field(default_factory=dict)
    # TensorFlow's count of variable-scope openings per full scope name (its
    # _VariableScopeStore), which default names and tf.layers' unique scopes read.
    scope_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    used: set[str] = dataclasses.field(default_factory=set)
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    reg_losses: list[Any] = dataclasses.field(default_factory=list)
    rng_count: int = 0
    # State variables an EMA update has already written in this call (a reused BatchNorm).
    updated: set[str] = dataclasses.field(default_factory=set)
    # (decorated function, scope) pairs already run once (auto_reuse_variable_scope)
    auto_reused: set[tuple[int, str]] = dataclasses.field(default_factory=set)
    # Where variables live when not in params/state: a flax.linen module (tp.linen).
    backend: VariableBackend | None = None
    # Per-call state of extensions above the core (tpflax.compat's scope settings), by key.
    extensions: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def scope_name(self) -> str:
        return "/".join(self.scope)

    def full_name(self, name: str) -> str:
        return "/".join([*self.scope, name])

    def unique_name(self, name: str) -> str:
        """TensorFlow's ``Graph.unique_name``: ``name`` under the current name scope, with
        ``_1``, ``_2``, ... appended when it was taken before (compared without case), and
        marked as taken."""
        base = "/".join(p for p in (self.name_scope[-1], name) if p)
        key = base.lower()
        count = self.names_in_use.get(key, 0)
        self.names_in_use[key] = count + 1
        if count == 0:
            return base
        candidate = f"{key}_{count}"
        while candidate in self.names_in_use:
            count += 1
            candidate = f"{key}_{count}"
        self.names_in_use[candidate] = 1
        return f"{base}_{count}"

    @contextlib.contextmanager
    def absolute_scope(self, name: str) -> Iterator[None]:
        """Makes ``name`` (``'EMA'``, ``'a/b'``; ``''`` is the root) the variable scope inside
        the block, whatever scope is open, and restores it after."""
        saved = list(self.scope)
        self.scope[:] = name.split("/") if name else []
        try:
            yield
        finally:
            self.scope[:] = saved

    @contextlib.contextmanager
    def opened_variable_scope(self, full: str, *, reentered: bool = False) -> Iterator[None]:
        """``full`` as the variable scope inside the block, counted as TensorFlow counts a
        ``tf.variable_scope`` (or a layer's scope) being opened. On exit, the scopes opened
        inside start counting afresh (so a discriminator of unnamed ``tf.layers`` called
        again with ``reuse=True`` finds its ``dense``, not ``dense_1``); a scope object
        re-entered (``reentered=True``) instead restores every count it found on entry."""
        self.scope_counts[full] = self.scope_counts.get(full, 0) + 1
        saved = dict(self.scope_counts) if reentered else None
        try:
            with self.absolute_scope(full):
                yield
        finally:
            if saved is not None:
                self.scope_counts = saved
            else:
                prefix = f"{full}/"
                for key in self.scope_counts:
                    if key.startswith(prefix):
                        self.scope_counts[key] = 0

    def unique_variable_scope(self, prefix: str) -> str:
        """TensorFlow's ``_get_unique_variable_scope``: ``prefix``, else the first of
        ``prefix_1``, ``prefix_2``, ... not opened in the current variable scope."""
        base = self.full_name(prefix)
        if not self.scope_counts.get(base):
            return prefix
        index = 1
        while self.scope_counts.get(f"{base}_{index}"):
            index += 1
        return f"{prefix}_{index}"

    @contextlib.contextmanager
    def opened_name_scope(self, name: str, *, exact: bool = False) -> Iterator[str]:
        """Opens the name scope ``unique_name(name)`` (what ``tf.variable_scope(name)`` and a
        layer's scope do besides naming variables) and yields it; ``exact=True`` re-enters
        the full name ``name`` as it is (``''`` is the root), as TensorFlow does for a name
        scope ending in ``/``."""
        self.name_scope.append(name if exact else self.unique_name(name))
        try:
            yield self.name_scope[-1]
        finally:
            self.name_scope.pop()


_FRAME: contextvars.ContextVar[Frame | None] = contextvars.ContextVar("tpflax_frame", default=None)
# frozen_variables collects the names freeze_variables stops gradients of while it traces
_FROZEN_LOG: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "tpflax_frozen_log", default=None
)


class VariableShapeError(ValueError):
    """A variable in ``params``/``state`` has another shape than the layer needs for its
    input (``tp.transform``'s ``apply`` says when the input differs from ``init``'s).

    Attributes:
        who: the layer, e.g. ``"Conv2D 'conv0'"``.
        detail: what differs, e.g. ``"variable 'conv0/W' in params has shape ..."``.
    """

    def __init__(self, who: str, detail: str, hint: str) -> None:
        super().__init__(f"{who}: {detail}; {hint}")
        self.who, self.detail = who, detail


def current_frame(who: str | None = None) -> Frame:
    """Returns the running frame, or raises naming ``who`` when called outside a model."""
    frame = _FRAME.get()
    if frame is None:
        what = who or "This call"
        raise RuntimeError(
            f"{what} must run inside a function transformed by tp.transform (or in a flax module "
            "under `with tp.linen.layers(self):`); "
            "outside one, use the pure form, e.g. tp.Conv2D.init(rng, x, ...) and "
            "tp.Conv2D.apply(params, state, x, ...)"
        )
    return frame


def maybe_frame() -> Frame | None:
    return _FRAME.get()


@contextlib.contextmanager
def use_frame(frame: Frame) -> Iterator[Frame]:
    token = _FRAME.set(frame)
    try:
        yield frame
    finally:
        _FRAME.reset(token)


def is_training() -> bool:
    """Tensorpack's ``get_current_tower_context().is_training`` for the running model."""
    return current_frame("tp.is_training()").is_training


@contextlib.contextmanager
def variable_scope(name: str, reuse: bool | None = None) -> Iterator[str]:
    """Opens a nested variable scope, as ``tf.variable_scope`` does in tensorpack models.

    Args:
        name: the scope's name; variables and layers inside are named ``name/...``.
        reuse: ``True`` shares the variables already created under this scope (tensorpack's
            ``reuse=True``); it is inherited by inner scopes and cannot be switched off inside.

    As in TensorFlow, the scope also opens a name scope, which names the layer outputs that
    ``capture=`` returns: a scope opened a second time (``reuse=True``) names them
    ``name_1/...``, while the variables stay under ``name/``.

    Yields:
        The full scope name.

    Raises:
        TypeError: ``name`` is not a non-empty string without '/' at either end.
    """
    if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
        raise TypeError(f"tp.variable_scope: name must be a non-empty string; got {name!r}")
    frame = current_frame(f"tp.variable_scope({name!r})")
    frame.reuse.append(bool(reuse) or frame.reuse[-1])
    try:
        with frame.opened_variable_scope(frame.full_name(name)), frame.opened_name_scope(name):
            yield frame.scope_name
    finally:
        frame.reuse.pop()


@contextlib.contextmanager
def freeze_variables(stop_gradient: bool = True, skip_collection: bool = False) -> Iterator[None]:
    """Tensorpack's ``freeze_variables``: variables created or read inside are not trained.

    Args:
        stop_gradient: reads return ``lax.stop_gradient(value)`` (no gradient flows into
            them), and ``tp.train`` leaves them untouched (its optimizer is masked, so weight
            decay or momentum cannot move them either). The variables stay in ``params``,
            under their tensorpack names, so checkpoints load as usual.
        skip_collection: create them as non-trainable, in ``state`` instead of ``params``
            (tensorpack keeps them out of ``TRAINABLE_VARIABLES``): no optimizer ever sees
            them. Gradients still flow *through* them to earlier layers.

    Example (a frozen backbone, as in tensorpack's FasterRCNN):
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> def net(x):
        ...     with tp.freeze_variables(skip_collection=True):
        ...         x = tp.FullyConnected('backbone', x, 4)
        ...     return tp.FullyConnected('head', x, 2)
        >>> params, state = tp.transform(net).init(jax.random.key(0), jnp.ones((1, 3)))
        >>> sorted(params), sorted(state)
        (['head'], ['backbone'])
    """
    current_frame("tp.freeze_variables()")
    with intercept.intercept(_Freeze(bool(stop_gradient), bool(skip_collection))):
        yield


@dataclasses.dataclass(frozen=True)
class _Freeze(intercept.Interceptor):
    """``tp.freeze_variables`` as an interceptor, as tensorpack's is a custom getter: it sees
    the request as the layer (or an inner interceptor) made it, so nested blocks combine as
    nested TensorFlow custom getters do."""

    stop_gradient: bool
    skip_collection: bool

    def variable(
        self,
        request: intercept.VariableRequest,
        next: Callable[[intercept.VariableRequest], Any],
    ) -> Any:
        value = next(request.replace(trainable=False) if self.skip_collection else request)
        if self.stop_gradient and request.trainable:
            frozen = _FROZEN_LOG.get()
            if frozen is not None:
                frozen.add(request.name)
            value = jax.lax.stop_gradient(value)
        return value


def frozen_variables(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> set[str]:
    """The full names of the variables ``fn`` reads under ``freeze_variables(stop_gradient=
    True)``, found by running ``fn(*args, **kwargs)`` (a model's ``apply``) on abstract
    values: nothing is computed."""
    frozen: set[str] = set()

    def run(*a: Any) -> int:
        fn(*a, **kwargs)
        return 0  # only the names matter

    token = _FROZEN_LOG.set(frozen)
    try:
        jax.eval_shape(run, *args)
    finally:
        _FROZEN_LOG.reset(token)
    return frozen


def auto_reuse_variable_scope(func: Callable[..., Any]) -> Callable[..., Any]:
    """Tensorpack's ``auto_reuse_variable_scope``: the first call of ``func`` in a variable
    scope creates its variables, every later call in the same scope (in the same model
    call) shares them, as if the scope were reopened with ``reuse=True``.

    This is how tensorpack's GAN examples run one discriminator on real and on generated
    images. In training, a BatchNorm inside updates its EMA once per call; the updates add
    (see ``tp.BatchNorm``). As in TensorFlow, the calls share the name scope, so their layer
    outputs are named ``discrim/fct/output``, ``discrim/fct_1/output``, ... (``capture=``).

    Under ``tp.layer_register`` (FasterRCNN's ``rpn_head``, registered over
    ``auto_reuse_variable_scope`` and called as ``'rpn'`` on every FPN level), the layer's
    scope may be opened again by the same layer: its calls share ``rpn/*``, and their
    outputs are named ``rpn/...``, ``rpn_1/...``, as tensorpack's.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> @tp.auto_reuse_variable_scope
        ... def discriminator(x):
        ...     return tp.FullyConnected('fct', x, 1)
        >>> def model(real, fake):
        ...     with tp.variable_scope('discrim'):
        ...         return discriminator(real), discriminator(fake)
        >>> x = jnp.ones((2, 3))
        >>> params, _ = tp.transform(model).init(jax.random.key(0), x, x)
        >>> sorted(params['discrim']['fct'])
        ['W', 'b']
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = current_frame(f"auto_reuse_variable_scope({func.__qualname__})")
        key = (id(wrapper), frame.scope_name)
        if key not in frame.auto_reused:
            frame.auto_reused.add(key)
            return func(*args, **kwargs)
        frame.reuse.append(True)
        try:
            return func(*args, **kwargs)
        finally:
            frame.reuse.pop()

    wrapper.__tpflax_auto_reuse__ = True  # type: ignore[attr-defined]
    return wrapper


def param_key(rng: jax.Array, full_name: str) -> jax.Array:
    """A key for one variable, derived from its name so init order does not matter."""
    return jax.random.fold_in(rng, zlib.crc32(full_name.encode()) & 0x7FFFFFFF)


def get_variable(
    name: str,
    shape: tuple[int, ...],
    initializer: Initializer,
    *,
    dtype: Any = jnp.float32,
    trainable: bool = True,
    who: str = "get_variable",
) -> jax.Array:
    """Creates (in ``init``) or reads (in ``apply``) a variable under the current scope.

    Mirrors ``tf.get_variable``: a name created twice in one call without ``reuse=True`` is an
    error, and so is reusing a name that was never created. Trainable variables live in
    ``params``, the others (``mean/EMA``) in ``state``.

    Args:
        name: tensorpack's variable name relative to the scope, e.g. ``'W'`` or ``'mean/EMA'``.
        shape: the variable's shape.
        initializer: a JAX initializer ``(key, shape, dtype) -> array``.
        dtype: the variable's dtype.
        trainable: ``False`` puts it in ``state``.
        who: the calling layer, for error messages.

    Returns:
        The variable's value.
    """
    frame = current_frame(who)
    request = intercept.VariableRequest(
        frame.full_name(name), tuple(shape), initializer, dtype, trainable, who
    )
    return intercept.get_variable(request, functools.partial(_get_variable, frame))


def _get_variable(frame: Frame, request: intercept.VariableRequest) -> jax.Array:
    """The variable store: creates ``request`` in ``init``, reads it in ``apply``."""
    full, shape, initializer = request.name, request.shape, request.initializer
    dtype, trainable, who = request.dtype, request.trainable, request.who
    path = full.split("/")
    tree = frame.params if trainable else frame.state
    kind = "params" if trainable else "state"
    reuse = frame.reuse[-1]
    if full in frame.created:
        if not reuse:
            raise ValueError(
                f"{who}: variable '{full}' already exists; to share it, open the scope with "
                "tp.variable_scope(..., reuse=True), as in tensorpack"
            )
        # shared as it was created (TensorFlow returns the existing variable, trainable or not)
        return _lookup(frame.params if frame.created[full] else frame.state, path)
    if reuse is True:
        raise ValueError(
            f"{who}: variable '{full}' does not exist, but the scope has reuse=True; "
            "create it once before sharing it"
        )
    frame.created[full] = trainable
    shape = tuple(int(s) for s in shape)
    # A float64 input without jax_enable_x64 computes in float32 (NumPy's uint8 / 16.0 is
    # float64): its variables are float32 too, without JAX's truncation warning.
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if frame.backend is not None:
        frame.used.add(full)
        value = frame.backend.get(full, shape, initializer, dtype, trainable)
        _store(tree, path, value)  # visible to regularize_cost like any model's variables
        return value
    if frame.mode == "init":
        assert frame.rng is not None  # init always has an rng
        value = initializer(param_key(frame.rng, full), shape, dtype)
        _store(tree, path, value)
        return value
    value = _lookup(tree, path)
    if value is None or isinstance(value, dict):
        raise ValueError(
            f"{who}: {kind} has no variable '{full}' (expected shape {list(shape)}); "
            f"were these {kind} made by init of this same model?"
        )
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(
            f"{who}: variable '{full}' in {kind} must be an array of shape {list(shape)}; got "
            f"{type(value).__name__} {value!r:.40}"
        )
    if tuple(value.shape) != shape:
        raise VariableShapeError(
            who,
            f"variable '{full}' in {kind} has shape {list(value.shape)}, but the layer needs "
            f"{list(shape)}",
            f"were these {kind} made by init of this same model, on inputs of this shape and "
            "layout?",
        )
    frame.used.add(full)
    return value


def assign_state(name: str, value: Any, *, who: str = "assign_state") -> None:
    """Writes the new value of a state variable (an EMA update) under the current scope."""
    frame = current_frame(who)
    if frame.backend is not None:
        frame.backend.assign(frame.full_name(name), value)
        return
    _store(frame.new_state, frame.full_name(name).split("/"), value)


def assign_sub_state(name: str, start: Any, delta: Any, *, who: str = "assign_sub_state") -> Any:
    """TensorFlow's ``assign_sub`` on a state variable: writes ``value - delta``.

    ``value`` is ``start`` (the variable as the call began) the first time; when a reused
    layer updates the same variable again in one call, it is the value written last, so the
    updates add: ``start - delta_1 - delta_2 ...``, each delta computed from ``start``. That
    is what tensorpack's ``UPDATE_OPS`` usually compute for a layer reused in one step (every
    update reads the variable before any writes it); TensorFlow does not order them, so
    tensorpack sometimes applies them one after another instead.

    Returns:
        The value written.
    """
    frame = current_frame(who)
    full = frame.full_name(name)
    if frame.backend is not None:
        return frame.backend.assign_sub(full, delta)
    path = full.split("/")
    base = _lookup(frame.new_state, path) if full in frame.updated else start
    value = base - delta
    frame.updated.add(full)
    _store(frame.new_state, path, value)
    return value


def next_rng_key(who: str) -> jax.Array:
    """A fresh key for a random op (Dropout), split from the rng passed to ``apply``.

    Raises:
        ValueError: no rng was passed.
    """
    frame = current_frame(who)
    if frame.rng is None:
        raise ValueError(
            f"{who}: needs a random key in training; pass rng= to apply "
            "(e.g. model.apply(params, state, x, is_training=True, rng=jax.random.key(0)))"
        )
    frame.rng_count += 1
    return jax.random.fold_in(frame.rng, frame.rng_count)
