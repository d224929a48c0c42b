"""The variables of the 'many' checkpoint fixture (NumPy only): tools/golden/weights.py has
TensorFlow's Saver write them, the tests regenerate them to compare."""

from __future__ import annotations

import numpy as np


def many_values() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(5)
    out = {}
    for g, blocks in enumerate((3, 4, 6, 3)):
        for b in range(blocks):
            for c in ("conv1", "conv2", "conv3"):
                for v in ("W", "bn/beta", "bn/gamma", "bn/mean/EMA", "bn/variance/EMA"):
                    shape = (3, 3, 2, 2) if v == "W" else (2,)
                    out[f"group{g}/block{b}/{c}/{v}"] = rng.randn(*shape).astype("float32")
    out["global_step"] = np.array(7, "int64")
    return out
