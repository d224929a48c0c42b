"""`make bench`: tpflax against the reference for speed, tensorpack 0.11 on TensorFlow (CPU),
same machine, same cores, same batch: ResNet-50 (NHWC, float32, batch 8, 224x224) inference
and a training step (Momentum 0.9, BatchNorm in training). tensorpack runs first in
`.venv-golden` (benchmarks/tensorpack_resnet.py; skipped with a note when that venv is
absent), then tpflax in this process; medians of the repeats. Prints tpflax's throughput as
a multiple of tensorpack's and appends a row to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys

import jax
from conv_lowering import RESULTS, build, cpu_model
from run import timeit

ROOT = pathlib.Path(__file__).parents[1]
GOLDEN_PYTHON = ROOT / ".venv-golden" / "bin" / "python"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if not GOLDEN_PYTHON.exists():
        print("vs_tensorpack: .venv-golden is absent (make golden creates it); skipped")
        return 0
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [
            str(GOLDEN_PYTHON),
            str(pathlib.Path(__file__).with_name("tensorpack_resnet.py")),
            f"--batch={args.batch}",
            f"--size={args.size}",
            f"--repeats={args.repeats}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = build("auto", args.batch, args.size)
    mine = {kind: timeit(ours[kind], args.repeats) for kind in ("infer", "train")}
    med = {
        (who, kind): statistics.median(times[kind])
        for who, times in (("tensorpack", theirs), ("tpflax", mine))
        for kind in ("infer", "train")
    }
    print(
        f"ResNet-50 batch {args.batch} {args.size}x{args.size} float32, {cpu_model()}, "
        f"{os.cpu_count()} cores (TF intra-op threads = {os.cpu_count()})"
    )
    speed = {}
    for kind, label in (("infer", "inference"), ("train", "train step")):
        tpk, tpf = med[("tensorpack", kind)], med[("tpflax", kind)]
        speed[kind] = tpk / tpf
        print(
            f"{label:10}: tensorpack {tpk:.3f} s, tpflax {tpf:.3f} s -> tpflax at "
            f"{speed[kind]:.2f}x tensorpack's speed"
        )
    if not args.no_record:
        with RESULTS.open("a") as f:
            f.write(
                f"| {datetime.date.today()} | vs_tensorpack | ResNet-50 b{args.batch} "
                f"{args.size}px f32 NHWC | {cpu_model()}, {os.cpu_count()} cores | jax "
                f"{jax.__version__}, TF {theirs['tensorflow']} (oneDNN {theirs['onednn']}) | "
                f"infer tensorpack {med[('tensorpack', 'infer')]:.3f} s / tpflax "
                f"{med[('tpflax', 'infer')]:.3f} s ({speed['infer']:.2f}x); train tensorpack "
                f"{med[('tensorpack', 'train')]:.3f} s / tpflax {med[('tpflax', 'train')]:.3f} s"
                f" ({speed['train']:.2f}x) | medians of {args.repeats}, sequential |\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
