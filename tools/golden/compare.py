"""`make golden-check`: are the committed fixtures what real tensorpack produces today?

Compares every `.npz` under a freshly generated folder with the committed one of the same
name: same keys, same dtypes and shapes, arrays equal (exactly, or within --rtol of each
array's largest magnitude, for float noise across machines), except the `race/` counts of
reused-BatchNorm models, which vary from run to run. Exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np


def compare(new: pathlib.Path, old: pathlib.Path, rtol: float) -> list[str]:
    problems = []
    with np.load(new) as a, np.load(old) as b:
        if sorted(a.files) != sorted(b.files):
            return [f"{old.name}: keys differ: {sorted(set(a.files) ^ set(b.files))}"]
        for key in a.files:
            if key.startswith("race/"):
                continue  # how often TensorFlow's unordered updates agree varies by run
            x, y = a[key], b[key]
            if x.dtype != y.dtype or x.shape != y.shape:
                problems.append(f"{old.name}:{key}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
            elif x.dtype.kind == "f":
                scale = float(np.max(np.abs(y))) if y.size else 0.0
                if y.size and float(np.max(np.abs(x - y))) > rtol * max(scale, 1e-30):
                    problems.append(f"{old.name}:{key}: values differ")
            elif not np.array_equal(x, y):
                problems.append(f"{old.name}:{key}: values differ")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fresh", type=pathlib.Path)
    parser.add_argument("committed", type=pathlib.Path)
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    fresh = sorted(args.fresh.glob("*.npz"))
    problems = []
    for path in fresh:
        old = args.committed / path.name
        if not old.exists():
            problems.append(f"{path.name}: not committed")
            continue
        problems += compare(path, old, args.rtol)
    for line in problems:
        print(line)
    print(f"{len(fresh)} fixtures compared, {len(problems)} differences")
    return 1 if problems or not fresh else 0


if __name__ == "__main__":
    sys.exit(main())
