"""``load``: any supported weight file to ``{tensorpack name: array}``; ``save_flat`` back."""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tpflax._src.tree import is_training_name, unflatten
from tpflax.checkpoint import _npz, _orbax, _tf_checkpoint
from tpflax.checkpoint._io import name_problem
from tpflax.checkpoint.errors import FormatError

log = logging.getLogger("tpflax")

FORMATS = ("npz", "tf", "orbax")


def detect_format(path: str) -> str:
    """``'npz'``, ``'tf'`` or ``'orbax'`` for an existing file, or raise a clear error."""
    path = os.fspath(path)
    if _orbax.is_orbax(path):
        return "orbax"
    if _tf_checkpoint.is_tf_checkpoint(path):
        return "tf"
    if os.path.isfile(path) and (path.endswith(".npz") or zipfile.is_zipfile(path)):
        return "npz"
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise FileNotFoundError(f"no such file or checkpoint: {path}")
    raise FormatError(
        f"{path}: not a weight file tpflax reads (expected a .npz, a TensorFlow checkpoint "
        "prefix / .index / directory with a 'checkpoint' file, or a tpflax orbax directory)"
    )


def load(path: str) -> dict[str, np.ndarray]:
    """Loads a weight file as ``{name: ndarray}``, names without ``:0``.

    Args:
        path: a tensorpack ``.npz`` (keys with or without ``:0``); a TensorFlow checkpoint,
            read without TensorFlow (its prefix ``model-5000``, the ``.index`` file, or a
            directory with a ``checkpoint`` file); or an orbax checkpoint written by
            ``tp.checkpoint.save_orbax``.

    Returns:
        Every numeric tensor, optimizer slots included (``restore`` skips those).

    Raises:
        FileNotFoundError: nothing at ``path`` (or a missing data shard).
        FormatError: a truncated or corrupt file, a bad checksum, pickled objects, ...
    """
    kind = detect_format(path)
    if kind == "npz":
        flat = _npz.load_npz(path)
    elif kind == "tf":
        flat = _tf_checkpoint.read_tf_checkpoint(path)
    else:
        flat = _orbax.load_orbax(path)
    for name in flat:
        problem = name_problem(name)
        if problem is not None:
            raise FormatError(f"{path}: variable name {name[:200]!r} is {problem}")
    return flat


def save_flat(path: str, flat: Mapping[str, Any], kind: str, *, overwrite: bool = False) -> None:
    """Writes a flat dict as ``kind`` (``'npz'``, ``'tf'``, ``'orbax'``), dtypes kept;
    ``overwrite`` replaces an existing orbax directory (files are replaced atomically).

    An orbax checkpoint holds a model's ``(params, state)`` trees, so training-only names
    (optimizer slots, ``global_step``) are left out of it, with a log line.
    """
    if kind == "npz":
        _npz.write_npz(path, flat)
    elif kind == "tf":
        _tf_checkpoint.write_tf_checkpoint(path, flat)
    elif kind == "orbax":
        dropped = sorted(n for n in flat if is_training_name(n))
        if dropped:
            log.info("orbax keeps model variables only; left out: %s", ", ".join(dropped))
        params, state = unflatten({n: v for n, v in flat.items() if n not in dropped})
        _orbax.save_orbax(path, params, state, overwrite=overwrite)
    else:
        raise ValueError(f"unknown format {kind!r}; expected one of {FORMATS}")
