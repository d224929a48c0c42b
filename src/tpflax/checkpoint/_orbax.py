"""Orbax checkpoints of a tpflax model: ``(params, state)`` and, for training, the optax
state and step, saved with orbax-checkpoint's ``StandardCheckpointer`` under the keys
``params``, ``state``, ``opt_state``, ``step``. Any orbax user can read them with orbax alone;
tpflax adds a readable diff when the model's tree does not match the checkpoint's.

Reading checks the directory before orbax sees it (regular files only, no symlink leaving
it, metadata files of bounded size and valid JSON, arrays whose claimed size fits the byte
budget) and turns whatever orbax raises into ``FormatError``. Replacing a checkpoint never
loses it: the new one is written and synced beside it, then the two directories are
exchanged in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); a reader that saw the
exchange happen under it starts again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import logging
import math
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np

from tpflax._src.tree import flatten, is_training_name, unflatten
from tpflax.checkpoint._format import Format, refuse_existing
from tpflax.checkpoint._io import check_budget, fsync_dir, read_while_replaced
from tpflax.checkpoint.errors import FormatError

META_FILES = ("_CHECKPOINT_METADATA", "_METADATA")
MAX_METADATA_BYTES = 64 << 20
ZARR_METADATA = (".zarray", ".zattrs", ".zgroup", "zarr.json")
log = logging.getLogger("tpflax")
_TMP, _OLD = ".tpflax-tmp-", ".tpflax-old-"


def _ocp() -> Any:
    import orbax.checkpoint as ocp  # imported on use: it is slow to import

    return ocp


def is_orbax(path: str) -> bool:
    """A directory with orbax's metadata files (``_CHECKPOINT_METADATA`` or ``_METADATA``)."""
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
    ``StandardCheckpointer``.

    Atomic, also when replacing: the checkpoint is written (and fsynced) in a temporary
    directory beside ``path``, then swapped in with one atomic exchange; a kill or a full disk
    at any moment leaves the previous checkpoint or the new one at ``path``, whole, and the
    next save removes what an interrupted one left.

    Args:
        path: the checkpoint directory (made absolute for orbax).
        params, state: the model's trees.
        opt_state: an optax state, for a full training checkpoint.
        step: the training step.
        overwrite: replace an existing checkpoint at ``path``.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"save_orbax: {path} already exists; pass overwrite=True to replace")
    tree: dict[str, Any] = {"params": dict(params), "state": dict(state or {})}
    if opt_state is not None:
        tree["opt_state"] = opt_state
    if step is not None:
        tree["step"] = np.asarray(step, np.int64)
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    _remove_prefixed(parent, base + _TMP, base + _OLD)  # what a killed save left
    tmp = os.path.join(parent, f"{base}{_TMP}{uuid.uuid4().hex[:12]}")
    checkpointer = _ocp().StandardCheckpointer()
    try:
        checkpointer.save(tmp, tree)
        checkpointer.wait_until_finished()
        _fsync_tree(tmp)
        if os.path.exists(path):
            _exchange(tmp, path)  # tmp now holds the previous checkpoint
        else:
            os.rename(tmp, path)
        fsync_dir(parent)
    finally:  # the previous checkpoint after an exchange, or what a failed save wrote
        for wait in (checkpointer.wait_until_finished, checkpointer.close):
            with contextlib.suppress(Exception):  # a failed save's background threads first
                wait()
        _remove_prefixed(parent, os.path.basename(tmp))  # orbax's own temporary name too


def _remove_prefixed(parent: str, *prefixes: str) -> None:
    """Removes every entry of ``parent`` whose name starts with one of ``prefixes``; again
    while a failed save's last background writes keep recreating files there (a few tries)."""
    for _ in range(20):
        left = [n for n in os.listdir(parent) if n.startswith(prefixes)]
        if not left:
            return
        for name in left:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        time.sleep(0.05)


def _fsync_tree(root: str) -> None:
    """Every file and directory under ``root`` on disk before the switch."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Any:
    """libc's ``renameat2``, or ``None``; looked up once (``find_library`` runs a subprocess)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return getattr(libc, "renameat2", None)


def _exchange(a: str, b: str) -> None:
    """Swaps two directories atomically (``renameat2(RENAME_EXCHANGE)``). Where the system or
    file system has no exchange, ``b`` is renamed aside, ``a`` renamed in, in that order: never
    lost (the next save removes the aside copy), but a reader at that instant finds nothing."""
    renameat2 = _renameat2()
    flag = _RENAME_EXCHANGE
    if (
        renameat2 is not None
        and renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flag) == 0
    ):
        return
    aside = b + _OLD + uuid.uuid4().hex[:12]
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


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


def _check_directory(path: str) -> int:
    """Refuses what orbax should never be handed; returns the checkpoint's bytes on disk.

    Every entry must be a regular file or a directory, or a symlink that stays inside
    ``path``; the metadata files must be regular files of at most ``MAX_METADATA_BYTES``
    holding JSON."""
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(folder, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(full)
                if os.path.commonpath([target, path]) != path:
                    raise FormatError(f"{full}: a symlink leaving the checkpoint (to {target})")
                st = os.stat(full)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise FormatError(f"{full}: not a regular file or directory")
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                if name in ZARR_METADATA and st.st_size > MAX_METADATA_BYTES:
                    raise FormatError(f"{full}: metadata over {MAX_METADATA_BYTES} bytes")
    for name in META_FILES:
        full = os.path.join(path, name)
        if not os.path.lexists(full):
            continue
        if os.path.islink(full) or not os.path.isfile(full):
            raise FormatError(f"{full}: orbax metadata must be a regular file")
        if os.path.getsize(full) > MAX_METADATA_BYTES:
            raise FormatError(f"{full}: metadata over {MAX_METADATA_BYTES} bytes")
        with open(full, "rb") as f:
            raw = f.read(MAX_METADATA_BYTES + 1)
        try:
            json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise FormatError(f"{full}: not valid JSON ({type(e).__name__})") from None
    return total


def _claimed_bytes(tree: Any, where: str) -> int:
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if shape is None or dtype is None:
            raise FormatError(f"{where}: an array without shape or dtype in its metadata")
        try:
            dims = [int(d) for d in shape]
            itemsize = np.dtype(dtype).itemsize
        except (TypeError, ValueError) as e:
            raise FormatError(f"{where}: bad array metadata ({e})") from None
        if any(d < 0 for d in dims):
            raise FormatError(f"{where}: negative dimension in shape {dims}")
        total += math.prod(dims) * itemsize
    return total


@contextlib.contextmanager
def _orbax_errors(path: str, what: str) -> Iterator[None]:
    """Whatever orbax raises reading a broken checkpoint becomes one ``FormatError``."""
    try:
        yield
    except FormatError:
        raise
    except Exception as e:  # orbax, tensorstore, JSON: many kinds, one meaning
        raise FormatError(f"{path}: orbax could not {what} it ({type(e).__name__}: {e})") from None


def _metadata(path: str) -> dict[str, Any]:
    path = os.path.abspath(path)
    if not is_orbax(path):
        raise FileNotFoundError(f"no orbax checkpoint at {path}")
    on_disk = _check_directory(path)
    with _orbax_errors(path, "read the metadata of"):
        meta = _ocp().StandardCheckpointer().metadata(path)
        tree = getattr(getattr(meta, "item_metadata", meta), "tree", None)
    if not isinstance(tree, Mapping) or "params" not in tree:
        raise FormatError(f"{path}: an orbax checkpoint, but not one tpflax wrote (no 'params')")
    check_budget(path, _claimed_bytes(tree, path), on_disk)
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

    def read() -> dict[str, np.ndarray]:
        tree = _metadata(path)
        restored = _restore(path, tree, {})
        flat = flatten(restored["params"], restored.get("state") or {})
        return {k: np.asarray(v) for k, v in flat.items()}

    return read_while_replaced(read, lambda: os.path.abspath(path))


def _restore(path: str, meta_tree: Mapping[str, Any], partial: Mapping[str, Any]) -> Any:
    target = {}
    for key, value in meta_tree.items():
        if key in partial:
            target[key] = partial[key]
        else:
            target[key] = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), value)
    with _orbax_errors(path, "restore"):
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
    return read_while_replaced(
        lambda: _restore_checked(path, params, state, opt_state), lambda: os.path.abspath(path)
    )


def _restore_checked(
    path: str, params: Mapping[str, Any], state: Mapping[str, Any] | None, opt_state: Any
) -> dict[str, Any]:
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


def orbax_items(path: str) -> list[str]:
    """The items of a tpflax orbax checkpoint (``'params'``, ``'state'``, and for training
    ``'opt_state'``, ``'step'``), read from its metadata after the checks ``load`` makes.

    Raises:
        FileNotFoundError: no orbax checkpoint at ``path``.
        FormatError: a broken one, or one tpflax did not write.
    """
    return sorted(_metadata(path))


def _left_out(path: str) -> list[str]:
    return [item for item in orbax_items(path) if item not in ("params", "state")]


def _write(path: str, flat: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """An orbax checkpoint holds a model's ``(params, state)``: training-only names
    (optimizer slots, ``global_step``) are left out, with a log line."""
    refuse_existing(FORMAT, path, overwrite)
    dropped = sorted(n for n in flat if is_training_name(n))
    if dropped:
        log.info("orbax keeps model variables only; left out: %s", ", ".join(dropped))
    params, state = unflatten({n: v for n, v in flat.items() if n not in dropped})
    save_orbax(path, params, state, overwrite=overwrite)


FORMAT = Format(
    name="orbax",
    description="an orbax checkpoint directory written by tp.checkpoint.save_orbax",
    detect=is_orbax,
    read=load_orbax,
    write=_write,
    names_target=None,
    target_rule="anything else is an orbax directory",
    left_out=_left_out,
)
