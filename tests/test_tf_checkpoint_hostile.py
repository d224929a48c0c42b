"""Crafted TensorFlow checkpoint indexes end in FormatError, quickly, without allocating what
a header claims: a tensor named twice, 3,000 index handles pointing at one block, wrongly
typed protobuf fields, non-UTF-8 names, absurd or negative shapes, tensors past their
shard's end."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

import tpflax as tp
from tpflax.checkpoint import FormatError, _sstable
from tpflax.checkpoint._sstable import field_bytes, field_varint


def _emit(out: bytearray, contents: bytes) -> bytes:
    offset = len(out)
    out.extend(contents + b"\x00")
    out.extend(struct.pack("<I", _sstable.mask(_sstable.crc32c(contents + b"\x00"))))
    return _sstable.varint(offset) + _sstable.varint(len(contents))


def raw_table(blocks: list[list[tuple[bytes, bytes]]], handles: list[int] | None = None) -> bytes:
    """A table with these data blocks, checksums valid but no other rule enforced;
    ``handles`` lists which block each index entry names (default: each once, in order)."""
    out = bytearray()
    emitted = [_emit(out, _sstable._finish_block(b)) for b in blocks]
    order = range(len(blocks)) if handles is None else handles
    index = [(b"k%06d" % i, emitted[j]) for i, j in enumerate(order)]
    meta = _emit(out, _sstable._finish_block([]))
    footer = (meta + _emit(out, _sstable._finish_block(index))).ljust(40, b"\x00")
    return bytes(out + footer + struct.pack("<Q", _sstable.MAGIC))


HEADER = (b"", field_varint(1, 1))  # one shard, little-endian


def tensor(dtype: int = 1, dims: tuple[int, ...] = (2,), offset: int = 0, size: int = 8) -> bytes:
    shape = b"".join(field_bytes(2, field_varint(1, d)) for d in dims)
    return (
        field_varint(1, dtype)
        + field_bytes(2, shape)
        + field_varint(4, offset)
        + field_varint(5, size)
        + field_varint(6, 0)
    )


def checkpoint(tmp_path, entries: list[tuple[bytes, bytes]], data: bytes = b"\0" * 8, **kw):
    prefix = str(tmp_path / "model")
    with open(prefix + ".index", "wb") as f:
        f.write(raw_table([[HEADER, *entries]], **kw))
    with open(prefix + ".data-00000-of-00001", "wb") as f:
        f.write(data)
    return prefix


def test_the_raw_builder_makes_readable_checkpoints(tmp_path) -> None:
    """The crafted files below differ from a valid one only by what each test breaks."""
    value = np.arange(2, dtype=np.float32)
    prefix = str(tmp_path / "model")
    with open(prefix + ".index", "wb") as f:
        crc = _sstable.mask(_sstable.crc32c(value.tobytes()))
        entry = tensor()[: -len(field_varint(6, 0))] + field_varint(6, crc)
        f.write(raw_table([[HEADER, (b"w", entry)]]))
    with open(prefix + ".data-00000-of-00001", "wb") as f:
        f.write(value.tobytes())
    np.testing.assert_array_equal(tp.checkpoint.load(prefix)["w"], value)


def test_a_tensor_named_twice_is_an_error(tmp_path) -> None:
    prefix = checkpoint(tmp_path, [(b"w", tensor()), (b"w", tensor(offset=4, size=4, dims=(1,)))])
    with pytest.raises(FormatError, match=r"key b'w' is repeated or out of order"):
        tp.checkpoint.load(prefix)


def test_keys_out_of_order_are_an_error(tmp_path) -> None:
    prefix = checkpoint(tmp_path, [(b"b", tensor()), (b"a", tensor())])
    with pytest.raises(FormatError, match="repeated or out of order"):
        tp.checkpoint.load(prefix)


def test_many_index_handles_on_one_block_end_quickly(tmp_path) -> None:
    """3,000 handles naming one 3,000-entry block would be 9,000,000 entries to walk."""
    block = [HEADER] + [(b"t%05d" % i, tensor()) for i in range(3000)]
    prefix = str(tmp_path / "model")
    with open(prefix + ".index", "wb") as f:
        f.write(raw_table([block], handles=[0] * 3000))
    start = time.perf_counter()
    with pytest.raises(FormatError, match="overlapping or repeated data blocks"):
        tp.checkpoint.load(prefix)
    assert time.perf_counter() - start < 5  # a hang guard, not a speed test


def test_prefix_sharing_cannot_make_work_grow_faster_than_the_file() -> None:
    """Each entry shares its whole previous key and adds one byte: keys grow to the block's
    length, so rebuilding them is quadratic; the key budget stops it."""
    body = bytearray()
    n = 70_000
    for i in range(n):
        body += _sstable.varint(i) + _sstable.varint(1) + _sstable.varint(0) + b"a"
    block = bytes(body) + struct.pack("<I", 0) + struct.pack("<I", 1)
    with pytest.raises(FormatError, match=r"key longer than|more key bytes"):
        list(_sstable._entries(block, "data", [64 * len(block) + (1 << 24)]))


@pytest.mark.parametrize(
    "value, match",
    [
        (field_bytes(1, b"x") + tensor()[2:], "field 1 should be an integer"),
        (field_varint(1, 1) + field_varint(2, 7), "field 2 should be a message"),
        (tensor(dims=(2**64 - 1,)), "shape dimension .* is not a valid size"),
        (tensor(dims=(10**6, 10**6), size=4 * 10**12), "claims bytes 0..4000000000000"),
        (tensor(size=9), "has 9 bytes for shape"),
    ],
    ids=["dtype-as-bytes", "shape-as-int", "negative-dim", "huge-shape", "size-mismatch"],
)
def test_malformed_fields_are_format_errors(tmp_path, value, match) -> None:
    prefix = checkpoint(tmp_path, [(b"w", value)])
    with pytest.raises(FormatError, match=match):
        tp.checkpoint.load(prefix)


def test_non_utf8_names_and_bad_headers_are_format_errors(tmp_path) -> None:
    with pytest.raises(FormatError, match="is not UTF-8"):
        tp.checkpoint.load(checkpoint(tmp_path, [(b"\xff\xfe", tensor())]))
    prefix = str(tmp_path / "zero")
    with open(prefix + ".index", "wb") as f:
        f.write(raw_table([[(b"", field_varint(1, 0))]]))
    with pytest.raises(FormatError, match="0 shards is not a valid count"):
        tp.checkpoint.load(prefix)


def test_a_state_file_that_is_not_utf8_is_a_format_error(tmp_path) -> None:
    """The directory form reads the ``checkpoint`` state file (a UnicodeDecodeError before
    issue 18)."""
    (tmp_path / "checkpoint").write_bytes(b'model_checkpoint_path: "m\xff\xfe"\n')
    with pytest.raises(FormatError, match=r"checkpoint: not UTF-8 text \(byte 25 is b'\\xff'\)"):
        tp.checkpoint.load(str(tmp_path))
    with pytest.raises(FormatError, match=r"checkpoint: not UTF-8 text"):
        tp.checkpoint.load(str(tmp_path / "checkpoint"))


def test_a_huge_state_file_is_refused_unread(tmp_path) -> None:
    (tmp_path / "checkpoint").write_bytes(b"#" * ((1 << 20) + 1))
    with pytest.raises(FormatError, match=r"checkpoint: over 1048576 bytes"):
        tp.checkpoint.load(str(tmp_path))


def test_a_state_file_without_a_path_line(tmp_path) -> None:
    (tmp_path / "checkpoint").write_text("all_model_checkpoint_paths: 'x'\n")
    with pytest.raises(FormatError, match=r"checkpoint: no model_checkpoint_path line"):
        tp.checkpoint.load(str(tmp_path))


def test_tensors_sharing_their_bytes_cannot_claim_more_than_the_budget(tmp_path) -> None:
    """Every tensor's bytes lie inside the shard and pass their CRC, but 2,000 tensors name
    the same 1 MiB: 2 GiB claimed from a 1.1 MB checkpoint (SECURITY.md's budget: 256x the
    bytes on disk, at least 1 GiB) is refused before anything is allocated."""
    data = np.zeros(1 << 18, np.float32).tobytes()  # 1 MiB
    crc = _sstable.mask(_sstable.crc32c(data))
    entry = tensor(dims=(1 << 18,), size=len(data))[: -len(field_varint(6, 0))]
    entry += field_varint(6, crc)
    prefix = checkpoint(tmp_path, [(b"t%05d" % i, entry) for i in range(2000)], data=data)
    with pytest.raises(FormatError, match=r"model: its arrays claim 2097152000 bytes, more th"):
        tp.checkpoint.load(prefix)
    (tmp_path / "few").mkdir()
    few = checkpoint(tmp_path / "few", [(b"t%05d" % i, entry) for i in range(3)], data=data)
    assert sorted(tp.checkpoint.load(few)) == ["t00000", "t00001", "t00002"]
