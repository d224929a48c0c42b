"""Deterministic weights for the model-zoo goldens, from a name, a shape and a seed (NumPy
only). tools/golden/zoo.py fills tensorpack's variables with them; the tests regenerate the
same values for tpflax, so only logits and names are committed, not the weights."""

from __future__ import annotations

import zlib

import numpy as np


def value(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.RandomState((zlib.crc32(name.encode()) + seed) % (2**32))
    base = name.split("/")[-2] if name.endswith("/EMA") else name.split("/")[-1]
    if base == "variance":
        return rng.uniform(0.5, 1.5, shape).astype("float32")
    if base == "mean":
        return (rng.randn(*shape) * 0.2).astype("float32")
    if base == "gamma":
        return rng.uniform(0.3, 0.8, shape).astype("float32")
    if base == "W":
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        if len(shape) == 4 and "dconv" in name:  # depthwise [k, k, in, mult]
            fan_in = shape[0] * shape[1]
        return (rng.randn(*shape) / np.sqrt(max(fan_in, 1))).astype("float32")
    return np.asarray(rng.randn(*shape) * 0.1, "float32")


def fill(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    return {name: value(name, tuple(shape), seed) for name, shape in shapes.items()}


def image(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """BGR pixels in [0, 255]."""
    return np.random.RandomState(seed).uniform(0, 255, shape).astype("float32")
