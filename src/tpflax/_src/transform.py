"""``tp.transform``: turns tensorpack-style model code into a pair of pure functions."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np

from tpflax._src.frame import Frame, VariableShapeError, use_frame
from tpflax._src.shape_log import ShapeLogger
from tpflax._src.tree import flatten

log = logging.getLogger("tpflax")


def check_training_flag(value: Any, who: str, arg: str = "is_training") -> bool:
    """``value`` as a Python bool: ``bool`` or ``numpy.bool_`` (tensorpack takes
    ``bool(training)`` too); anything else, a traced value above all, raises."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    kind = type(value)
    raise TypeError(
        f"{who}: {arg} must be a Python bool; got {kind.__module__}.{kind.__qualname__}."
        f" Under jax.jit mark it static: jax.jit(model.apply, static_argnames='{arg}')"
    )


def _shapes(inputs: tuple[Any, ...]) -> list[str]:
    return [
        f"{list(x.shape)} {x.dtype}" if hasattr(x, "shape") else type(x).__name__ for x in inputs
    ]


def _per_example(shapes: list[str]) -> list[str]:
    """The shapes without the batch size, which no variable depends on."""
    return [s.split(",", 1)[-1] for s in shapes]


def _check_key(rng: Any, who: str, arg: str) -> jax.Array:
    ok = isinstance(rng, jax.Array) and (
        jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key)
        or (rng.dtype == "uint32" and rng.shape == (2,))
    )
    if not ok:
        raise TypeError(
            f"{who}: {arg} must be a JAX random key (jax.random.key(0) or PRNGKey(0)); "
            f"got {type(rng).__name__}"
        )
    return rng


def _copy_tree(tree: Any, who: str, arg: str) -> dict:
    if not isinstance(tree, Mapping):
        raise TypeError(
            f"{who}: {arg} must be a nested dict of tensorpack variable names, as returned by "
            f"init; got {type(tree).__name__}"
        )
    return {k: _copy_tree(v, who, arg) if isinstance(v, Mapping) else v for k, v in tree.items()}


@dataclasses.dataclass(frozen=True)
class Transformed:
    """A model as two pure functions: ``init`` and ``apply``.

    Both run the model function once under a fresh frame; ``apply`` can be wrapped in
    ``jax.jit`` with ``static_argnames='is_training'``. ``init`` compiles itself: one program
    of the initializers (the forward pass only gives them their shapes), traced once per
    model, mode, argument shapes and non-array arguments, as ``jax.jit`` would.
    """

    fn: Callable[..., Any]
    shape_logger: ShapeLogger = dataclasses.field(default_factory=ShapeLogger, compare=False)
    # The input shapes the last init saw ("shapes"), to tell a wrong input from wrong params
    # in apply; "needs_graph" once the model asked apply for a traced graph (NeedsGraph).
    _init_inputs: dict[str, Any] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def init(self, rng: Any, *inputs: Any, is_training: bool = False, **kwargs: Any) -> tuple:
        """Builds the model on example ``inputs`` and returns ``(params, state)``.

        Args:
            rng: a JAX random key for the initializers (and Dropout, when training).
            *inputs: example inputs; only their shapes and dtypes matter.
            is_training: the mode to build in (tensorpack's ``TowerContext(is_training=)``).
            **kwargs: passed to the model function.

        Returns:
            ``(params, state)``: nested dicts keyed by tensorpack's variable names; trainable
            variables in ``params``, EMA statistics and other non-trainable ones in ``state``.
        """
        who = f"{self._name()}.init"
        training = check_training_flag(is_training, who)
        rng = _check_key(rng, who, "rng")
        arrays, rest = _split((inputs, kwargs))
        spec = _InitSpec(self, training, rest)
        try:
            hash(spec)
        except TypeError:  # an unhashable argument: compiled for this call only
            params, state = jax.jit(functools.partial(_build, spec=spec))(rng, arrays)
        else:
            params, state = _build_cached(rng, arrays, spec=spec)
        self._init_inputs["shapes"] = _shapes(inputs)
        return params, state

    def apply(
        self,
        params: Mapping[str, Any],
        state: Mapping[str, Any],
        *inputs: Any,
        is_training: bool = False,
        rng: Any = None,
        capture: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> tuple:
        """Runs the model and returns ``(outputs, new_state)``.

        Args:
            params: from ``init`` (or ``tp.checkpoint.restore``).
            state: from ``init`` or a previous ``apply``.
            *inputs: the model's inputs.
            is_training: tensorpack's ``TowerContext(is_training=)``: BatchNorm uses batch
                statistics and updates its EMA, Dropout drops.
            rng: a JAX random key; needed when a random layer (Dropout) runs in training.
            capture: layer outputs to return as well, by tensorpack's tensor names
                (``'conv1/output'``; a layer called again is ``'conv1_1/output'``, as in
                TensorFlow). A name ending in ``*`` takes every name it starts
                (``'discrim/*'``; ``'summary:*'`` for every summary, see ``tpflax.compat``).
            **kwargs: passed to the model function.

        Returns:
            ``(outputs, new_state)``, or ``(outputs, new_state, captured)`` with ``capture``.
            ``new_state`` has the same structure as ``state``.
        """
        who = f"{self._name()}.apply"
        training = check_training_flag(is_training, who)
        key = None if rng is None else _check_key(rng, who, "rng")
        params, state = _copy_tree(params, who, "params"), _copy_tree(state, who, "state")
        frames: list[Frame] = []

        def run(params: dict, state: dict, rng: Any, inputs: tuple, kwargs: dict) -> tuple:
            frame = Frame(
                mode="apply",
                params=params,
                state=state,
                new_state=_copy_tree(state, who, "state"),
                is_training=training,
                rng=rng,
                shape_logger=self.shape_logger,
            )
            frames.append(frame)
            self.shape_logger.begin()
            try:
                with use_frame(frame):
                    outputs = self.fn(*inputs, **kwargs)
            except VariableShapeError as e:
                seen, now = self._init_inputs.get("shapes"), _shapes(inputs)
                if seen is None or _per_example(seen) == _per_example(now):
                    raise
                raise VariableShapeError(
                    e.who,
                    f"the input differs from the one init saw: init had {'; '.join(seen)}, "
                    f"apply got {'; '.join(now)}",
                    f"so {e.detail}. Is it another channel count, or NCHW instead of NHWC?",
                ) from None
            captured = None if capture is None else select_outputs(frame.outputs, capture, who)
            return outputs, frame.new_state, captured

        args = (params, state, key, inputs, kwargs)
        if self._init_inputs.get("needs_graph"):
            outputs, new_state, captured = _run_traced(run, args)
        else:
            try:
                outputs, new_state, captured = run(*args)
            except NeedsGraph:  # from now on this model runs traced, this call included
                self._init_inputs["needs_graph"] = True
                outputs, new_state, captured = _run_traced(run, args)
        unused = sorted(set(flatten(frames[-1].params)) - frames[-1].used)
        if unused:
            log.warning(
                "%s: %d variable(s) in params were not used by the model: %s",
                who,
                len(unused),
                ", ".join(unused[:10]) + (", ..." if len(unused) > 10 else ""),
            )
        if capture is None:
            return outputs, new_state
        return outputs, new_state, captured

    def _name(self) -> str:
        return getattr(self.fn, "__name__", "model")


class NeedsGraph(Exception):
    """Raised by model code that needs the traced graph (``tf.gradients``) when ``apply``
    runs it on values that are not graph tracers (eagerly, or under ``jax.grad`` or
    ``jax.vmap``): ``apply`` then runs the model again inside ``jax.jit``, where every value
    knows the equation that made it, and keeps doing so for that model."""


@dataclasses.dataclass(frozen=True)
class _Split:
    """A pytree without its arrays: its structure and the other leaves, by their position
    among the flattened leaves (hashable when those leaves are, a ``jax.jit`` static)."""

    treedef: Any
    fixed: tuple[tuple[int, Any], ...]

    def join(self, arrays: Iterable[Any]) -> Any:
        """The pytree with ``arrays`` put back in order."""
        leaves: list[Any] = list(arrays)
        for i, leaf in self.fixed:
            leaves.insert(i, leaf)
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _split(tree: Any) -> tuple[list[Any], _Split]:
    """``tree``'s array leaves (JAX, NumPy), in order, and the rest of it."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    mask = [isinstance(leaf, (jax.Array, np.ndarray, np.generic)) for leaf in leaves]
    arrays = [leaf for leaf, m in zip(leaves, mask, strict=True) if m]
    fixed = tuple((i, leaf) for i, (leaf, m) in enumerate(zip(leaves, mask, strict=True)) if not m)
    return arrays, _Split(treedef, fixed)


def _run_traced(fn: Callable[..., tuple], args: tuple) -> tuple:
    """``fn(*args)`` inside ``jax.jit`` (traced each call, as the model's Python runs each
    call): array leaves go in and come out as arguments and results, other leaves as they
    are."""
    arrays, rest = _split(args)
    result: dict[str, _Split] = {}

    def traced(arrays: list[Any]) -> list[Any]:
        out_arrays, result["rest"] = _split(fn(*rest.join(arrays)))
        return out_arrays

    out_arrays = jax.jit(traced)(arrays)  # traces fn, which sets result["rest"]
    return result["rest"].join(out_arrays)


@dataclasses.dataclass(frozen=True)
class _InitSpec:
    """What ``init`` compiles for, besides the shapes of its arrays: the model, the mode, and
    the ``(inputs, kwargs)`` pytree without its arrays."""

    model: Transformed
    is_training: bool
    rest: _Split


def _build(rng: jax.Array, arrays: list[jax.Array], *, spec: _InitSpec) -> tuple[dict, dict]:
    """Runs the model once in an init frame; ``arrays`` are the array arguments in order."""
    inputs, kwargs = spec.rest.join(arrays)
    model = spec.model
    frame = Frame(
        mode="init",
        params={},
        state={},
        new_state={},
        is_training=spec.is_training,
        rng=rng,
        shape_logger=model.shape_logger,
    )
    model.shape_logger.begin()
    with use_frame(frame):
        model.fn(*inputs, **kwargs)
    return frame.params, frame.state


# One compiled init per model, mode and argument shapes: the initializers run as one
# program, and the forward pass that only tells them their shapes is left out of it.
_build_cached = jax.jit(_build, static_argnames="spec")


def select_outputs(outputs: Mapping[str, Any], names: Iterable[str], who: str) -> dict:
    """``{name: outputs[name]}`` for ``capture=``; a name ending in ``*`` takes every name it
    starts (which may be none).

    Raises:
        ValueError: a name without ``*`` was not recorded.
    """
    if isinstance(names, str):
        raise TypeError(f"{who}: capture must be a list of names; got the string {names!r}")
    selected = {}
    for name in names:
        if name.endswith("*"):
            selected.update({k: v for k, v in outputs.items() if k.startswith(name[:-1])})
            continue
        if name not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            raise ValueError(f"{who}: capture={name!r} is no layer output; known: {known}")
        selected[name] = outputs[name]
    return selected


def transform(fn: Callable[..., Any], *, shape_logger: ShapeLogger | None = None) -> Transformed:
    """Turns a tensorpack-style model function into ``init`` / ``apply``.

    Args:
        fn: a function of input arrays that calls tpflax layers by name.
        shape_logger: internal; pure layer calls share one so they log once.

    Returns:
        A :class:`Transformed` with ``init(rng, *inputs, is_training=False)`` and
        ``apply(params, state, *inputs, is_training=False, rng=None)``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> def net(x):
        ...     return tp.FullyConnected('fc', x, 3)
        >>> model = tp.transform(net)
        >>> params, state = model.init(jax.random.key(0), jnp.ones((2, 4)))
        >>> jax.tree_util.tree_map(jnp.shape, params)
        {'fc': {'W': (4, 3), 'b': (3,)}}
    """
    if not callable(fn):
        raise TypeError(f"tp.transform: expected a function; got {type(fn).__name__}")
    return Transformed(fn, shape_logger or ShapeLogger())
