"""TensorFlow checkpoints (``model-5000.index`` + ``model-5000.data-00000-of-00001``) read
and written without TensorFlow.

The index is a table (``_sstable``) whose empty key holds a ``BundleHeaderProto``
(``num_shards`` = 1, ``endianness`` = 2, ``version`` = 3) and whose other keys are tensor
names holding ``BundleEntryProto`` (``dtype`` = 1, ``shape`` = 2, ``shard_id`` = 3,
``offset`` = 4, ``size`` = 5, ``crc32c`` = 6 (masked), ``slices`` = 7). Tensor bytes are
little-endian and C-ordered at ``offset`` in data shard ``shard_id`` (tpflax assumes a
little-endian host, as every platform JAX runs on is).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

from tpflax._src.tree import flatten
from tpflax.checkpoint import _sstable
from tpflax.checkpoint._format import Format, refuse_existing, target_name
from tpflax.checkpoint._io import (
    Progress,
    atomic_write,
    check_budget,
    check_name,
    read_while_replaced,
)
from tpflax.checkpoint.errors import FormatError, MissingShardError

log = logging.getLogger("tpflax")

# TensorFlow's DataType enum (types.proto) for the dtypes a model variable can have.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("float32"),
    2: np.dtype("float64"),
    3: np.dtype("int32"),
    4: np.dtype("uint8"),
    5: np.dtype("int16"),
    6: np.dtype("int8"),
    9: np.dtype("int64"),
    10: np.dtype("bool"),
    14: np.dtype(ml_dtypes.bfloat16),
    17: np.dtype("uint16"),
    19: np.dtype("float16"),
    22: np.dtype("uint32"),
    23: np.dtype("uint64"),
}
_ENUM = {dtype: code for code, dtype in _DTYPES.items()}
_DT_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}
_DATA = re.compile(r"^(.*)\.data-\d{5}-of-\d{5}$")
MAX_STATE_BYTES = 1 << 20  # the 'checkpoint' state file: a few lines of text


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor of a checkpoint, as its index describes it."""

    name: str
    dtype: np.dtype | str  # a NumPy dtype, or TensorFlow's name for one NumPy lacks
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int


def resolve_prefix(path: str) -> str:
    """The checkpoint prefix for a prefix, an ``.index`` or ``.data-*`` path, a directory
    with a ``checkpoint`` file, or that ``checkpoint`` file itself."""
    path = os.fspath(path)
    if os.path.isdir(path) or os.path.basename(path) == "checkpoint":
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        state = os.path.join(folder, "checkpoint")
        if not os.path.isfile(state):
            raise FileNotFoundError(
                f"{path}: a directory without a 'checkpoint' file (not a TensorFlow "
                "checkpoint directory)"
            )
        with open(state, "rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
        if len(raw) > MAX_STATE_BYTES:
            raise FormatError(
                f"{state}: over {MAX_STATE_BYTES} bytes (a TensorFlow 'checkpoint' state file "
                "is a few lines of text)"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(
                f"{state}: not UTF-8 text (byte {e.start} is {raw[e.start : e.start + 1]!r}); "
                "a TensorFlow 'checkpoint' state file is a text protobuf"
            ) from None
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', text, re.M)
        if not match:
            raise FormatError(f"{state}: no model_checkpoint_path line")
        name = match.group(1)
        return name if os.path.isabs(name) else os.path.join(folder, name)
    if path.endswith(".index"):
        return path[: -len(".index")]
    data = _DATA.match(path)
    return data.group(1) if data else path


def is_tf_checkpoint(path: str) -> bool:
    """Whether ``path`` names a TensorFlow checkpoint: a directory with a ``checkpoint`` state
    file (or that file), or a prefix, ``.index`` or ``.data-*`` path whose index exists. A
    broken state file still counts, so that reading it says what is wrong."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "checkpoint"))
    if os.path.basename(path) == "checkpoint" and os.path.isfile(path):
        return True
    try:
        return os.path.isfile(resolve_prefix(path) + ".index")
    except (OSError, FormatError):
        return False


MAX_DIM = 1 << 40  # a dimension larger than this is a corrupt field, not a real tensor
MAX_SHARDS = 1 << 20


def _int(fields: dict, number: int, what: str, default: int = 0) -> int:
    """Protobuf field ``number`` as an integer (the last value wins, as in protobuf)."""
    values = fields.get(number)
    if not values:
        return default
    value = values[-1]
    if not isinstance(value, int):
        raise FormatError(f"{what}: field {number} should be an integer, is length-delimited")
    return value


def _bytes(fields: dict, number: int, what: str) -> bytes:
    values = fields.get(number)
    if not values:
        return b""
    if not isinstance(values[-1], bytes):
        raise FormatError(f"{what}: field {number} should be a message, is an integer")
    return values[-1]


def _shape(buf: bytes, what: str) -> tuple[int, ...]:
    fields = _sstable.parse_message(buf)
    if fields.get(3):  # unknown_rank
        raise FormatError(f"{what}: a tensor of unknown rank")
    dims = []
    for dim in fields.get(2, []):
        if not isinstance(dim, bytes):
            raise FormatError(f"{what}: a shape dimension is not a message")
        size = _int(_sstable.parse_message(dim), 1, what)
        if size >= MAX_DIM:  # also negative sizes, which protobuf stores as 2**64 - n
            raise FormatError(f"{what}: shape dimension {size} is not a valid size")
        dims.append(size)
    return tuple(dims)


def read_index(path: str) -> tuple[str, int, list[Entry]]:
    """``(prefix, number of shards, entries)`` from a checkpoint's index, checksums verified."""
    prefix = resolve_prefix(path)
    index = prefix + ".index"
    if not os.path.isfile(index):
        raise FileNotFoundError(f"no TensorFlow checkpoint at {path} (missing {index})")
    with open(index, "rb") as f:
        data = f.read()
    entries: list[Entry] = []
    num_shards = None
    try:
        for key, value in _sstable.read_table(data):
            fields = _sstable.parse_message(value)
            if key == b"":
                num_shards = _int(fields, 1, "bundle header")
                if _int(fields, 2, "bundle header") != 0:
                    raise FormatError("big-endian checkpoints are not supported")
                if not 0 < num_shards <= MAX_SHARDS:
                    raise FormatError(f"bundle header: {num_shards} shards is not a valid count")
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"tensor name {key[:80]!r} is not UTF-8") from None
            what = f"tensor '{name}'"
            if fields.get(7):
                raise FormatError(
                    f"{what} is partitioned (saved in slices); re-save it unpartitioned"
                )
            code = _int(fields, 1, what)
            dtype: np.dtype | str = _DTYPES.get(code) or _DT_NAMES.get(code, f"dtype#{code}")
            entries.append(
                Entry(
                    name=name,
                    dtype=dtype,
                    shape=_shape(_bytes(fields, 2, what), what),
                    shard=_int(fields, 3, what),
                    offset=_int(fields, 4, what),
                    size=_int(fields, 5, what),
                    crc=_int(fields, 6, what),
                )
            )
    except FormatError as e:
        raise FormatError(f"{index}: {e}") from None
    if num_shards is None:
        raise FormatError(f"{index}: no bundle header (not a TensorFlow V2 checkpoint)")
    return prefix, num_shards, entries


def shard_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def read_tf_checkpoint(path: str) -> dict[str, np.ndarray]:
    """Every numeric tensor of a TensorFlow checkpoint, ``{name: array}``.

    Each tensor is read straight into its own array (one copy in memory) and its CRC-32C is
    checked. String tensors are skipped with a log line. When a concurrent
    ``write_tf_checkpoint`` replaces the checkpoint while it is read (its data shard
    vanishes), the read starts again from the new index, a few times at most.
    """
    return read_while_replaced(lambda: _read_once(path), lambda: resolve_prefix(path) + ".index")


def _read_once(path: str) -> dict[str, np.ndarray]:
    prefix, num_shards, entries = read_index(path)
    shards = {e.shard for e in entries}
    if shards and max(shards) >= num_shards:
        raise FormatError(
            f"{prefix}.index: tensor in shard {max(shards)} but the header says {num_shards} "
            "shard(s)"
        )
    for shard in sorted(shards):
        if not os.path.isfile(shard_path(prefix, shard, num_shards)):
            raise MissingShardError(
                f"{prefix}: data shard {shard_path(prefix, shard, num_shards)} is missing"
            )
    sizes = {s: os.path.getsize(shard_path(prefix, s, num_shards)) for s in shards}
    for e in entries:  # each tensor's own claims, before anything is allocated
        if isinstance(e.dtype, np.dtype):
            _check_entry(e, sizes[e.shard], prefix)
    total = sum(e.size for e in entries if isinstance(e.dtype, np.dtype))
    # tensors may share their bytes: a few bytes on disk can claim far more in memory
    check_budget(prefix, total, os.path.getsize(prefix + ".index") + sum(sizes.values()))
    out: dict[str, np.ndarray] = {}
    with Progress(total, os.path.basename(prefix)) as progress:
        handles: dict[int, Any] = {}
        try:
            for e in sorted(entries, key=lambda e: (e.shard, e.offset)):
                if not isinstance(e.dtype, np.dtype):
                    log.warning("%s: skipped tensor '%s' of dtype %s", prefix, e.name, e.dtype)
                    continue
                if e.shard not in handles:
                    handles[e.shard] = open(shard_path(prefix, e.shard, num_shards), "rb")  # noqa: SIM115
                out[e.name] = _read_tensor(handles[e.shard], e, prefix)
                progress.update(e.size)
        finally:
            for handle in handles.values():
                handle.close()
    return out


def _check_entry(e: Entry, shard_size: int, prefix: str) -> None:
    """A tensor's byte count must match its shape and lie inside its data shard."""
    assert isinstance(e.dtype, np.dtype)
    count = math.prod(e.shape)  # Python ints: no overflow
    if count * e.dtype.itemsize != e.size:
        raise FormatError(
            f"{prefix}: tensor '{e.name}' has {e.size} bytes for shape {list(e.shape)} of {e.dtype}"
        )
    if e.offset + e.size > shard_size:  # checked before allocating: a header cannot claim RAM
        raise FormatError(
            f"{prefix}: tensor '{e.name}' claims bytes {e.offset}..{e.offset + e.size} of a "
            f"{shard_size}-byte data shard (truncated or corrupt)"
        )


def _read_tensor(f: Any, e: Entry, prefix: str) -> np.ndarray:
    assert isinstance(e.dtype, np.dtype)
    _check_entry(e, os.fstat(f.fileno()).st_size, prefix)  # the shard may have been replaced
    array = np.empty(e.shape, e.dtype)
    f.seek(e.offset)
    got = f.readinto(array.reshape(-1).view(np.uint8).data)
    if got != e.size:
        raise FormatError(f"{prefix}: data shard ends inside tensor '{e.name}' (truncated)")
    array.flags.writeable = False  # google_crc32c reads read-only buffers without a copy
    crc = _sstable.crc32c(array.reshape(-1).view(np.uint8))
    array.flags.writeable = True
    if _sstable.mask(crc) != e.crc:
        raise FormatError(f"{prefix}: tensor '{e.name}' fails its CRC-32C check (corrupt data)")
    return array.astype(e.dtype, copy=False)


def _entry_proto(array: np.ndarray, offset: int, crc: int) -> bytes:
    shape = b"".join(_sstable.field_bytes(2, _sstable.field_varint(1, d)) for d in array.shape)
    out = _sstable.field_varint(1, _ENUM[array.dtype])
    out += _sstable.field_bytes(2, shape)
    if offset:
        out += _sstable.field_varint(4, offset)
    if array.nbytes:
        out += _sstable.field_varint(5, array.nbytes)
    return out + _sstable.field_fixed32(6, _sstable.mask(crc))


def _existing_shards(prefix: str) -> int | None:
    """The shard count of the checkpoint now at ``prefix``, or ``None`` (none, or unreadable)."""
    try:
        return read_index(prefix)[1]
    except (OSError, FormatError):
        return None


def _remove_leftovers(prefix: str, keep: set[str]) -> None:
    """Deletes data shards of ``prefix`` that no index names (an older save's, or one killed
    before its index switched) and temporary files of interrupted saves."""
    folder = os.path.dirname(os.path.abspath(prefix))
    base = os.path.basename(prefix)
    keep = {os.path.abspath(k) for k in keep}
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        stale_shard = name.startswith(base + ".data-") and path not in keep
        stale_tmp = name.startswith(f".{base}.") and name.endswith(".tmp")
        if stale_shard or stale_tmp:
            with contextlib.suppress(OSError):
                os.unlink(path)


def write_tf_checkpoint(prefix: str, flat: Mapping[str, Any]) -> None:
    """Writes ``{name: array}`` as a TensorFlow checkpoint at ``prefix`` (``prefix.index`` and
    its data shard) and a ``checkpoint`` file beside it. ``tf.train.load_checkpoint`` reads it.

    Replacing a checkpoint never loses it: the new data goes to a shard name the old index
    does not use (the shard count alternates between 1 and 2, the second shard empty), is
    made durable, and only then does the index switch, by one atomic rename. A kill at any
    point leaves the old checkpoint or the new one, and a reader sees one or the other;
    leftovers of an interrupted save are removed by the next save.
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in flat.items():
        check_name(name, "write_tf_checkpoint")
        array = np.asarray(value)
        if not array.flags.c_contiguous:  # (np.ascontiguousarray would make a scalar 1-D)
            array = array.copy(order="C")
        if array.dtype not in _ENUM:
            raise TypeError(
                f"write_tf_checkpoint: variable '{name}' has dtype {array.dtype}, which a "
                "TensorFlow checkpoint cannot hold here"
            )
        arrays[name] = array
    num_shards = 2 if _existing_shards(prefix) == 1 else 1
    entries: list[tuple[bytes, bytes]] = []
    header = _sstable.field_varint(1, num_shards) + _sstable.field_bytes(
        3, _sstable.field_varint(1, 1)
    )
    entries.append((b"", header))
    data_paths = [shard_path(prefix, i, num_shards) for i in range(num_shards)]
    with atomic_write(data_paths[0]) as f:
        offset = 0
        for name in sorted(arrays, key=lambda n: n.encode("utf-8")):
            array = arrays[name]
            raw = array.reshape(-1).view(np.uint8)
            crc = _sstable.crc32c(raw.tobytes()) if raw.size else 0
            f.write(raw.data)
            entries.append((name.encode("utf-8"), _entry_proto(array, offset, crc)))
            offset += array.nbytes
        index = _sstable.write_table(entries)  # built before the data file is renamed in
    for extra in data_paths[1:]:  # the empty second shard
        with atomic_write(extra):
            pass
    with atomic_write(prefix + ".index") as f:  # the switch
        f.write(index)
    _remove_leftovers(prefix, keep=set(data_paths))
    folder = os.path.dirname(os.path.abspath(prefix))
    with atomic_write(os.path.join(folder, "checkpoint"), text=True) as f:
        base = os.path.basename(prefix)
        f.write(f'model_checkpoint_path: "{base}"\nall_model_checkpoint_paths: "{base}"\n')


def save_tf_checkpoint(
    prefix: str, params: Mapping[str, Any], state: Mapping[str, Any] | None = None
) -> list[str]:
    """Writes ``(params, state)`` as a TensorFlow checkpoint at ``prefix``
    (``prefix.index``, its data shard, and a ``checkpoint`` file beside them), which
    ``tf.train.load_checkpoint``, tensorpack's ``SmartInit`` and ``tp.checkpoint.load`` read.
    Every dtype is kept. Atomic, also when replacing (see ``write_tf_checkpoint``).

    Args:
        prefix: the checkpoint prefix (``'train_log/model-5000'``); a trailing ``.index`` is
            dropped.
        params: the model's params, or one flat ``{tensorpack name: array}`` (as
            ``tp.checkpoint.flatten(params, state)`` or ``load`` returns), optimizer slots
            included.
        state: the model's state (EMA statistics).

    Returns:
        The names written.

    Example:
        >>> import os, tempfile, numpy as np, tpflax as tp
        >>> prefix = os.path.join(tempfile.mkdtemp(), 'model-1')
        >>> tp.checkpoint.save_tf_checkpoint(prefix, {'fc': {'W': np.ones((2, 3), np.float32)}})
        ['fc/W']
        >>> tp.checkpoint.load(prefix)['fc/W'].shape
        (2, 3)
    """
    flat = flatten(params, state or {})
    write_tf_checkpoint(_prefix(prefix), flat)
    return sorted(flat)


def _prefix(path: str) -> str:
    path = os.fspath(path)
    return path[: -len(".index")] if path.endswith(".index") else path


def _write(path: str, flat: Mapping[str, Any], *, overwrite: bool = False) -> None:
    refuse_existing(FORMAT, path, overwrite)
    write_tf_checkpoint(_prefix(path), flat)


def _tf_target(path: str) -> bool:
    name = target_name(path)
    return name.endswith((".index", ".ckpt")) or name.startswith("model-")


FORMAT = Format(
    name="tf",
    description=(
        "a TensorFlow checkpoint (its prefix, .index file, or a directory with a 'checkpoint' file)"
    ),
    detect=is_tf_checkpoint,
    read=read_tf_checkpoint,
    write=_write,
    names_target=_tf_target,
    target_rule=(
        "*.index, *.ckpt or a name starting with model- is a TensorFlow checkpoint prefix"
    ),
    exists=lambda path: os.path.exists(_prefix(path) + ".index"),
)
