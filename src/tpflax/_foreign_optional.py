"""``tp.module`` for the optional libraries: an equinox module and a haiku transform.

Neither library is imported here at module level, nor by ``import tpflax``: an object can
only be an equinox or haiku one if its library was imported already, so the checks look in
``sys.modules`` and the calls import it then.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

import jax

from tpflax._src.frame import assign_state, next_rng_key, param_key, variable_scope
from tpflax.foreign import _FLAGS, _frame, _variables, _with_training_flag

__all__ = ["equinox_call", "haiku_call", "is_equinox", "is_haiku"]


def is_equinox(m: Any) -> bool:
    """Whether ``m`` is an ``equinox.Module`` (without importing equinox)."""
    eqx = sys.modules.get("equinox")
    return eqx is not None and isinstance(m, eqx.Module)


def is_haiku(m: Any) -> bool:
    """Whether ``m`` is a haiku ``Transformed`` or ``TransformedWithState``."""
    hk = sys.modules.get("haiku")
    return hk is not None and isinstance(m, (hk.Transformed, hk.TransformedWithState))


def _key_name(key: Any) -> str:
    """One pytree path entry as a name: an attribute, a list index or a dict key."""
    for attr in ("name", "idx", "key"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _path_name(path: Any) -> str:
    return "/".join(_key_name(k) for k in path)


# ------------------------------------------------------------------------------ equinox
def equinox_call(name: str, m: Any, state: Any, axis_name: Any) -> Callable[..., Any]:
    """``f(*args, **kwargs)`` calling the equinox module ``m`` (see ``tp.module``)."""
    import equinox as eqx

    who = f"tp.module({name!r})"
    is_index = functools.partial(_isinstance, eqx.nn.StateIndex)
    leaves = jax.tree_util.tree_flatten_with_path(m, is_leaf=is_index)[0]
    indices: dict[str, Any] = {}
    for path, leaf in leaves:
        if is_index(leaf) and leaf.marker not in {i.marker for i in indices.values()}:
            indices[_path_name(path)] = leaf
    if indices and state is None:
        try:
            state = eqx.nn.State(m)
        except ValueError as e:
            raise TypeError(
                f"{who}: the equinox module is stateful and its initial state was taken out "
                "by eqx.nn.make_with_state: pass it, tp.module(name, model, state)"
            ) from e
    if state is not None and not isinstance(state, eqx.nn.State):
        raise TypeError(f"{who}: state must be an eqx.nn.State; got {type(state).__name__}")
    if indices and "state" not in inspect.signature(m.__call__).parameters:
        raise TypeError(
            f"{who}: the equinox module holds state (eqx.nn.StateIndex) but its __call__ "
            "takes no 'state' argument"
        )
    if axis_name is not None and not isinstance(axis_name, str):
        raise TypeError(f"{who}: axis_name must be a string or None; got {axis_name!r}")
    return functools.partial(_call_equinox, name, m, state, indices, axis_name)


def _isinstance(cls: type, x: Any) -> bool:
    return isinstance(x, cls)


def _clone(state: Any) -> Any:
    """A fresh copy of an ``eqx.nn.State`` (``State.set`` invalidates the one it is called
    on)."""
    leaves, treedef = jax.tree_util.tree_flatten(state)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _state_values(state: Any, indices: dict[str, Any]) -> dict[str, Any]:
    """The state's arrays by name: ``<StateIndex path>/<path in its value>``."""
    flat = {}
    for index_name, index in indices.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(state.get(index))[0]:
            flat["/".join(p for p in (index_name, _path_name(path)) if p)] = leaf
    return flat


def _call_equinox(
    name: str,
    m: Any,
    state: Any,
    indices: dict[str, Any],
    axis_name: str | None,
    *args: Any,
    **kwargs: Any,
) -> Any:
    import equinox as eqx

    who = f"tp.module({name!r})"
    frame = _frame(name)
    training = frame.is_training
    is_index = functools.partial(_isinstance, eqx.nn.StateIndex)
    params, static = eqx.partition(m, eqx.is_inexact_array, is_leaf=is_index)
    param_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    with variable_scope(name):
        flat = {_path_name(path): leaf for path, leaf in param_leaves}
        if len(flat) != len(param_leaves):
            raise ValueError(f"{who}: two of the module's arrays have the same path name")
        got = _variables(frame, flat, True, who)
        module = eqx.combine(
            jax.tree_util.tree_unflatten(treedef, [got[_path_name(p)] for p, _ in param_leaves]),
            static,
            is_leaf=is_index,
        )
        module = eqx.nn.inference_mode(module, value=not training)
        # equinox's own flag is inference (set above; deterministic= is its deprecated alias)
        call_kwargs = _with_training_flag(
            module.__call__, kwargs, training, skip=("deterministic",), positional=len(args)
        )
        signature = inspect.signature(module.__call__).parameters
        stateful = bool(indices)
        new = None
        if stateful:
            values = _variables(frame, _state_values(state, indices), False, who)
            new = _clone(state)
            for index_name, index in indices.items():
                old = new.get(index)
                paths = jax.tree_util.tree_flatten_with_path(old)[0]
                names = ["/".join(q for q in (index_name, _path_name(p)) if q) for p, _ in paths]
                value = jax.tree_util.tree_unflatten(
                    jax.tree_util.tree_structure(old), [values[n] for n in names]
                )
                new = new.set(index, value)
        key = None
        if "key" in signature and "key" not in call_kwargs and training and frame.rng is not None:
            key = next_rng_key(who)

        def run(xs: tuple[Any, ...], k: Any, st: Any) -> Any:
            extra = dict(call_kwargs)
            if k is not None:
                extra["key"] = k
            if stateful:
                extra["state"] = st
            return module(*xs, **extra)

        if axis_name is None:
            out = run(args, key, new)
        else:
            if not args:
                raise TypeError(f"{who}: the equinox module is called per example: give inputs")
            batch = {int(jax.numpy.shape(a)[0]) for a in args}
            if len(batch) != 1:
                raise ValueError(
                    f"{who}: every positional input is split along its first axis (the "
                    f"batch); their sizes differ: {sorted(batch)}"
                )
            keys = None if key is None else jax.random.split(key, batch.pop())
            out = jax.vmap(
                run,
                in_axes=(0, None if keys is None else 0, None),
                out_axes=(0, None) if stateful else 0,
                axis_name=axis_name,
            )(args, keys, new)
        if not stateful:
            return out
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], eqx.nn.State)):
            raise TypeError(
                f"{who}: a stateful equinox module must return (output, state); got "
                f"{type(out).__name__}"
            )
        out, new_state = out
        if training:
            for var, value in _state_values(new_state, indices).items():
                assign_state(var, value, who=who)
        return out


# ------------------------------------------------------------------------------ haiku
def haiku_call(name: str, t: Any) -> Callable[..., Any]:
    """``f(*args, **kwargs)`` calling the haiku transform ``t`` (see ``tp.module``)."""
    import haiku as hk

    params = inspect.signature(t.apply).parameters
    return functools.partial(
        _call_haiku,
        name,
        t,
        isinstance(t, hk.TransformedWithState),
        "rng" in params,
    )


def _haiku_names(tree: Any, who: str) -> dict[str, tuple[str, str]]:
    """tpflax's name of each haiku variable: ``'mlp/~/linear_0'``, ``'w'`` ->
    ``'mlp/linear_0/w'``."""
    names: dict[str, tuple[str, str]] = {}
    for module_name, variables in tree.items():
        for var in variables:
            ours = "/".join(p for p in module_name.split("/") if p != "~") + "/" + var
            if ours in names:
                raise ValueError(
                    f"{who}: haiku's {module_name}/{var} and {'/'.join(names[ours])} would "
                    f"both be named {ours!r}"
                )
            names[ours] = (module_name, var)
    return names


def _haiku_tree(names: dict[str, tuple[str, str]], values: dict[str, Any]) -> dict:
    tree: dict[str, dict[str, Any]] = {}
    for ours, (module_name, var) in names.items():
        tree.setdefault(module_name, {})[var] = values[ours]
    return tree


def _in_training(
    apply: Callable[..., Any], n_lead: int, args: tuple, kwargs: dict
) -> tuple[tuple, dict]:
    """``args`` and ``kwargs`` with every training flag of ``apply`` set to training, passed
    or not: haiku code initializes in training (``hk.BatchNorm`` creates its moving averages
    only then), as ``tp.transform``'s init creates every variable whatever the flag."""
    try:
        bound = inspect.signature(apply).bind_partial(*([None] * n_lead), *args, **kwargs)
    except (TypeError, ValueError):
        return args, _with_training_flag(apply, kwargs, True, positional=n_lead + len(args))
    for flag, negated in _FLAGS.items():
        if flag in bound.arguments:
            bound.arguments[flag] = not negated
    kwargs = _with_training_flag(apply, bound.kwargs, True, positional=len(bound.args))
    return bound.args[n_lead:], kwargs


def _call_haiku(
    name: str, t: Any, with_state: bool, takes_rng: bool, *args: Any, **kwargs: Any
) -> Any:
    who = f"tp.module({name!r})"
    frame = _frame(name)
    n_lead = 1 + with_state + takes_rng  # apply(params[, state][, rng], *args)
    init_args, init_kwargs = _in_training(t.apply, n_lead, args, kwargs)
    kwargs = _with_training_flag(t.apply, kwargs, frame.is_training, positional=n_lead + len(args))
    with variable_scope(name):
        if frame.mode == "init":
            assert frame.rng is not None
            created = t.init(param_key(frame.rng, frame.scope_name), *init_args, **init_kwargs)
        else:  # only the structure: the values come from params and state
            created = jax.eval_shape(lambda: t.init(jax.random.key(0), *init_args, **init_kwargs))
        hk_params, hk_state = created if with_state else (created, {})
        param_names = _haiku_names(hk_params, who)
        state_names = _haiku_names(hk_state, who)
        flat = {n: hk_params[mod][var] for n, (mod, var) in param_names.items()}
        params = _haiku_tree(param_names, _variables(frame, flat, True, who))
        flat = {n: hk_state[mod][var] for n, (mod, var) in state_names.items()}
        state = _haiku_tree(state_names, _variables(frame, flat, False, who))
        rng = next_rng_key(who) if frame.is_training and frame.rng is not None else None
        lead = (params, state) if with_state else (params,)
        if takes_rng:
            lead = (*lead, rng)
        out = t.apply(*lead, *args, **kwargs)
        if not with_state:
            return out
        out, new_state = out
        if frame.is_training:
            for ours, (mod, var) in state_names.items():
                assign_state(ours, new_state[mod][var], who=who)
        return out
