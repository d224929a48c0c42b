"""tp.checkpoint.load / save_npz / save_tf_checkpoint: round trips, and every kind of broken
file giving one clear error (never a crash from inside numpy, never a half-written output)."""

from __future__ import annotations

import logging
import os
import pathlib
import shutil

import ml_dtypes
import numpy as np
import pytest

import tpflax as tp
from tpflax.checkpoint import FormatError, _sstable, _tf_checkpoint

FLAT = {
    "conv0/W": np.arange(24, dtype=np.float32).reshape(2, 3, 1, 4),
    "bn/mean/EMA": np.array([0.5, -1.0], np.float32),
    "half": np.array([1.5, 2.0], np.float16),
    "brain": np.array([1.0, -3.0], ml_dtypes.bfloat16),
    "global_step": np.array(7, np.int64),
    "flags": np.array([True, False]),
    "empty": np.zeros((0, 3), np.float32),
}


def _tf(tmp_path, flat=FLAT):
    prefix = str(tmp_path / "model-7")
    tp.checkpoint.save_tf_checkpoint(prefix, flat)
    return prefix


def test_tf_checkpoint_round_trip_keeps_dtypes_and_shapes(tmp_path) -> None:
    prefix = _tf(tmp_path)
    for where in (prefix, prefix + ".index", str(tmp_path)):
        got = tp.checkpoint.load(where)
        assert sorted(got) == sorted(FLAT)
        for name, want in FLAT.items():
            assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
            np.testing.assert_array_equal(got[name], want)


def test_npz_round_trip_with_and_without_suffix(tmp_path) -> None:
    params = {"conv0": {"W": FLAT["conv0/W"]}}
    state = {"bn": {"mean": {"EMA": FLAT["bn/mean/EMA"]}}}
    path = str(tmp_path / "w.npz")
    assert tp.checkpoint.save_npz(path, params, state) == ["bn/mean/EMA", "conv0/W"]
    with np.load(path) as data:
        assert sorted(data.files) == ["bn/mean/EMA:0", "conv0/W:0"]
    np.savez(tmp_path / "plain.npz", **{"conv0/W": FLAT["conv0/W"]})
    for p in (path, str(tmp_path / "plain.npz")):
        np.testing.assert_array_equal(tp.checkpoint.load(p)["conv0/W"], FLAT["conv0/W"])


def test_save_npz_casts_floats_to_float32_by_default(tmp_path) -> None:
    path = str(tmp_path / "w.npz")
    tp.checkpoint.save_npz(path, {"a": np.ones(2, np.float16), "b": np.ones(2, ml_dtypes.bfloat16)})
    flat = tp.checkpoint.load(path)
    assert flat["a"].dtype == np.float32 and flat["b"].dtype == np.float32
    tp.checkpoint.save_npz(path, {"a": np.ones(2, np.float16)}, dtype=None)
    assert tp.checkpoint.load(path)["a"].dtype == np.float16


# ------------------------------------------------------------------ bad input
def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file or checkpoint: /nope/model"):
        tp.checkpoint.load("/nope/model")
    with pytest.raises(FileNotFoundError, match=r"no such file or checkpoint"):
        tp.checkpoint.restore("/nope/w.npz", {})


def test_not_a_weight_file(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FormatError, match=r"not a weight file tpflax reads"):
        tp.checkpoint.load(str(tmp_path / "notes.txt"))


def test_truncated_npz(tmp_path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, w=np.ones(1000, np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"w.npz: not a valid .npz file \(truncated or corrupt"):
        tp.checkpoint.load(str(path))


def test_corrupt_npz_member(tmp_path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, w=np.zeros(1000, np.float32))
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # inside the array's bytes: the zip member's CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"not a valid .npz file .*(CRC|corrupt)"):
        tp.checkpoint.load(str(path))


def test_pickled_objects_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError, match=r"'w' is a pickled object array; tpflax refuses"):
        tp.checkpoint.load(str(path))


def test_string_arrays_are_skipped_with_a_note(tmp_path, caplog) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, w=np.ones(2, np.float32), label=np.array(["cat", "dog"]))
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        flat = tp.checkpoint.load(str(path))
    assert list(flat) == ["w"]
    assert "skipped 'label' of dtype <U3" in caplog.text


def test_string_tensor_in_tf_checkpoint_is_skipped(tmp_path, caplog) -> None:
    prefix = _tf(tmp_path, {"w": np.ones(2, np.float32)})
    index = prefix + ".index"
    entries = list(_sstable.read_table(pathlib.Path(index).read_bytes()))
    string_entry = _sstable.field_varint(1, 7) + _sstable.field_bytes(2, b"")
    entries.append((b"words", string_entry))
    pathlib.Path(index).write_bytes(_sstable.write_table(sorted(entries)))
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        flat = tp.checkpoint.load(prefix)
    assert list(flat) == ["w"] and "skipped tensor 'words' of dtype string" in caplog.text


def test_index_with_a_bad_checksum(tmp_path) -> None:
    prefix = _tf(tmp_path)
    index = pathlib.Path(prefix + ".index")
    data = bytearray(index.read_bytes())
    data[30] ^= 0x01  # inside the first data block
    index.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"model-7.index: data block has a bad checksum"):
        tp.checkpoint.load(prefix)


def test_truncated_index(tmp_path) -> None:
    prefix = _tf(tmp_path)
    index = pathlib.Path(prefix + ".index")
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(FormatError, match=r"bad magic number .*truncated"):
        tp.checkpoint.load(prefix)


def test_corrupt_and_truncated_data_shard(tmp_path) -> None:
    prefix = _tf(tmp_path)
    shard = pathlib.Path(prefix + ".data-00000-of-00001")
    original = shard.read_bytes()
    data = bytearray(original)
    data[5] ^= 0x10
    shard.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"tensor '.*' fails its CRC-32C check"):
        tp.checkpoint.load(prefix)
    shard.write_bytes(original[:10])
    with pytest.raises(
        FormatError, match=r"claims bytes 8..12 of a 10-byte data shard \(truncated"
    ):
        tp.checkpoint.load(prefix)


def test_missing_data_shard(tmp_path) -> None:
    prefix = _tf(tmp_path)
    os.remove(prefix + ".data-00000-of-00001")
    with pytest.raises(FileNotFoundError, match=r"data shard .*model-7.data-00000-of-00001 is"):
        tp.checkpoint.load(prefix)


def _rewrite_index(prefix: str, num_shards: int, shard_id: int) -> None:
    entries = []
    index = pathlib.Path(prefix + ".index")
    for key, value in _sstable.read_table(index.read_bytes()):
        if key == b"":
            value = _sstable.field_varint(1, num_shards)
        elif shard_id:
            value = value + _sstable.field_varint(3, shard_id)
        entries.append((key, value))
    index.write_bytes(_sstable.write_table(entries))


def test_wrong_shard_count(tmp_path) -> None:
    prefix = _tf(tmp_path)
    _rewrite_index(prefix, num_shards=2, shard_id=0)  # the data file is "-of-00001"
    with pytest.raises(FileNotFoundError, match=r"model-7.data-00000-of-00002 is missing"):
        tp.checkpoint.load(prefix)
    shutil.rmtree(tmp_path)
    os.makedirs(tmp_path)
    prefix = _tf(tmp_path)
    _rewrite_index(prefix, num_shards=1, shard_id=3)
    with pytest.raises(FormatError, match=r"tensor in shard 3 but the header says 1 shard"):
        tp.checkpoint.load(prefix)


def test_no_partial_output_on_failure(tmp_path) -> None:
    target = tmp_path / "w.npz"
    with pytest.raises(ValueError, match=r"'a/' is not a valid variable name"):
        tp.checkpoint.save_tf_checkpoint(str(tmp_path / "m"), {"b": np.ones(2), "a/": np.ones(2)})
    with pytest.raises(TypeError, match=r"variable 'z' has dtype complex64"):
        tp.checkpoint.save_tf_checkpoint(
            str(tmp_path / "m"), {"a": np.ones(2), "z": np.ones(2, np.complex64)}
        )
    assert os.listdir(tmp_path) == []
    np.savez(target, old=np.ones(1))
    before = target.read_bytes()

    class Boom:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        tp.checkpoint.save_npz(str(target), {"a": np.ones(2), "b": Boom()})
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["w.npz"]


def test_tf_checkpoint_entry_checks_its_size(tmp_path) -> None:
    prefix = _tf(tmp_path, {"w": np.ones(4, np.float32)})
    _, _, entries = _tf_checkpoint.read_index(prefix)
    assert entries[0].size == 16 and entries[0].shape == (4,)


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from tpflax.checkpoint._io import PROGRESS_MIN_BYTES, Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        with Progress(PROGRESS_MIN_BYTES, "model-5000", stream=stream) as bar:
            bar.update(PROGRESS_MIN_BYTES // 2)
            bar.update(PROGRESS_MIN_BYTES // 2)
    assert "model-5000:" in tty.getvalue() and "100%" in tty.getvalue()
    assert pipe.getvalue() == ""
    small = Tty()
    with Progress(1000, "tiny", stream=small) as bar:
        bar.update(1000)
    assert small.getvalue() == ""


def test_tables_with_many_blocks(tmp_path) -> None:
    """A table split over many data blocks reads back entry for entry (TensorFlow writes one
    block per ~256 KB of index, so large checkpoints have several)."""
    entries = [(f"layer{i:04d}/W".encode(), bytes([i % 251]) * (i % 7)) for i in range(500)]
    data = _sstable.write_table(sorted(entries), block_size=256)
    assert list(_sstable.read_table(data)) == sorted(entries)
