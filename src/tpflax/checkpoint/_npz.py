"""Tensorpack's ``.npz`` weight files: ``dump-model-params.py`` output (keys ``conv0/W:0``).

Reading never unpickles (``allow_pickle=False``) and turns every way a file can be broken
into one clear error; writing goes through a temporary file and a rename.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tpflax._src.tree import flatten, strip_suffix
from tpflax.checkpoint._format import Format, refuse_existing, target_name
from tpflax.checkpoint._io import Progress, atomic_write, check_budget, check_name
from tpflax.checkpoint.errors import FormatError

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
        with open(path, "rb") as handle:
            _check_kind(handle, path)
            with np.load(handle, allow_pickle=False) as data:
                claimed = _check_members(data.zip, handle, path)
                check_budget(path, claimed, os.fstat(handle.fileno()).st_size)
                total = sum(data.zip.getinfo(f"{k}.npy").file_size for k in data.files)
                seen: set[str] = set()
                with Progress(total, os.path.basename(path)) as progress:
                    for key in data.files:
                        name = strip_suffix(key)
                        if name in out:
                            how = "twice" if key in seen else "twice (with and without ':0')"
                            raise FormatError(f"{path}: holds '{name}' {how}")
                        seen.add(key)
                        try:
                            value = data[key]
                        except ValueError as e:
                            if "pickle" in str(e):
                                raise FormatError(
                                    f"{path}: '{key}' is a pickled object array; tpflax refuses "
                                    "to unpickle (it can run arbitrary code). Re-save it as numbers"
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
        raise FormatError(f"{path}: not a valid .npz file ({_reason(e)})") from None
    except (KeyError, RuntimeError, NotImplementedError, OverflowError, zlib.error) as e:
        raise FormatError(f"{path}: not a valid .npz file ({type(e).__name__}: {e})") from None
    return out


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member, or an empty zip


def _check_kind(handle: Any, path: str) -> None:
    """Refuses what is not a zip before ``np.load`` sees it: ``np.load`` would read a single
    ``.npy`` whole (whatever size its header claims) and take anything else for a pickle."""
    head = handle.read(len(_NPY_MAGIC))
    handle.seek(0)
    if head.startswith(_NPY_MAGIC):
        raise FormatError(
            f"{path}: a single .npy array (np.save), not an .npz of named arrays (np.savez); "
            "tpflax reads .npz files only: re-save it with np.savez(path, name=array)"
        )
    if not head.startswith(_ZIP_MAGICS):
        what = f"it starts with {head!r}" if head else "it is empty"
        raise FormatError(
            f"{path}: not a valid .npz file: not a zip archive ({what}; an .npz is a zip of "
            ".npy arrays, as np.savez writes)"
        )


def _reason(error: ValueError) -> str:
    """NumPy's message, except its advice to unpickle, which tpflax never gives
    (SECURITY.md)."""
    text = str(error)
    if "pickle" in text:
        return "it holds pickled Python objects, which tpflax never loads"
    return text


# Deflate cannot expand data more than about 1032 times; a member claiming more is a bomb.
_DEFLATE_MAX_RATIO = 1032


def _declared_entries(handle: Any) -> int | None:
    """The member count the end-of-central-directory record states (``None`` for zip64)."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_len = min(size, 22 + 65535)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None  # zipfile itself reports a missing record
    total = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    return None if total == 0xFFFF else total


def _check_members(zf: zipfile.ZipFile, handle: Any, path: str) -> int:
    """Refuses, before anything is allocated, what np.load would misread or over-allocate:
    a member count that disagrees with the central directory, members that are not plain
    ``.npy`` arrays (encrypted, an unknown compression), and array headers that claim more
    bytes than the member holds. Returns the bytes the arrays claim in all."""
    infos = zf.infolist()
    claimed = 0
    declared = _declared_entries(handle)
    if declared is not None and declared != len(infos):
        raise FormatError(
            f"{path}: the zip directory states {declared} members but lists {len(infos)} "
            "(corrupt central directory)"
        )
    for info in infos:
        where = f"{path}: member '{info.filename}'"
        if not info.filename.endswith(".npy"):
            raise FormatError(f"{where} is not a .npy array")
        if info.flag_bits & 0x1:
            raise FormatError(f"{where} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FormatError(f"{where} uses an unsupported compression ({info.compress_type})")
        limit = info.compress_size * (
            1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO
        )
        if info.file_size > limit + 1024:
            raise FormatError(
                f"{where} claims {info.file_size} bytes from {info.compress_size} stored"
            )
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > info.file_size:
            raise FormatError(
                f"{where}: its header claims shape {list(shape)} of {dtype} ({nbytes} bytes), "
                f"more than the {info.file_size} bytes it holds"
            )
        claimed += nbytes
    return claimed


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


def is_npz(path: str) -> bool:
    """An existing file named ``*.npz``, or any zip file."""
    path = os.fspath(path)
    return os.path.isfile(path) and (path.endswith(".npz") or zipfile.is_zipfile(path))


def _write(path: str, flat: Mapping[str, Any], *, overwrite: bool = False) -> None:
    refuse_existing(FORMAT, path, overwrite)
    write_npz(path, flat)  # every dtype kept


FORMAT = Format(
    name="npz",
    description="a tensorpack .npz (np.savez of named arrays)",
    detect=is_npz,
    read=load_npz,
    write=_write,
    names_target=lambda path: target_name(path).endswith(".npz"),
    target_rule="*.npz is a tensorpack .npz",
)
