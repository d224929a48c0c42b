"""Saves a ~24 MB TensorFlow checkpoint over the same prefix again and again (argv[1]), its
tensors all 0.0 or all 1.0 by turns, printing `saved N` after each. Killed by
tests/test_tf_checkpoint_atomic.py at random moments."""

from __future__ import annotations

import sys

import numpy as np

from tpflax.checkpoint import save_tf_checkpoint


def tensors(value: float) -> dict[str, np.ndarray]:
    return {f"layer{i}/W": np.full((1000, 1000), value, np.float32) for i in range(6)}


def main() -> None:
    prefix = sys.argv[1]
    for n in range(1000):
        save_tf_checkpoint(prefix, tensors(float(n % 2)))
        print(f"saved {n}", flush=True)


if __name__ == "__main__":
    main()
