"""Host memory for XLA:CPU's buffers: large freed blocks kept for the next call
(the native part is ``csrc/host_blocks.cc``).

XLA:CPU allocates a program's temporaries (one block per call: 990 MB for a ResNet-50
training step at batch 8) and its outputs with ``posix_memalign`` and releases them with
``free``, every call. glibc serves each large block with its own ``mmap`` and unmaps it on
``free``, so every call faults every page in again and the kernel zeroes each one. Measured on
this project's 2-core AMD EPYC (``benchmarks/RESULTS.md``, 2026-12-03): 252,000 page faults
and 0.56-0.65 s of system time per ResNet-50 training step, 27,000 per inference. TensorFlow
keeps such blocks in its own allocator.

When ``tpflax`` is imported, :func:`configure` points jaxlib's (``libjax_common.so``)
``posix_memalign`` and ``free`` at a small cache: a block glibc mapped for itself, of at least
1 MiB, is kept when freed and handed to the next request it fits (at most twice the size
asked), up to a capacity, the oldest kept blocks released past it. Nothing else changes: other
libraries, smaller blocks and glibc's own heap are untouched, and every block is still one
glibc allocated. Then a ResNet-50 training step faults about 50 pages instead of 252,000, and
compile times are unchanged (glibc's ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0``, which also
keeps the blocks, made XLA's compiles 30-40% slower: one arena for every thread).

The capacity is an eighth of the machine's memory by default; ``TPFLAX_HOST_CACHE_MB`` sets it
in MiB, and ``0`` turns the cache off. Without the built library (``setup.py``, needs g++ and
x86-64), on another C library than glibc, or on another jaxlib layout, host memory stays
glibc's and ``tpflax --version`` says why.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from tpflax._src import utils

JAXLIB_LIBRARY = b"libjax_common"  # where XLA:CPU's allocations are made
MIN_BLOCK = 1 << 20

_status = "not configured"
_lib: ctypes.CDLL | None = None


def capacity_bytes(setting: str | None, physical: int) -> int:
    """The cache's capacity: ``TPFLAX_HOST_CACHE_MB`` (``setting``) in MiB, else an eighth of
    ``physical`` bytes; 0 turns it off."""
    if setting in (None, ""):
        return physical // 8
    try:
        mib = int(setting)
    except ValueError:
        mib = -1
    if mib < 0:
        raise ValueError(f"TPFLAX_HOST_CACHE_MB: expected a whole number of MiB, got {setting!r}")
    return mib << 20


def library_path() -> Path | None:
    """The built cache (``tpflax/_host_blocks*.so``), or ``None``."""
    return utils.native_library("_host_blocks")


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _is_glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except OSError:
        return False


def configure() -> str:
    """Installs the cache once per process (see the module doc); returns :func:`describe`."""
    global _status, _lib
    if _status != "not configured":
        return _status
    capacity = capacity_bytes(os.environ.get("TPFLAX_HOST_CACHE_MB"), _physical_memory())
    path = library_path()
    if capacity == 0:
        _status = "glibc's (TPFLAX_HOST_CACHE_MB=0)"
    elif path is None:
        _status = "glibc's (the native cache was not built at install time: it needs g++ on x86-64)"
    elif not _is_glibc():
        _status = "the system's allocator (not glibc)"
    else:
        lib = ctypes.CDLL(str(path))
        install = lib.tpflax_host_blocks_install
        install.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
        install.restype = ctypes.c_int
        patched = install(JAXLIB_LIBRARY, MIN_BLOCK, capacity)
        if patched > 0:
            _lib = lib
            _status = (
                f"XLA's freed blocks from {MIN_BLOCK >> 20} MiB kept for reuse, up to "
                f"{capacity >> 20} MiB"
            )
        else:
            _status = "glibc's (jaxlib's allocation calls were not found)"
    return _status


def installed() -> bool:
    """Whether the cache is installed in this process."""
    return _lib is not None


def describe() -> str:
    """What host memory does in this process, for ``tpflax --version``."""
    return _status


def set_enabled(on: bool) -> None:
    """Turns the installed cache on or off (off releases every kept block), for benchmarks
    that compare the two in one process; nothing when it is not installed."""
    if _lib is not None:
        _lib.tpflax_host_blocks_enable(int(on))


def stats() -> dict[str, int]:
    """The cache's counters: requests of at least 1 MiB it served (``hits``) and passed to
    glibc (``misses``), and the bytes it holds now (``kept``); zeros when it is off."""
    if _lib is None:
        return {"hits": 0, "misses": 0, "kept": 0}
    values = [ctypes.c_uint64() for _ in range(3)]
    _lib.tpflax_host_blocks_stats(*(ctypes.byref(v) for v in values))
    return dict(zip(("hits", "misses", "kept"), (v.value for v in values), strict=True))
