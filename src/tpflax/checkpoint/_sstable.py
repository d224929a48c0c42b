"""The sorted string table behind a TensorFlow checkpoint's ``.index`` file (LevelDB's table
format, as TensorFlow's ``tensorflow/core/lib/io/table`` writes it), and protobuf's wire
format for the small messages stored in it. Reading and writing, no TensorFlow.

A table is data blocks, a meta-index block, an index block and a 48-byte footer. A block is
entries ``(shared key bytes, unshared key bytes, value length, key suffix, value)``, then a
restart array of uint32 offsets and its count; on disk each block is followed by a one-byte
compression type and a masked CRC-32C of the block and that byte.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from tpflax._src.wire import crc32c, mask, unmask, varint
from tpflax.checkpoint.errors import FormatError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48


# ----------------------------------------------------------------------------- varints
def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decodes a base-128 varint at ``pos``; returns ``(value, next position)``."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise FormatError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


# ----------------------------------------------------------------------------- protobuf
def parse_message(buf: bytes) -> dict[int, list[int | bytes]]:
    """Protobuf wire format to ``{field number: [values]}``: varints and fixed ints as
    ``int``, length-delimited fields as ``bytes`` (nested messages are parsed by the caller)."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise FormatError("truncated fixed64 field")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise FormatError("truncated length-delimited field")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise FormatError("truncated fixed32 field")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise FormatError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(value)) + value


def field_fixed32(number: int, value: int) -> bytes:
    return varint((number << 3) | 5) + struct.pack("<I", value)


# ----------------------------------------------------------------------------- reading
def _block(data: bytes, offset: int, size: int, what: str) -> bytes:
    end = offset + size
    if end + 5 > len(data):
        raise FormatError(f"{what} block runs past the end of the file (truncated?)")
    contents = data[offset:end]
    kind = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if unmask(stored) != crc32c(data[offset : end + 1]):
        raise FormatError(f"{what} block has a bad checksum (the file is corrupt)")
    if kind != 0:
        raise FormatError(
            f"{what} block is compressed (type {kind}); only uncompressed tables, which "
            "TensorFlow writes for checkpoints, are supported"
        )
    return contents


MAX_KEY = 1 << 16  # bytes in one key (a tensor name); TensorFlow's are far shorter


def _entries(block: bytes, what: str, budget: list[int]) -> Iterator[tuple[bytes, bytes]]:
    """The entries of one block. ``budget`` (``[bytes]``, shared by the whole table) bounds
    the key bytes rebuilt from prefix sharing, so a crafted block cannot make the work grow
    faster than the file."""
    if len(block) < 4:
        raise FormatError(f"{what} block is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise FormatError(f"{what} block has a bad restart count")
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        length, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + length > limit:
            raise FormatError(f"{what} block has a bad entry")
        if shared + unshared > MAX_KEY:
            raise FormatError(f"{what} block has a key longer than {MAX_KEY} bytes")
        budget[0] -= shared + unshared
        if budget[0] < 0:
            raise FormatError(f"{what} block rebuilds more key bytes than its file can hold")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + length]
        pos += length


def read_table(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every ``(key, value)`` of a table file's contents, in key order.

    Work is bounded by the file's size: each data block may be named once by the index,
    blocks may not overlap, and keys must be strictly increasing (a key twice is an error,
    not a silent pick of one of its values)."""
    if len(data) < FOOTER_SIZE:
        raise FormatError("too short to be a table (truncated?)")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != MAGIC:
        raise FormatError("bad magic number (not a TensorFlow checkpoint index, or truncated)")
    pos = 0
    _meta_offset, pos = read_varint(footer, pos)
    _meta_size, pos = read_varint(footer, pos)
    index_offset, pos = read_varint(footer, pos)
    index_size, pos = read_varint(footer, pos)
    index = _block(data, index_offset, index_size, "index")
    budget = [64 * len(data) + (1 << 24)]
    end_of_previous = 0
    previous: bytes | None = None
    for _, handle in _entries(index, "index", budget):
        offset, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        if offset < end_of_previous:
            raise FormatError("the index names overlapping or repeated data blocks")
        if offset + size + 5 > index_offset:
            raise FormatError("the index names a data block past the index block")
        end_of_previous = offset + size + 5
        for key, value in _entries(_block(data, offset, size, "data"), "data", budget):
            if previous is not None and key <= previous:
                raise FormatError(
                    f"key {key[:80]!r} is repeated or out of order (a table's keys are unique "
                    "and sorted)"
                )
            previous = key
            yield key, value


# ----------------------------------------------------------------------------- writing
def _finish_block(entries: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray()
    restarts = []
    for key, value in entries:  # a restart at every entry: no key sharing, always valid
        restarts.append(len(out))
        out += varint(0) + varint(len(key)) + varint(len(value)) + key + value
    if not restarts:
        restarts = [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def write_table(entries: list[tuple[bytes, bytes]], block_size: int = 1 << 16) -> bytes:
    """A table file holding ``entries`` (sorted by key, as TensorFlow requires)."""
    keys = [k for k, _ in entries]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("write_table: keys must be unique and sorted")
    out = bytearray()
    index: list[tuple[bytes, bytes]] = []

    def emit(contents: bytes) -> bytes:
        offset = len(out)
        out.extend(contents + b"\x00")
        out.extend(struct.pack("<I", mask(crc32c(contents + b"\x00"))))
        return varint(offset) + varint(len(contents))

    chunk: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in entries:
        chunk.append((key, value))
        size += len(key) + len(value) + 8
        if size >= block_size:
            index.append((key, emit(_finish_block(chunk))))
            chunk, size = [], 0
    if chunk:
        index.append((chunk[-1][0], emit(_finish_block(chunk))))
    meta = emit(_finish_block([]))
    index_handle = emit(_finish_block(index))
    footer = (meta + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    out.extend(footer)
    return bytes(out)
