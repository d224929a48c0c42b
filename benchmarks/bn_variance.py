"""BatchNorm's variance in one pass or two (``norm_ops.ONE_PASS_VARIANCE_BACKENDS``): tpflax's
ResNet training step (the benchmarks' SGD step, BatchNorm in training) with the statistics
summed in two passes over each activation (``mean((d - mean(d))^2)``) and in one
(``mean(d^2) - mean(d)^2``), beside flax.linen's (one unshifted pass), each compiled by
vs_tensorpack.py's builders (their inference programs too, unused here); interleaved medians
and, with ``--profile``, each one's top kernels. The measurement behind the rule (GPUs one
pass, CPUs two) and the way to redo it on another machine. In `make bench` (gpu.py's batch
256) where JAX sees a GPU; elsewhere it prints a note and stops, unless ``--any-backend``
(then on JAX's default backend; on the CPU a smaller ``--batch``).

    python bn_variance.py --depth 50 --batch 256 --profile    # the H200 measurement
    python bn_variance.py --depth 18 --batch 8 --any-backend  # the CPU's
"""

from __future__ import annotations

import argparse
import statistics
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from gpu import gpu, kernel_table
from run import time_interleaved
from vs_tensorpack import linen_steps, tpflax_steps

from tpflax._src import norm_ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="also print the top kernels")
    parser.add_argument("--any-backend", action="store_true", help="run without a GPU too")
    args = parser.parse_args()
    if gpu() is None and not args.any_backend:
        print(f"bn_variance.py: JAX sees no GPU (backend {jax.default_backend()!r}); skipped")
        return
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.uniform(0, 255, (args.batch, 224, 224, 3)), jnp.float32)
    y = jnp.asarray(np.arange(args.batch) % 1000, jnp.int32)
    progs = {}
    for name, backends in (("two passes", frozenset()), ("one pass", {jax.default_backend()})):
        # read when traced, so inside the compile
        with mock.patch.object(norm_ops, "ONE_PASS_VARIANCE_BACKENDS", frozenset(backends)):
            progs[f"tpflax {name}"] = tpflax_steps(args.depth, x, y)["train"]
    progs["linen"] = linen_steps(args.depth, x, y)["train"]
    calls = {k: v["call"] for k, v in progs.items()}
    for call in calls.values():  # warm-up
        jax.block_until_ready(call())
    med = {k: statistics.median(t) for k, t in time_interleaved(calls, args.rounds).items()}
    one_pass = jax.default_backend() in norm_ops.ONE_PASS_VARIANCE_BACKENDS
    print(
        f"ResNet-{args.depth} b{args.batch} float32 train step on {jax.default_backend()} "
        f"(rule here: {'one pass' if one_pass else 'two passes'}), "
        f"medians of {args.rounds}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items())
    )
    if args.profile:
        for name, call in calls.items():
            print(f"  {name} kernels: " + "\n    ".join(kernel_table(call, top=15)))


if __name__ == "__main__":
    main()
