"""File plumbing shared by the checkpoint formats: atomic writes, reads that start again when
a concurrent save replaced the checkpoint, a terminal progress bar (tqdm, as training's), name
checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

from tpflax._src.progress import make_bar
from tpflax.checkpoint.errors import FormatError

T = TypeVar("T")

PROGRESS_MIN_BYTES = 64 << 20  # smaller files load too fast for a bar to help

# What loading may allocate, the same rule for every format (SECURITY.md): the arrays a
# checkpoint claims may total at most BUDGET_FACTOR times its bytes on disk, or BUDGET_FLOOR,
# whichever is more. Checked from the headers and metadata, before any array is allocated.
BUDGET_FACTOR = 256
BUDGET_FLOOR = 1 << 30


def check_budget(path: str, claimed: int, on_disk: int) -> None:
    """Raises ``FormatError`` when arrays claiming ``claimed`` bytes in total exceed the
    allocation budget of a checkpoint of ``on_disk`` bytes (``BUDGET_FACTOR``,
    ``BUDGET_FLOOR``)."""
    budget = max(BUDGET_FACTOR * on_disk, BUDGET_FLOOR)
    if claimed > budget:
        raise FormatError(
            f"{path}: its arrays claim {claimed} bytes, more than the {budget}-byte budget "
            f"({BUDGET_FACTOR}x its {on_disk} bytes on disk, at least {BUDGET_FLOOR}; "
            "see SECURITY.md)"
        )


@contextlib.contextmanager
def atomic_write(path: str, text: bool = False) -> Iterator[IO[Any]]:
    """Writes to a temporary file beside ``path`` (creating missing parent folders) and renames
    it over ``path`` only when the block finishes; on any error the temporary file is removed
    and ``path`` is untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)  # as save_orbax does: parent folders are created
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
        fsync_dir(folder)  # the rename itself survives a crash
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_dir(folder: str) -> None:
    """Makes a rename in ``folder`` durable (where the file system lets a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_stamp(path: str) -> tuple[int, int] | None:
    """``(inode, mtime)`` of ``path``, ``None`` if it is not there: what changes when a save
    replaces it (a rename or a directory exchange puts another inode there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def read_while_replaced(read: Callable[[], T], watched: Callable[[], str]) -> T:
    """``read()``, started again (three tries in all) when the file or folder ``watched()``
    names was replaced under it by a concurrent save: the result is the old checkpoint or
    the new one, never a mix, and an error that is not a replacement is raised as it is."""
    for attempt in range(3):
        target = watched()
        before = file_stamp(target)
        try:
            out = read()
        except (OSError, ValueError):  # FormatError is a ValueError
            if attempt == 2 or file_stamp(target) == before:
                raise  # not a concurrent replacement: a real problem
            continue
        if file_stamp(target) == before:
            return out
    raise FormatError(f"{target}: replaced three times while being read")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Progress:
    """A progress bar (tqdm) on stderr while loading, shown only on a terminal and for large
    files."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.bar = make_bar(
            total,
            desc=label,
            stream=stream,
            enabled=None if total >= PROGRESS_MIN_BYTES else False,  # None: on a terminal
            bytes_=True,
        )

    def __enter__(self) -> Progress:
        return self

    def update(self, n: int) -> None:
        self.bar.update(n)

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()


def name_problem(name: Any) -> str | None:
    """What makes ``name`` unusable as a variable name (``None`` if nothing): not a string,
    empty, an absolute path, an empty, ``.`` or ``..`` component, or a NUL byte."""
    if not isinstance(name, str) or not name:
        return "not a non-empty string"
    if name.startswith("/"):
        return "an absolute path"
    if "\0" in name:
        return "holds a NUL byte"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' component"
    return None


def check_name(name: Any, who: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"{who}: {name!r} is not a valid variable name ({problem})")
