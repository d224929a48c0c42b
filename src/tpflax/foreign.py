"""Other JAX libraries' modules inside a tpflax model: ``tp.module('name', m)(x)``.

The seed tutorial promises that a tensorpack model may be built "using whatever library you
feel comfortable with", as long as three things are right: regularization, BatchNorm updates
that run automatically, and the training flag. ``tp.module`` does the three for a
``flax.linen`` module, a flax NNX module, an equinox module (with its ``eqx.nn.State``) and a
haiku ``transform_with_state`` / ``transform`` pair:

* its parameters go into ``params`` and its batch statistics into ``state``, under
  ``name/`` and the library's own path (``head/kernel``, ``blk/BatchNorm_0/mean``,
  ``enc/layers/0/weight``, ``net/linear/w``), so ``regularize_cost`` regexes see them and
  every checkpoint format saves and restores them;
* in training (``tp.is_training()``) its batch statistics are updated into ``new_state``;
* the training flag reaches it: a ``train``/``training``/``is_training`` argument of the
  module's ``__call__`` (or of the haiku function) gets ``tp.is_training()`` and
  ``deterministic`` / ``use_running_average`` / ``inference`` get its negation, unless the
  call passes them; an NNX module is switched with ``.train()`` / ``.eval()``, an equinox
  one with ``eqx.nn.inference_mode``;
* its random numbers come from the model's rng: linen's ``'dropout'`` stream, equinox's
  ``key=`` (one key per example), haiku's ``rng``.

Values, gradients and statistics are the library's own ``apply`` on the same variables.
equinox and haiku are optional: they are imported only when such a module is passed.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from tpflax._src.frame import (
    Frame,
    assign_state,
    current_frame,
    get_variable,
    next_rng_key,
    param_key,
    variable_scope,
)

__all__ = ["module"]

_FLAGS = {
    "train": False,
    "training": False,
    "is_training": False,
    "deterministic": True,
    "use_running_average": True,
    "inference": True,
}


class _Unset:
    """``axis_name`` not given (its default depends on the library)."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def module(name: str, m: Any, state: Any = None, *, axis_name: Any = _UNSET) -> Callable[..., Any]:
    """A library module as a function of its inputs, its variables under ``name/``.

    Each library's module is called as that library calls it, with the variables coming from
    the model's ``params`` and ``state``:

    * ``flax.linen``: ``m.apply(variables, *args, **kwargs)``; ``'params'`` are the params,
      ``'batch_stats'`` the state (``head/kernel``, ``blk/BatchNorm_0/mean``).
    * flax NNX: ``m(*args, **kwargs)`` on a copy holding the model's ``nnx.Param`` and
      ``nnx.BatchStat`` values.
    * equinox: ``m(x, state=..., key=...)`` per example, under ``jax.vmap`` over the leading
      axis of every positional input with ``axis_name`` (what ``eqx.nn.BatchNorm(...,
      axis_name='batch')`` names); the inexact arrays of ``eqx.partition`` are the params
      (``enc/layers/0/weight``), the ``eqx.nn.State`` values the state, named by their
      ``StateIndex``'s path (``enc/layers/1/ema_state_index/0``). ``key`` is passed (split
      per example) when ``__call__`` takes one, in training; ``eqx.nn.inference_mode`` is
      set from ``tp.is_training()``.
    * haiku: ``apply(params, state, rng, *args, **kwargs)`` of ``hk.transform_with_state``
      (or ``hk.transform``, ``hk.without_apply_rng``); haiku's ``'module/~/sub'`` names
      become ``name/module/sub/param``. The training flag is the function's own argument,
      as in haiku code: ``def f(x, is_training)`` gets ``tp.is_training()`` unless the call
      passes it. ``rng`` is a key from the model's rng in training (``None`` otherwise).

    Args:
        name: the variable scope (``'head'``: ``head/kernel`` for an ``nn.Dense``).
        m: a ``flax.linen.Module``, a ``flax.nnx.Module``, an ``equinox.Module`` or a
            haiku ``Transformed`` / ``TransformedWithState``.
        state: equinox only: the ``eqx.nn.State`` of ``eqx.nn.make_with_state`` (its values
            are the initial state); ``None`` builds it from ``m`` (``eqx.nn.State(m)``).
        axis_name: equinox only: the ``jax.vmap`` axis name (default ``'batch'``), or
            ``None`` to call the module once on the whole inputs.

    Returns:
        ``f(*args, **kwargs)``: calls the module inside the running model.

    Raises:
        TypeError: ``m`` is none of these (equinox and haiku need their package installed:
            ``pip install equinox`` / ``pip install dm-haiku``), or ``state``/``axis_name``
            are given for a library that does not take them.

    Example:
        >>> import jax, jax.numpy as jnp, flax.linen as nn, tpflax as tp
        >>> def net(x):
        ...     h = tp.module('head', nn.Dense(2))(x)
        ...     return tp.FullyConnected('fc', h, 1)
        >>> params, state = tp.transform(net).init(jax.random.key(0), jnp.ones((1, 3)))
        >>> sorted(tp.checkpoint.flatten(params))
        ['fc/W', 'fc/b', 'head/bias', 'head/kernel']
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"tp.module: name must be a non-empty string; got {name!r}")
    from tpflax import _foreign_optional

    if _foreign_optional.is_equinox(m):
        return _foreign_optional.equinox_call(
            name, m, state, "batch" if axis_name is _UNSET else axis_name
        )
    for arg, value in (("state", state), ("axis_name", axis_name)):
        if value is not None and value is not _UNSET:
            raise TypeError(
                f"tp.module({name!r}): {arg}= is for equinox modules; got a {type(m).__name__}"
            )
    if _foreign_optional.is_haiku(m):
        return _foreign_optional.haiku_call(name, m)
    if isinstance(m, nn.Module):
        return functools.partial(_call_linen, name, m)
    if isinstance(m, nnx.Module):
        return functools.partial(_call_nnx, name, m)
    hint = ""
    if callable(m) and not isinstance(m, type):
        hint = (
            "; a haiku function must be transformed first (hk.transform_with_state(f)), "
            "a flax or equinox module class instantiated"
        )
    raise TypeError(
        f"tp.module({name!r}): expected a flax.linen or flax.nnx module, an equinox Module "
        "(pip install equinox) or a haiku hk.transform_with_state / hk.transform pair "
        f"(pip install dm-haiku); got {type(m).__name__}{hint}"
    )


def _with_training_flag(
    fn: Callable[..., Any],
    kwargs: dict,
    training: bool,
    skip: tuple[str, ...] = (),
    positional: int = 0,
) -> dict:
    """``kwargs`` with the training flag for every flag argument ``fn`` takes that the call
    does not pass, by keyword or among its first ``positional`` arguments (nor in
    ``skip``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    given = [n for n, p in params.items() if p.kind in kinds][:positional]
    out = dict(kwargs)
    for flag, negated in _FLAGS.items():
        if flag in params and flag not in out and flag not in skip and flag not in given:
            out[flag] = (not training) if negated else training
    return out


def _frame(name: str) -> Frame:
    frame = current_frame(f"tp.module({name!r})")
    if frame.backend is not None:
        raise NotImplementedError(
            f"tp.module({name!r}) inside tp.linen: call the flax module directly there"
        )
    return frame


def _variables(frame: Frame, flat: dict[str, Any], trainable: bool, who: str) -> dict:
    """``flat``'s leaves as model variables (created from their values in ``init``)."""
    out = {}
    for path, leaf in flat.items():
        init = functools.partial(_value_initializer, leaf)
        out[path] = get_variable(
            path, tuple(leaf.shape), init, dtype=leaf.dtype, trainable=trainable, who=who
        )
    return out


def _value_initializer(value: Any, key: jax.Array, shape: tuple[int, ...], dtype: Any) -> Any:
    """An initializer that gives the library's own initial value."""
    del key, shape
    return jnp.asarray(value, dtype)


def _call_linen(name: str, m: nn.Module, *args: Any, **kwargs: Any) -> Any:
    who = f"tp.module({name!r})"
    frame = _frame(name)
    kwargs = _with_training_flag(m.__call__, kwargs, frame.is_training, positional=len(args))
    with variable_scope(name):
        if frame.mode == "init":
            assert frame.rng is not None
            key = param_key(frame.rng, frame.scope_name)
            init_rngs = {"params": key, "dropout": jax.random.fold_in(key, 1)}
            variables = m.init(init_rngs, *args, **kwargs)
        else:  # only the structure: the values come from params and state
            variables = jax.eval_shape(lambda: m.init(jax.random.key(0), *args, **kwargs))
        unknown = sorted(set(variables) - {"params", "batch_stats"})
        if unknown:
            raise NotImplementedError(
                f"{who}: the module has variable collections {unknown}; tp.module keeps "
                "'params' and 'batch_stats'"
            )
        values = {}
        for collection in variables:
            flat = {"/".join(k): v for k, v in flatten_dict(variables[collection]).items()}
            got = _variables(frame, flat, collection == "params", who)
            values[collection] = unflatten_dict({tuple(k.split("/")): v for k, v in got.items()})
        rngs = {}
        if frame.is_training and frame.rng is not None:
            rngs["dropout"] = next_rng_key(who)
        if frame.is_training and "batch_stats" in values:
            out, updates = m.apply(values, *args, rngs=rngs, mutable=["batch_stats"], **kwargs)
            for path, value in flatten_dict(updates["batch_stats"]).items():
                assign_state("/".join(path), value, who=who)
            return out
        return m.apply(values, *args, rngs=rngs, **kwargs)


def _call_nnx(name: str, m: nnx.Module, *args: Any, **kwargs: Any) -> Any:
    who = f"tp.module({name!r})"
    frame = _frame(name)
    graphdef, *states = nnx.split(m, nnx.Param, nnx.BatchStat, ...)
    params, stats, rest = states
    with variable_scope(name):
        merged_states = []
        for state, trainable in ((params, True), (stats, False)):
            flat = {"/".join(str(p) for p in path): var for path, var in nnx.to_flat_state(state)}
            got = _variables(frame, {k: v.get_value() for k, v in flat.items()}, trainable, who)
            merged_states.append(
                nnx.from_flat_state(
                    [
                        (path, type(var)(got["/".join(str(p) for p in path)]))
                        for path, var in nnx.to_flat_state(state)
                    ]
                )
            )
        copy = nnx.merge(graphdef, *merged_states, rest)
        if frame.is_training:
            copy.train()
        else:
            copy.eval()
        out = copy(*args, **kwargs)
        if frame.is_training:
            for path, var in nnx.to_flat_state(nnx.state(copy, nnx.BatchStat)):
                assign_state("/".join(str(p) for p in path), var.get_value(), who=who)
        return out
