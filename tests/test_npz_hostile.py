"""Crafted .npz files end in FormatError before anything large is allocated (issue 13):
a central directory whose stated member count disagrees with its entries (one flipped bit
makes members vanish), a header claiming far more data than the file holds, members that
are no .npy, a member claiming more bytes than it stores."""

from __future__ import annotations

import io
import pathlib
import re
import struct
import zipfile

import numpy as np
import pytest

import tpflax as tp
from tpflax.checkpoint import FormatError

# Advice to unpickle (NumPy's "load it unsafely using the `allow_pickle=` keyword"): no
# message of tpflax's may give it (SECURITY.md).
UNSAFE_ADVICE = re.compile(r"allow_pickle|pickle\.loads?\(|unsafely", re.I)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    return buf.getvalue()


def _zip(path, members: dict[str, bytes], method=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_a_member_count_that_disagrees_with_the_directory(tmp_path) -> None:
    path = tmp_path / "two.npz"
    _zip(path, {"a.npy": _npy(np.ones(3)), "b.npy": _npy(np.zeros(2))})
    assert sorted(tp.checkpoint.load(str(path))) == ["a", "b"]
    raw = bytearray(path.read_bytes())
    at = raw.rfind(b"PK\x05\x06")
    raw[at + 10 : at + 12] = struct.pack("<H", 3)  # the record now states 3 members
    raw[at + 8 : at + 10] = struct.pack("<H", 3)
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"states 3 members but lists 2"):
        tp.checkpoint.load(str(path))


def test_a_header_claiming_a_terabyte_is_refused_without_allocating(tmp_path) -> None:
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    path = tmp_path / "huge.npz"
    _zip(path, {"W.npy": buf.getvalue() + b"\0" * 64})
    with pytest.raises(FormatError, match=r"claims shape \[1000000, 1000000\] .* more than"):
        tp.checkpoint.load(str(path))


def test_members_that_are_not_npy_arrays(tmp_path) -> None:
    path = tmp_path / "text.npz"
    _zip(path, {"a.npy": _npy(np.ones(3)), "README.txt": b"hello"})
    with pytest.raises(FormatError, match=r"member 'README.txt' is not a \.npy array"):
        tp.checkpoint.load(str(path))


def test_a_member_claiming_more_than_it_can_hold(tmp_path) -> None:
    path = tmp_path / "zeros.npz"  # genuine zeros compress about 1000:1 and still load
    _zip(path, {"W.npy": _npy(np.zeros((1000, 1000), np.float32))}, zipfile.ZIP_DEFLATED)
    assert tp.checkpoint.load(str(path))["W"].shape == (1000, 1000)
    path = tmp_path / "bomb.npz"
    _zip(path, {"W.npy": _npy(np.zeros(4, np.float32))})
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")  # the central directory entry: claim 10**9 bytes
    raw[at + 24 : at + 28] = struct.pack("<I", 10**9)
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"claims 1000000000 bytes from \d+ stored"):
        tp.checkpoint.load(str(path))


@pytest.mark.parametrize("name", ["../evil", "/abs", "a//b", "a/./b", "nul\x00"])
def test_names_with_dot_dot_absolute_or_empty_parts_are_refused(tmp_path, name) -> None:
    """Such a name never names a tensorpack variable; it would also be a path trick for any
    tool that maps names to files (zipfile cuts a name at NUL, which leaves no .npy)."""
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z, z.open(name + ".npy", "w") as f:
        np.lib.format.write_array(f, np.zeros(2, np.float32))
    with pytest.raises(FormatError, match=r"variable name .* is |is not a \.npy array"):
        tp.checkpoint.load(str(path))


def test_a_member_stored_twice_is_refused(tmp_path) -> None:
    """Two members with one name: zipfile would quietly pick the last."""
    import warnings

    path = tmp_path / "dup.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "w") as z:
            for value in (1.0, 2.0):
                with z.open("w.npy", "w") as f:
                    np.lib.format.write_array(f, np.full(2, value, np.float32))
    with pytest.raises(FormatError, match=r"holds 'w' twice$"):
        tp.checkpoint.load(str(path))


def _npy_header(path, shape, tail: bytes = b"\0" * 64) -> None:
    """A bare .npy file: its header claims ``shape`` of float32, followed by ``tail``."""
    with open(path, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(tail)


def test_a_single_npy_named_npz_is_a_format_error(tmp_path) -> None:
    """np.load returns a bare array for it, which has no members to check (a TypeError
    before issue 18)."""
    path = tmp_path / "single.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(3.0))
    with pytest.raises(FormatError, match=r"single\.npz: a single \.npy array \(np\.save\)"):
        tp.checkpoint.load(str(path))


def test_a_single_npy_claiming_a_terabyte_is_refused_without_allocating(tmp_path) -> None:
    """Shape (10**12,): np.load would try to allocate 3.64 TiB (a MemoryError before)."""
    path = tmp_path / "huge.npz"
    _npy_header(path, (10**12,))
    with pytest.raises(FormatError, match=r"huge\.npz: a single \.npy array"):
        tp.checkpoint.load(str(path))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"hello\n", r"not a zip archive \(it starts with b'hello\\n'"),
        (b"", r"not a zip archive \(it is empty"),
        (b"\x80\x04\x95 a pickle stream", r"not a zip archive \(it starts with b'\\x80"),
    ],
    ids=["text", "empty", "pickle-stream"],
)
def test_a_file_that_is_not_a_zip_is_never_called_a_pickle(tmp_path, content, match) -> None:
    """np.load takes anything that is neither a zip nor a .npy for a pickle and suggests
    ``allow_pickle=``: a wrong diagnosis, and advice SECURITY.md forbids."""
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=r"junk\.npz: not a valid \.npz file: " + match) as e:
        tp.checkpoint.load(str(path))
    assert "pickle" not in str(e.value).replace("a pickle stream", "")


def test_a_pickled_member_message_does_not_suggest_unpickling(tmp_path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError, match=r"'w' is a pickled object array") as e:
        tp.checkpoint.load(str(path))
    assert not UNSAFE_ADVICE.search(str(e.value)), str(e.value)


def test_no_message_in_the_package_suggests_unpickling() -> None:
    """Every string tpflax can print comes from its source: none may name ``allow_pickle``
    except to pass ``False``, nor ``pickle.load``, nor loading "unsafely"."""
    src = pathlib.Path(tp.__file__).parent
    offenders = []
    for path in sorted(src.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if UNSAFE_ADVICE.search(line.replace("allow_pickle=False", "")):
                offenders.append(f"{path.relative_to(src)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
