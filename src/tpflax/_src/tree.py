"""Tensorpack-named variable trees: flat `{"conv0/W": ...}` dicts <-> nested `(params, state)`
trees, and the naming rules (EMA statistics are state, optimizer slots are training-only).

Below both the layer core (`tp.transform`, `regularize_cost`) and the checkpoint formats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Non-trainable variables tensorpack's layers create: EMA statistics (``mean/EMA``) and
# BatchRenorm's extra statistics. Everything else a model defines is trainable.
_STATE_PATTERN = re.compile(
    r"(^|/)EMA$|(^|/)(moving_mean|moving_variance|moving_stddev|renorm_mean|renorm_stddev|"
    r"renorm_mean_weight|renorm_stddev_weight)$"
)


# Names a training checkpoint holds that are not model variables: tensorpack's
# `varmanip.is_training_name` (optimizer slots, moving-average summaries, gradient
# accumulators), plus the step counter, Adam's power accumulators and centered RMSProp's
# momentum slot `RMSProp_2` (which tensorpack's list misses, so it would take it for a model
# variable).
_TRAINING_PATTERN = re.compile(
    r"/(Adam|Adam_1|Momentum|Adadelta|Adadelta_1|RMSProp|RMSProp_1|RMSProp_2|Adagrad|AccumGrad)$"
    r"|^EMA/|/EMA/|^AccumGrad|^apply_gradients"
    r"|^global_step$|^learning_rate$|(^|/)(beta1_power|beta2_power)$"
)


def is_training_name(name: str) -> bool:
    """True for a name only training uses (``conv0/W/Momentum``, ``global_step``): tensorpack
    skips these when it restores a model, and so does ``tp.checkpoint.restore``."""
    return bool(_TRAINING_PATTERN.search(strip_suffix(name)))


def strip_suffix(name: str) -> str:
    """``'conv0/W:0'`` -> ``'conv0/W'``; names without a suffix are unchanged."""
    return re.sub(r":\d+$", "", name)


def is_state_name(name: str) -> bool:
    """Tensorpack's trainable rule for a name alone: EMA statistics are state."""
    return bool(_STATE_PATTERN.search(strip_suffix(name)))


def _flatten_tree(tree: Mapping[str, Any], prefix: str, out: dict[str, Any], what: str) -> None:
    for key, value in tree.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"tp.checkpoint.flatten: {what} has a non-string key {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten_tree(value, f"{name}/", out, what)
        else:
            out[name] = value


def flatten(params: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{'conv0/W': array, 'bn/mean/EMA': array, ...}`` from ``(params, state)``.

    Args:
        params: nested dict of trainable variables.
        state: nested dict of non-trainable variables (EMA statistics), or ``None``.

    Returns:
        One flat dict keyed by tensorpack's variable names, without ``:0``.

    Raises:
        ValueError: a name is in both trees.

    Example:
        >>> import tpflax as tp
        >>> tp.checkpoint.flatten({'bn': {'gamma': 1.0}}, {'bn': {'mean': {'EMA': 0.0}}})
        {'bn/gamma': 1.0, 'bn/mean/EMA': 0.0}
    """
    out: dict[str, Any] = {}
    _flatten_tree(params, "", out, "params")
    if state:
        stateful: dict[str, Any] = {}
        _flatten_tree(state, "", stateful, "state")
        both = sorted(set(out) & set(stateful))
        if both:
            raise ValueError(f"tp.checkpoint.flatten: names in both params and state: {both}")
        out.update(stateful)
    return out


def _insert(tree: dict[str, Any], name: str, value: Any) -> None:
    parts = name.split("/")
    node = tree
    for i, key in enumerate(parts[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(
                f"tp.checkpoint.unflatten: '{'/'.join(parts[: i + 1])}' is both a variable and "
                f"a scope (of '{name}')"
            )
        node = child
    if parts[-1] in node:
        raise ValueError(f"tp.checkpoint.unflatten: '{name}' is both a variable and a scope")
    node[parts[-1]] = value


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{'conv0': {'W': ...}}`` from ``{'conv0/W': ...}``.

    Raises:
        ValueError: a name is both a variable and a scope.
    """
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        _insert(tree, name, value)
    return tree


def lookup(tree: Mapping[str, Any], path: list[str]) -> Any:
    """The node at ``path`` (``['conv0', 'W']``) in a nested tree, or ``None``."""
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def store(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Sets ``tree[path[0]][path[1]]... = value``, creating the scopes on the way."""
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def rebuild(template: Mapping[str, Any], flat: Mapping[str, Any], prefix: str = "") -> dict:
    """``template``'s structure with each leaf replaced by ``flat[its name]``: nested trees
    stay nested, flat-named ones (``tp.linen``'s ``{'conv0/W': ...}``) stay flat."""
    out: dict[str, Any] = {}
    for key, value in template.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out[key] = rebuild(value, flat, f"{name}/")
        else:
            out[key] = flat[name]
    return out


def unflatten(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, state)`` from a flat tensorpack-named dict, without a template.

    Names may end in ``:0``. EMA statistics (``.../EMA``) and BatchRenorm's statistics go to
    ``state``; everything else to ``params``.

    Raises:
        ValueError: two keys give the same name once ``:0`` is removed, or a name is both a
            variable and a scope.

    Example:
        >>> import tpflax as tp
        >>> tp.checkpoint.unflatten({'bn/gamma:0': 1.0, 'bn/mean/EMA:0': 0.0})
        ({'bn': {'gamma': 1.0}}, {'bn': {'mean': {'EMA': 0.0}}})
    """
    params: dict[str, Any] = {}
    state: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in flat.items():
        name = strip_suffix(key)
        if name in seen:
            raise ValueError(
                f"tp.checkpoint.unflatten: {seen[name]!r} and {key!r} are the same variable"
            )
        seen[name] = key
        _insert(state if is_state_name(name) else params, name, value)
    return params, state
