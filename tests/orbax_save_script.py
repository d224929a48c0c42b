"""Saves an orbax checkpoint over the same directory again and again (argv[1]), holding
params(0.0) or params(1.0) by turns, printing `saved N` after each. Killed by
tests/test_orbax_atomic.py at random moments; with argv[2] = a byte count it first limits the
size of any file it writes (RLIMIT_FSIZE), the portable stand-in for a full disk."""

from __future__ import annotations

import resource
import signal
import sys

import numpy as np

from tpflax.checkpoint import save_orbax

NAMES = [f"layer{i}" for i in range(4)]


def params(value: float) -> dict:
    """Incompressible arrays (orbax compresses), the same for the same ``value``."""
    rng = np.random.RandomState(int(value))
    return {n: {"W": rng.rand(250, 250).astype(np.float32) + value} for n in NAMES}


def main() -> None:
    path = sys.argv[1]
    if len(sys.argv) > 2:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG)
        limit = int(sys.argv[2])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    for n in range(1000):
        save_orbax(path, params(float(n % 2)), {}, overwrite=True)
        print(f"saved {n}", flush=True)


if __name__ == "__main__":
    main()
