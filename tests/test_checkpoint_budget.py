"""One memory budget for every checkpoint format (SECURITY.md, issue 18): the arrays a file
claims may total at most 256x its bytes on disk, or 1 GiB, whichever is more; checked from
headers and metadata before anything is allocated, by the same function and with the same
message for .npz, TensorFlow checkpoints and orbax."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from test_tf_checkpoint_hostile import checkpoint, tensor

import tpflax as tp
from tpflax.checkpoint import FormatError, _io, _sstable
from tpflax.checkpoint._sstable import field_varint

BUDGET = r"its arrays claim (\d+) bytes, more than the (\d+)-byte budget \(256x its (\d+) bytes"


def deflate_bomb(path, nbytes: int) -> None:
    """A genuine .npz whose one member, ``W``, is ``nbytes`` of float32 zeros, deflated about
    1000:1; streamed, so making it allocates nothing large."""
    header = io.BytesIO()
    shape = (nbytes // 4,)
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("W.npy", "w", force_zip64=True) as f,
    ):
        f.write(header.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(nbytes >> 20):
            f.write(chunk)


def npz_case(tmp_path) -> tuple[str, int]:
    path = tmp_path / "bomb.npz"
    deflate_bomb(path, 16 << 20)
    return str(path), 16 << 20


def tf_case(tmp_path) -> tuple[str, int]:
    """1,000 tensors naming the same 64 KiB of a data shard, each CRC valid."""
    data = np.zeros(1 << 14, np.float32).tobytes()
    entry = tensor(dims=(1 << 14,), size=len(data))[: -len(field_varint(6, 0))]
    entry += field_varint(6, _sstable.mask(_sstable.crc32c(data)))
    return checkpoint(tmp_path, [(b"t%04d" % i, entry) for i in range(1000)], data=data), 1000 << 16


def orbax_case(tmp_path) -> tuple[str, int]:
    path = str(tmp_path / "ckpt")
    tp.checkpoint.save_orbax(path, {"w": np.zeros(4 << 20, np.float32)})  # compressed: ~2 KB
    return path, 16 << 20


CASES = {"npz": npz_case, "tf": tf_case, "orbax": orbax_case}


@pytest.mark.parametrize("fmt", sorted(CASES))
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_budget_for_every_format(tmp_path, monkeypatch, fmt) -> None:
    """Each file claims over 256x its bytes on disk: within the 1 GiB floor it loads, all
    zeros; without the floor each format refuses it with the same message."""
    path, claimed = CASES[fmt](tmp_path)
    assert tp.checkpoint.detect_format(path) == fmt
    flat = tp.checkpoint.load(path)
    assert sum(v.nbytes for v in flat.values()) == claimed
    assert all(not v.any() for v in flat.values())
    monkeypatch.setattr(_io, "BUDGET_FLOOR", 0)
    with pytest.raises(FormatError, match=BUDGET) as e:
        tp.checkpoint.load(path)
    match = re.search(BUDGET, str(e.value))
    assert match is not None
    got, budget, on_disk = (int(n) for n in match.groups())
    assert got == claimed and budget == 256 * on_disk and claimed > budget
    assert str(e.value).startswith(path)


def test_the_issue_18_deflate_bomb_is_within_the_documented_budget(tmp_path, monkeypatch) -> None:
    """A ~520 KB file holding a genuine 512 MiB array: within max(256 x 520 KB, 1 GiB), so it
    is a correct load (about 512 MiB of memory, one copy, SECURITY.md). The same file against
    a 256 MiB floor is refused before anything is inflated, which is what keeps a larger
    bomb out under the default floor."""
    path = tmp_path / "bomb.npz"
    deflate_bomb(path, 512 << 20)
    on_disk = path.stat().st_size
    assert on_disk < 600_000
    assert max(_io.BUDGET_FACTOR * on_disk, _io.BUDGET_FLOOR) >= 512 << 20
    monkeypatch.setattr(_io, "BUDGET_FLOOR", 256 << 20)
    with pytest.raises(FormatError, match=r"bomb\.npz: its arrays claim 536870912 bytes"):
        tp.checkpoint.load(str(path))
