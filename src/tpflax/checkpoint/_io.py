"""File plumbing shared by the checkpoint formats: atomic writes, a terminal progress bar,
name checks."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

PROGRESS_MIN_BYTES = 64 << 20  # smaller files load too fast for a bar to help


@contextlib.contextmanager
def atomic_write(path: str, text: bool = False) -> Iterator[IO[Any]]:
    """Writes to a temporary file beside ``path`` and renames it over ``path`` only when the
    block finishes; on any error the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: directory {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and for large files."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = bool(isatty) and total >= PROGRESS_MIN_BYTES
        self._last = 0.0

    def __enter__(self) -> Progress:
        return self

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            frac = self.done / max(self.total, 1)
            bar = "#" * int(30 * frac)
            self.stream.write(
                f"\r{self.label}: [{bar:<30}] {frac:4.0%} "
                f"{self.done / 2**20:.0f}/{self.total / 2**20:.0f} MiB"
            )
            self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def check_name(name: Any, who: str) -> None:
    if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
        raise ValueError(f"{who}: {name!r} is not a valid variable name")
