"""`make bench`: loading weights with tp.checkpoint.load against plain np.load, side by side.

Writes a synthetic ResNet-50-sized weight file (tensorpack's ImageNet-ResNet50 variable names
and shapes, ~100 MB of float32) as `.npz` and as a TensorFlow checkpoint, then times, in
interleaved rounds:

* np.load + reading every array (the baseline),
* tp.checkpoint.load of the same `.npz`,
* tp.checkpoint.load of the TensorFlow checkpoint (index parsing + CRC-32C of every tensor),

and measures each one's peak extra memory with tracemalloc (NumPy reports its buffers there)
in a separate pass. Targets (issue 4): time within 1.2x of np.load, peak extra memory under
1.5x the file size. Read the ratios; absolute times on this shared machine are noisy.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

import tpflax as tp


def resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """Variable names and shapes of tensorpack's ImageNet ResNet-50 (examples/ResNet)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("beta", "gamma", "mean/EMA", "variance/EMA"):
            shapes[f"{prefix}/bn/{name}"] = (c,)

    shapes["conv0/W"] = (7, 7, 3, 64)
    bn("conv0", 64)
    cin = 64
    for g, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for b in range(blocks):
            p = f"group{g}/block{b}"
            for i, (k, cout) in enumerate(((1, width), (3, width), (1, width * 4)), start=1):
                shapes[f"{p}/conv{i}/W"] = (k, k, cin if i == 1 else width, cout)
                bn(f"{p}/conv{i}", cout)
            if b == 0:
                shapes[f"{p}/convshortcut/W"] = (1, 1, cin, width * 4)
                bn(f"{p}/convshortcut", width * 4)
            cin = width * 4
    shapes["linear/W"] = (2048, 1000)
    shapes["linear/b"] = (1000,)
    return shapes


def write_files(folder: str) -> tuple[str, str, int]:
    rng = np.random.RandomState(0)
    flat = {n: rng.standard_normal(s).astype(np.float32) for n, s in resnet50_shapes().items()}
    npz = os.path.join(folder, "ImageNet-ResNet50.npz")
    np.savez(npz, **{f"{k}:0": v for k, v in flat.items()})
    prefix = os.path.join(folder, "model-5000")
    tp.checkpoint.save_tf_checkpoint(prefix, flat)
    return npz, prefix, os.path.getsize(npz)


def np_load_all(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_extra(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        npz, prefix, size = write_files(folder)
        cases = {
            "np.load (baseline)": lambda: np_load_all(npz),
            "tp.checkpoint.load .npz": lambda: tp.checkpoint.load(npz),
            "tp.checkpoint.load TF checkpoint": lambda: tp.checkpoint.load(prefix),
        }
        for fn in cases.values():  # warm the page cache and imports
            fn()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                times[name].append(timed(fn))
        peaks = {name: peak_extra(fn) for name, fn in cases.items()}
    base = statistics.median(times["np.load (baseline)"])
    print(f"file: {size / 2**20:.1f} MiB (.npz), {len(resnet50_shapes())} tensors")
    print(f"{'':34} {'median':>9} {'vs np.load':>11} {'peak extra memory':>18}")
    for name in cases:
        t = statistics.median(times[name])
        print(
            f"{name:34} {t * 1e3:7.1f}ms {t / base:10.2f}x "
            f"{peaks[name] / 2**20:9.1f} MiB ({peaks[name] / size:.2f}x file)"
        )


if __name__ == "__main__":
    main()
