"""Tensorpack's ``.npz`` weight files: ``dump-model-params.py`` output (keys ``conv0/W:0``).

Reading never unpickles (``allow_pickle=False``) and turns every way a file can be broken
into one clear error; writing goes through a temporary file and a rename.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tpflax.checkpoint._io import Progress, atomic_write, check_name
from tpflax.checkpoint._sstable import FormatError
from tpflax.checkpoint._tree import flatten, strip_suffix

log = logging.getLogger("tpflax")


def _numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "biuf" or dtype.name == "bfloat16"


def load_npz(path: str) -> dict[str, np.ndarray]:
    """``{name: array}`` from a tensorpack ``.npz``, names without ``:0``.

    Raises:
        FileNotFoundError: no such file.
        FormatError: not a zip, truncated, a corrupt member, a pickled object array, or two
            keys naming one variable (``a`` and ``a:0``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    out: dict[str, np.ndarray] = {}
    try:
        # Our own handle: np.load leaks the file it opens when the zip turns out broken.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise FormatError(f"{path}: a single .npy array, not an .npz of named arrays")
            total = sum(data.zip.getinfo(f"{k}.npy").file_size for k in data.files)
            with Progress(total, os.path.basename(path)) as progress:
                for key in data.files:
                    name = strip_suffix(key)
                    if name in out:
                        raise FormatError(f"{path}: holds '{name}' twice (with and without ':0')")
                    try:
                        value = data[key]
                    except ValueError as e:
                        if "allow_pickle" in str(e):
                            raise FormatError(
                                f"{path}: '{key}' is a pickled object array; tpflax refuses to "
                                "unpickle (it can run arbitrary code). Re-save it as numbers"
                            ) from None
                        raise FormatError(f"{path}: '{key}' cannot be read: {e}") from None
                    progress.update(value.nbytes)
                    if not _numeric(value.dtype):
                        log.warning("%s: skipped '%s' of dtype %s", path, key, value.dtype)
                        continue
                    out[name] = value
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise FormatError(f"{path}: not a valid .npz file (truncated or corrupt: {e})") from None
    except ValueError as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"{path}: not a valid .npz file ({e})") from None
    return out


def save_npz(
    path: str,
    params: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    dtype: Any = np.float32,
    compress: bool = False,
) -> list[str]:
    """Writes ``(params, state)`` as a tensorpack ``.npz`` (keys ``conv0/W:0``), which
    tensorpack's ``DictRestore`` / ``get_model_loader`` / ``SmartInit`` load into the same
    model without a warning.

    Args:
        path: the file; must end in ``.npz``. Written to a temporary name, then renamed.
        params: the model's params.
        state: the model's state (EMA statistics).
        dtype: floating variables are written in this dtype (float32, what tensorpack
            models use); ``None`` keeps each one's dtype, except bfloat16, which ``.npz``
            cannot hold portably and becomes float32 (logged).
        compress: ``np.savez_compressed`` instead of ``np.savez``.

    Returns:
        The names written (without ``:0``).
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"save_npz: the path must end in .npz; got {path!r}")
    flat = flatten(params, state or {})
    write_npz(path, flat, dtype=dtype, compress=compress)
    return sorted(flat)


def write_npz(
    path: str, flat: Mapping[str, Any], dtype: Any = None, compress: bool = False
) -> None:
    """Writes a flat ``{name: array}`` as ``.npz`` with ``:0`` keys, atomically (see
    ``save_npz`` for ``dtype``)."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in flat.items():
        check_name(name, "save_npz")
        array = np.asarray(value)
        if array.dtype.kind == "f" or array.dtype.name == "bfloat16":
            target = np.dtype(dtype) if dtype is not None else array.dtype
            if target.name == "bfloat16":
                log.info("save_npz: '%s' is written as float32 (.npz cannot hold bfloat16)", name)
                target = np.dtype(np.float32)
            array = array.astype(target, copy=False)
        arrays[f"{strip_suffix(name)}:0"] = array
    with atomic_write(path) as f:
        writer: Any = np.savez_compressed if compress else np.savez
        writer(f, **arrays)
