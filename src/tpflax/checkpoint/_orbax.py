"""Orbax checkpoints of a tpflax model: ``(params, state)`` and, for training, the optax
state and step, saved with orbax-checkpoint's ``StandardCheckpointer`` under the keys
``params``, ``state``, ``opt_state``, ``step``. Any orbax user can read them with orbax alone;
tpflax adds a readable diff when the model's tree does not match the checkpoint's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from tpflax.checkpoint._sstable import FormatError
from tpflax.checkpoint._tree import flatten

_KEYS = ("params", "state", "opt_state", "step")


def _ocp() -> Any:
    import orbax.checkpoint as ocp  # imported on use: it is slow to import

    return ocp


def is_orbax(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("_CHECKPOINT_METADATA", "_METADATA")
    )


def save_orbax(
    path: str,
    params: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    *,
    opt_state: Any = None,
    step: int | None = None,
    overwrite: bool = False,
) -> None:
    """Saves ``{'params', 'state'[, 'opt_state', 'step']}`` with orbax's
    ``StandardCheckpointer`` (atomic: orbax writes a temporary directory and renames it).

    Args:
        path: the checkpoint directory (made absolute for orbax).
        params, state: the model's trees.
        opt_state: an optax state, for a full training checkpoint.
        step: the training step.
        overwrite: replace an existing checkpoint at ``path``.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"save_orbax: {path} already exists; pass overwrite=True to replace")
    tree: dict[str, Any] = {"params": dict(params), "state": dict(state or {})}
    if opt_state is not None:
        tree["opt_state"] = opt_state
    if step is not None:
        tree["step"] = np.asarray(step, np.int64)
    checkpointer = _ocp().StandardCheckpointer()
    checkpointer.save(os.path.abspath(path), tree, force=overwrite)
    checkpointer.wait_until_finished()


def _key(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _leaves(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{'0/trace/conv0/W': (shape, dtype)}``: namedtuple fields, dict keys and sequence
    indices spelled alike, as orbax stores them."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(_key(p) for p in path)
        out[name] = (tuple(getattr(leaf, "shape", ())), str(np.dtype(leaf.dtype)))
    return out


def _metadata(path: str) -> dict[str, Any]:
    path = os.path.abspath(path)
    if not is_orbax(path):
        raise FileNotFoundError(f"no orbax checkpoint at {path}")
    meta = _ocp().StandardCheckpointer().metadata(path)
    tree = getattr(getattr(meta, "item_metadata", meta), "tree", None)
    if not isinstance(tree, Mapping) or "params" not in tree:
        raise FormatError(f"{path}: an orbax checkpoint, but not one tpflax wrote (no 'params')")
    return dict(tree)


def describe_diff(
    ours: Mapping[str, tuple[tuple[int, ...], str]],
    theirs: Mapping[str, tuple[tuple[int, ...], str]],
) -> list[str]:
    """Human-readable lines: names only in the checkpoint, only in the model, and shape or
    dtype changes."""
    lines = []
    only_ckpt = sorted(set(theirs) - set(ours))
    only_model = sorted(set(ours) - set(theirs))
    if only_ckpt:
        lines.append(f"  only in the checkpoint: {', '.join(only_ckpt)}")
    if only_model:
        lines.append(f"  only in the model: {', '.join(only_model)}")
    for name in sorted(set(ours) & set(theirs)):
        if ours[name] != theirs[name]:
            (s1, d1), (s2, d2) = theirs[name], ours[name]
            lines.append(f"  {name}: checkpoint {list(s1)} {d1}, model {list(s2)} {d2}")
    return lines


def load_orbax(path: str) -> dict[str, np.ndarray]:
    """The model variables (``params`` and ``state``) of a tpflax orbax checkpoint as
    ``{tensorpack name: array}``."""
    tree = _metadata(path)
    restored = _restore(path, tree, {})
    flat = flatten(restored["params"], restored.get("state") or {})
    return {k: np.asarray(v) for k, v in flat.items()}


def _restore(path: str, meta_tree: Mapping[str, Any], partial: Mapping[str, Any]) -> Any:
    target = {}
    for key, value in meta_tree.items():
        if key in partial:
            target[key] = partial[key]
        else:
            target[key] = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), value)
    return _ocp().StandardCheckpointer().restore(os.path.abspath(path), target)


def restore_orbax(
    path: str,
    params: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    opt_state: Any = None,
) -> dict[str, Any]:
    """Restores a tpflax orbax checkpoint into trees shaped like the given ones.

    Returns:
        ``{'params', 'state'[, 'opt_state'][, 'step']}``; ``opt_state`` when one was given
        (its structure is taken from it), ``step`` when the checkpoint has one.

    Raises:
        ValueError: the checkpoint's tree differs from the model's; the message lists the
            names only in either and every shape or dtype change.
    """
    tree = _metadata(path)
    given: dict[str, Any] = {"params": params, "state": state or {}}
    if opt_state is not None:
        given["opt_state"] = opt_state
        if "opt_state" not in tree:
            raise ValueError(f"restore_orbax: {path} has no optimizer state (opt_state)")
    problems = []
    for key, template in given.items():
        theirs = _leaves(tree.get(key, {}))
        lines = describe_diff(_leaves(template), theirs)
        if lines:
            problems.append(f"{key}:\n" + "\n".join(lines))
    if problems:
        raise ValueError(
            f"restore_orbax: the checkpoint at {path} does not match the model\n"
            + "\n".join(problems)
        )
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), given)
    restored = _restore(path, tree, abstract)
    out = {k: restored[k] for k in given}
    if "step" in restored:
        out["step"] = int(restored["step"])
    return out
