"""`make bench`: tpflax against the reference for speed, tensorpack 0.11 on TensorFlow (CPU),
and against the same network hand-written in flax.linen, in one run, on the same cores and
batch: ResNet-18 and ResNet-50 (NHWC, float32, batch 8, 224x224), inference and a training
step (SGD momentum 0.9, BatchNorm in training), plus trace and compile time and XLA's peak
memory (arguments + outputs + temporaries, ``compiled.memory_analysis()``).

tensorpack runs in `.venv-golden` (benchmarks/tensorpack_resnet.py --serve, kept running beside
this process; skipped with a note when that venv is absent); tpflax and flax.linen run in this
process (linen without tpflax's host block cache, as plain JAX runs; see CacheSwitch). All are
timed interleaved, one call each per round in a rotating order, so every variant sees the same
machine load (tensorpack timed alone, before and after tpflax, moved 10-40% between its own
runs); medians of the repeats, and beside them tensorpack's time over tpflax's per round
(its median and range). Also measured in the same run: a 4096x4096 float32 matmul, the
machine's practical peak, so that each time is also a fraction of the bound ``FLOPs / peak``
(a training step counted as 3 forward passes). Prints ratios and appends a row per depth to
benchmarks/RESULTS.md.
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
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from conv_lowering import RESULTS, TX, cpu_model, machine, matmul_peak, train_step
from linen_resnet import ResNet
from run import timeit

import tpflax as tp
from tpflax._src import host_memory, onednn

ROOT = pathlib.Path(__file__).parents[1]
GOLDEN_PYTHON = ROOT / ".venv-golden" / "bin" / "python"


class Tensorpack:
    """tensorpack in `.venv-golden` (benchmarks/tensorpack_resnet.py --serve), kept running
    beside this process: :meth:`time` asks it for one timed call, so its calls join the
    interleaved rounds of tpflax's variants and see the same machine load."""

    def __init__(self, depth: int, batch: int, size: int) -> None:
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        script = pathlib.Path(__file__).with_name("tensorpack_resnet.py")
        self.proc = subprocess.Popen(
            [
                str(GOLDEN_PYTHON),
                str(script),
                f"--depth={depth}",
                f"--batch={batch}",
                f"--size={size}",
                "--serve",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.versions = json.loads(self._reply())  # built and warmed up: nothing else runs

    def _reply(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tensorpack_resnet.py --serve exited ({self.proc.wait()})")
        return line

    def time(self, kind: str) -> list[float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(kind + "\n")
        self.proc.stdin.flush()
        return [float(self._reply())]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


def compiled(fn: Callable, *args: Any) -> dict[str, Any]:
    """``jax.jit(fn)`` traced, lowered and compiled for ``args``, timed; with XLA's memory."""
    t0 = time.perf_counter()
    traced = jax.jit(fn).trace(*args)
    t1 = time.perf_counter()
    exe = traced.lower().compile()
    t2 = time.perf_counter()
    mem = exe.memory_analysis()
    peak = (
        mem.argument_size_in_bytes
        + mem.output_size_in_bytes
        + mem.temp_size_in_bytes
        - mem.alias_size_in_bytes
    )
    return {"call": lambda: exe(*args), "trace": t1 - t0, "compile": t2 - t1, "peak": peak}


def steps(
    forward: Callable, train_forward: Callable, params: Any, state: Any, x: Any, y: Any
) -> dict[str, dict[str, Any]]:
    """An inference function and the benchmarks' training step, compiled."""
    return {
        "infer": compiled(forward, params, state, x),
        "train": compiled(train_step(train_forward), params, state, TX.init(params), x, y),
    }


def tpflax_steps(
    depth: int, x: jax.Array, y: jax.Array, impl: str = "auto"
) -> dict[str, dict[str, Any]]:
    """tpflax's ResNet with its convolutions lowered by ``tp.conv_impl(impl)``."""
    model = tp.transform(tp.zoo.resnet(depth))
    params, state = jax.jit(model.init)(jax.random.key(0), x)

    def infer(p, s, x):
        with tp.conv_impl(impl):
            return model.apply(p, s, x)[0]

    def train_forward(p, s, x):
        with tp.conv_impl(impl):
            return model.apply(p, s, x, is_training=True)

    return steps(
        infer,
        train_forward,
        params,
        state,
        x,
        y,
    )


def linen_steps(depth: int, x: jax.Array, y: jax.Array) -> dict[str, dict[str, Any]]:
    net = ResNet(depth)
    variables = jax.jit(net.init)(jax.random.key(0), x)
    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}

    def train_forward(p, s, x):
        logits, new = net.apply({"params": p, **s}, x, train=True, mutable=["batch_stats"])
        return logits, new

    return steps(
        lambda p, s, x: net.apply({"params": p, **s}, x),
        train_forward,
        params,
        state,
        x,
        y,
    )


class CacheSwitch:
    """Calls the runs with tpflax's host block cache (tpflax/_src/host_memory.py, process-wide
    once tpflax is imported) on or off per variant: flax.linen runs without it, as plain JAX
    does, and 'tpflax-glibc' is tpflax without it. Each switch releases the kept blocks and is
    followed by an untimed call, so a timed call never pays for the switch."""

    def __init__(self, runs: dict[str, dict[str, Any]], without: set[str]) -> None:
        self.runs, self.without, self.on = runs, without, True

    def call(self, who: str, kind: str) -> None:
        want = who not in self.without
        if want != self.on:
            self.on = want
            host_memory.set_enabled(want)
            jax.block_until_ready(self.runs[who][kind]["call"]())
        jax.block_until_ready(self.runs[who][kind]["call"]())

    def time(self, who: str, kind: str) -> list[float]:
        if (who not in self.without) != self.on:
            self.call(who, kind)
        return timeit(self.runs[who][kind]["call"], 1)


def time_rounds(
    runs: dict[str, dict[str, Any]],
    theirs: Tensorpack | None,
    repeats: int,
    after_own: bool = False,
) -> dict[tuple[str, str], list[float]]:
    """Every variant's inference and train-step times, ``{(who, kind): [seconds per round]}``,
    one call of each per round (tensorpack's too, when given), after one warm-up call each.
    With ``after_own``, each timed call comes right after an untimed call of the same program
    (as when a user runs one of them alone), not after whichever variant preceded it in the
    round, possibly the other process's."""
    switch = CacheSwitch(runs, without={"linen", "tpflax-glibc"})

    def timed(who: str, kind: str) -> list[float]:
        if who == "tensorpack":
            assert theirs is not None
            if after_own:
                theirs.time(kind)
            return theirs.time(kind)
        if after_own:
            switch.call(who, kind)
        return switch.time(who, kind)

    order = list(runs) + (["tensorpack"] if theirs else [])
    for who in order:  # warm-up
        for kind in ("infer", "train"):
            timed(who, kind)
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(repeats):  # interleaved: all see the same machine load
        # rotated each round: the call right after a train step runs measurably slower
        # (17% for ResNet-50 inference), so no variant always takes that place
        rotated = order[r % len(order) :] + order[: r % len(order)]
        for kind in ("infer", "train"):
            for who in rotated:
                times.setdefault((who, kind), []).extend(timed(who, kind))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="18,50", help="comma-separated ResNet depths")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--after-own",
        action="store_true",
        help="time each call right after an untimed call of the same program",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)), jnp.float32)
    y = jnp.asarray(np.arange(args.batch) % 1000, jnp.int32)
    cores = os.cpu_count()
    print(
        f"{cpu_model()}, {cores} cores (TF intra-op threads = {cores}, inter-op 1), batch "
        f"{args.batch}, {args.size}x{args.size}, float32, medians of {args.repeats}"
        + (", each call after one of its own" if args.after_own else "")
    )
    for depth in [int(d) for d in args.depths.split(",")]:
        theirs = Tensorpack(depth, args.batch, args.size) if GOLDEN_PYTHON.exists() else None
        runs = {"tpflax": tpflax_steps(depth, x, y), "linen": linen_steps(depth, x, y)}
        # The default ('auto': oneDNN where conv_impl's table says, when built) beside plain
        # XLA convolutions and oneDNN for every convolution.
        runs["tpflax-xla"] = tpflax_steps(depth, x, y, "xla")
        if onednn.available():
            runs["tpflax-onednn"] = tpflax_steps(depth, x, y, "onednn")
        if host_memory.installed():
            runs["tpflax-glibc"] = runs["tpflax"]
        times = time_rounds(runs, theirs, args.repeats, args.after_own)
        if theirs is not None:
            theirs.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        peak = matmul_peak(args.repeats)
        flops = 2 * tp.zoo.count_macs(tp.zoo.resnet(depth)) * args.batch
        bound = {"infer": flops / peak, "train": 3 * flops / peak}
        print(
            f"ResNet-{depth}: {flops / 1e9:.1f} GFLOP per forward; 4096^2 matmul "
            f"{peak / 1e9:.0f} GFLOP/s, so >= {bound['infer']:.3f} s inference, "
            f">= {bound['train']:.3f} s train step"
        )
        cells = []
        for kind, label in (("infer", "inference"), ("train", "train step")):
            tpf, lin = med[("tpflax", kind)], med[("linen", kind)]
            line = (
                f"  {label:10}: tpflax {tpf:.3f} s ({bound[kind] / tpf:.0%} of bound), "
                f"flax.linen {lin:.3f} s (tpflax/linen time {tpf / lin:.2f})"
            )
            cell = f"{kind} tpflax {tpf:.3f} s / linen {lin:.3f} s ({tpf / lin:.2f})"
            if ("tensorpack", kind) in med:
                tpk = med[("tensorpack", kind)]
                # the same ratio per round (tensorpack's call and tpflax's in one round): how
                # far the machine's load moved it
                rounds = sorted(
                    a / b
                    for a, b in zip(
                        times[("tensorpack", kind)], times[("tpflax", kind)], strict=True
                    )
                )
                paired = (
                    f"per round median {statistics.median(rounds):.2f}x, "
                    f"{rounds[0]:.2f}-{rounds[-1]:.2f}x"
                )
                line += (
                    f", tensorpack {tpk:.3f} s ({bound[kind] / tpk:.0%} of bound) -> tpflax at "
                    f"{tpk / tpf:.2f}x tensorpack's speed ({paired})"
                )
                cell += f" / tensorpack {tpk:.3f} s (speed {tpk / tpf:.2f}x, {paired})"
            for who in ("tpflax-xla", "tpflax-onednn", "tpflax-glibc"):
                if who in runs:
                    t = med[(who, kind)]
                    line += f"; {who} {t:.3f} s (tpflax/{who} time {tpf / t:.2f})"
                    cell += f" / {who} {t:.3f} s"
            print(line)
            cells.append(cell)
        for kind in ("infer", "train"):
            a, b = runs["tpflax"][kind], runs["linen"][kind]
            print(
                f"  {kind:5} trace+compile: tpflax {a['trace']:.1f}+{a['compile']:.1f} s, "
                f"linen {b['trace']:.1f}+{b['compile']:.1f} s (ratio "
                f"{(a['trace'] + a['compile']) / (b['trace'] + b['compile']):.2f}); peak memory "
                f"tpflax {a['peak'] / 2**20:.0f} MiB, linen {b['peak'] / 2**20:.0f} MiB"
            )
            cells.append(
                f"{kind} compile tpflax {a['trace'] + a['compile']:.1f} s / linen "
                f"{b['trace'] + b['compile']:.1f} s, memory {a['peak'] / 2**20:.0f} / "
                f"{b['peak'] / 2**20:.0f} MiB"
            )
        if theirs is None:
            print("  tensorpack: .venv-golden is absent (make golden creates it); skipped")
        if not args.no_record:
            versions = f"jax {jax.__version__}, {tp.conv_impl.active()}" + (
                f", TF {theirs.versions['tensorflow']} (oneDNN {theirs.versions['onednn']})"
                if theirs
                else ""
            )
            with RESULTS.open("a") as f:
                f.write(
                    f"| {datetime.date.today()} | vs_tensorpack | ResNet-{depth} b{args.batch} "
                    f"{args.size}px f32 NHWC | {machine()} | {versions} | "
                    + "; ".join(cells)
                    + f"; matmul {peak / 1e9:.0f} GFLOP/s, bound {bound['infer']:.3f} / "
                    f"{bound['train']:.3f} s | medians of {args.repeats}, all interleaved"
                    + (", each call after one of its own" if args.after_own else "")
                    + " |\n"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
