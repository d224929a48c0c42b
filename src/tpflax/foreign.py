"""Other JAX libraries' modules inside a tpflax model: ``tp.module('name', m)(x)``.

The seed tutorial promises that a tensorpack model may be built "using whatever library you
feel comfortable with", as long as three things are right: regularization, BatchNorm updates
that run automatically, and the training flag. ``tp.module`` does the three for a
``flax.linen`` module and a flax NNX module:

* its parameters go into ``params`` and its batch statistics into ``state``, under
  ``name/`` and the library's own path (``head/kernel``, ``blk/BatchNorm_0/mean``), so
  ``regularize_cost`` regexes see them and every checkpoint format saves and restores them;
* in training (``tp.is_training()``) its batch statistics are updated into ``new_state``;
* the training flag reaches it: a ``train``/``training``/``is_training`` argument of the
  module's ``__call__`` gets ``tp.is_training()`` and ``deterministic`` /
  ``use_running_average`` get its negation, unless the call passes them; an NNX module is
  switched with ``.train()`` / ``.eval()``;
* Dropout in a linen module draws from the model's rng (``rngs={'dropout': ...}``).

Values, gradients and statistics are the library's own ``apply`` on the same variables.
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
}


def module(name: str, m: Any) -> Callable[..., Any]:
    """A library module as a function of its inputs, its variables under ``name/``.

    Args:
        name: the variable scope (``'head'``: ``head/kernel`` for an ``nn.Dense``).
        m: a ``flax.linen.Module`` (its ``'params'`` and ``'batch_stats'`` collections) or a
            ``flax.nnx.Module`` (its ``nnx.Param`` and ``nnx.BatchStat`` variables).

    Returns:
        ``f(*args, **kwargs)``: calls the module inside the running model.

    Raises:
        TypeError: ``m`` is neither.

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
    if isinstance(m, nn.Module):
        return functools.partial(_call_linen, name, m)
    if isinstance(m, nnx.Module):
        return functools.partial(_call_nnx, name, m)
    raise TypeError(
        f"tp.module({name!r}): expected a flax.linen or flax.nnx module; got "
        f"{type(m).__name__} (equinox and haiku are not supported yet)"
    )


def _with_training_flag(fn: Callable[..., Any], kwargs: dict, training: bool) -> dict:
    """``kwargs`` with the training flag for every flag argument ``fn`` takes and the call
    does not pass."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    out = dict(kwargs)
    for flag, negated in _FLAGS.items():
        if flag in params and flag not in out:
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
    kwargs = _with_training_flag(m.__call__, kwargs, frame.is_training)
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
