"""`make bench` on a GPU (skipped, with a note, where JAX sees none): tpflax's ResNet-18 and
ResNet-50 (tp.zoo, NHWC, 224x224) against the same network hand-written in flax.linen
(benchmarks/linen_resnet.py), inference and the benchmarks' training step (SGD momentum 0.9,
BatchNorm in training), float32 and bfloat16 (mixed precision: float32 weights, bfloat16
compute, tensorpack's preprocessing in float32; linen with ``dtype=bfloat16``), batch 256 (a
GPU's working size) and 8 (the CPU benchmarks' batch).

Each time is also a rate: the network's FLOPs (2 x tp.zoo.count_macs x batch, a training
step counted as 3 forward passes) over the time, beside the GPU's own matrix peak measured
in the same run (an 8192^3 product: bfloat16; float32 at JAX's default precision, which on
NVIDIA GPUs since Ampere may use TF32 tensor cores; float32 at ``precision='highest'``).

Also measured: what JAX's default float32 precision does to the numbers. ResNet-50's logits
(batch 8, float32) on the GPU at the default precision and at 'highest', against the same
params on the CPU (where tpflax's goldens pin tensorpack's numbers).

tpflax and linen are timed interleaved (one call of each per round, order rotated), medians.
``--budget`` stops starting new configurations after that many seconds (device time is
short): the configurations run in the order of the table, the headline (batch 256) first.
``--profile`` adds each configuration's top kinds of GPU kernel in the two train steps (a
``jax.profiler`` trace), to place a difference between tpflax and linen.
Appends a row per configuration to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from conv_lowering import RESULTS, matmul_peak
from linen_resnet import ResNet
from profile_resnet import trace_events
from run import time_interleaved
from vs_tensorpack import steps

import tpflax as tp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def gpu() -> jax.Device | None:
    """The first GPU JAX sees, or None."""
    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        return None


def programs(depth: int, dtype: Any, x: jax.Array, y: jax.Array) -> dict[str, dict[str, Any]]:
    """``{who: {kind: compiled}}`` (vs_tensorpack.steps) for tpflax and linen, inference and a
    training step, computing in ``dtype`` on float32 weights; logits returned in float32."""
    model = tp.transform(tp.zoo.resnet(depth, preprocess=False))
    pre = tp.zoo.image_preprocess

    def tp_forward(p, s, x, train):
        logits, new = model.apply(p, s, pre(x).astype(dtype), is_training=train)
        return logits.astype(jnp.float32), new

    params, state = jax.jit(model.init)(jax.random.key(0), pre(x))
    net = ResNet(depth, dtype=dtype)
    variables = jax.jit(net.init)(jax.random.key(0), x)
    lp, ls = variables["params"], {"batch_stats": variables["batch_stats"]}

    def linen_train(p, s, x):
        logits, new = net.apply({"params": p, **s}, x, train=True, mutable=["batch_stats"])
        return logits.astype(jnp.float32), new

    return {
        "tpflax": steps(
            lambda p, s, x: tp_forward(p, s, x, False)[0],
            lambda p, s, x: tp_forward(p, s, x, True),
            params,
            state,
            x,
            y,
        ),
        "linen": steps(
            lambda p, s, x: net.apply({"params": p, **s}, x).astype(jnp.float32),
            linen_train,
            lp,
            ls,
            x,
            y,
        ),
    }


def float32_error(depth: int, batch: int) -> dict[str, float]:
    """Largest logit difference of ResNet-``depth`` (float32, inference, one set of params)
    on the GPU, at JAX's default precision and at 'highest', against the CPU; and the largest
    logit, for scale."""
    model = tp.transform(tp.zoo.resnet(depth))
    x = np.random.RandomState(1).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        params, state = jax.jit(model.init)(jax.random.key(0), jnp.asarray(x))

    def run(device: jax.Device, precision: str) -> np.ndarray:
        with jax.default_matmul_precision(precision):
            f = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])
            p, s, xx = jax.device_put((params, state, x), device)
            return np.asarray(f(p, s, xx))

    ref = run(cpu, "highest")
    return {
        "default": float(np.abs(run(gpu(), "default") - ref).max()),
        "highest": float(np.abs(run(gpu(), "highest") - ref).max()),
        "scale": float(np.abs(ref).max()),
    }


def accumulation_check(batch: int, repeats: int) -> dict[str, Any]:
    """bfloat16 products on the GPU asked for a float32 result (then rounded to bfloat16, as
    tpflax does on the CPU) and for a bfloat16 one (as tpflax does on GPUs): the time of each,
    forward and gradients, and how many of their values differ. A 3x3 convolution
    ``[batch, 56, 56, 64] -> 64`` (ResNet's group0) and a ``[batch * 16, 4096] x [4096, 4096]``
    matrix product. Same values = the bfloat16 kernels sum in float32 and round once."""
    rng = np.random.RandomState(0)
    bf16 = jnp.bfloat16
    x = jnp.asarray(rng.randn(batch, 56, 56, 64), bf16)
    W = jnp.asarray(rng.randn(3, 3, 64, 64) * 0.05, bf16)
    a = jnp.asarray(rng.randn(batch * 16, 4096), bf16)
    b = jnp.asarray(rng.randn(4096, 4096) * 0.02, bf16)

    def conv(x, W, result):
        y = jax.lax.conv_general_dilated(
            x, W, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=result,
        )  # fmt: skip
        return y.astype(bf16)

    def dot(a, b, result):
        return jnp.matmul(a, b, preferred_element_type=result).astype(bf16)

    def grads(f):
        return jax.grad(lambda u, v: f(u, v).astype(jnp.float32).sum(), argnums=(0, 1))

    fns, args = {}, {"conv": (x, W), "dot": (a, b)}
    for op, f in (("conv", conv), ("dot", dot)):
        for result, label in ((jnp.float32, "f32"), (None, "bf16")):
            g = functools.partial(f, result=result)
            fns[(op, "forward", label)] = jax.jit(g)
            fns[(op, "gradient", label)] = jax.jit(grads(g))
    values = {k: f(*args[k[0]]) for k, f in fns.items()}
    runs = {k: functools.partial(f, *args[k[0]]) for k, f in fns.items()}
    med = {k: statistics.median(v) for k, v in time_interleaved(runs, repeats).items()}
    report: dict[str, Any] = {}
    for op in ("conv", "dot"):
        for kind in ("forward", "gradient"):
            u = jax.tree.leaves(values[(op, kind, "f32")])
            v = jax.tree.leaves(values[(op, kind, "bf16")])
            differ = sum(int(jnp.sum(p != q)) for p, q in zip(u, v, strict=True))
            report[f"{op} {kind}"] = {
                "f32_result_ms": med[(op, kind, "f32")] * 1e3,
                "bf16_result_ms": med[(op, kind, "bf16")] * 1e3,
                "values_differ": differ,
                "values": sum(p.size for p in u),
            }
    return report


def kernel_table(call: Callable[[], Any], repeats: int = 3, top: int = 12) -> list[str]:
    """The ``top`` kinds of kernel of ``call`` by device time (a ``jax.profiler`` trace of
    ``repeats`` calls; on a GPU the events of its streams, elsewhere every timed event; names
    with their numbers as ``#``), each as ``'<ms per call> ms <share> <name>'``, after a line
    with their sum."""
    jax.block_until_ready(call())
    events = trace_events(call, repeats)
    gpu_pids = {
        e["pid"]
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "process_name"
        and "GPU" in str(e.get("args", {}).get("name", ""))
    }
    totals: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("ph") == "X" and (not gpu_pids or e.get("pid") in gpu_pids):
            # numbered instances (fusion.12, fusion.13) count as one kind: fusion.#
            totals[re.sub(r"\d+", "#", e.get("name", "?"))] += e.get("dur", 0) / 1e3 / repeats
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [f"{whole:.2f} ms a call in {len(totals)} kinds of event"] + [
        f"{ms:8.3f} ms {ms / whole:6.1%} {name[:90]}" for name, ms in ranked
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="50,18", help="comma-separated ResNet depths")
    parser.add_argument("--batches", default="256,8", help="comma-separated batch sizes")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0, help="seconds; 0: no limit")
    parser.add_argument("--json", help="also write the results as JSON lines to this file")
    parser.add_argument(
        "--no-checks", action="store_true", help="skip the float32 and accumulation checks"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print each configuration's top kernels (train steps, tpflax and linen)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    start = time.perf_counter()
    device = gpu()
    if device is None:
        print(f"gpu.py: JAX sees no GPU (backend {jax.default_backend()!r}); skipped")
        return 0
    out = open(args.json, "a") if args.json else None  # noqa: SIM115

    def emit(record: dict[str, Any]) -> None:
        if out is not None:
            out.write(json.dumps(record) + "\n")
            out.flush()

    versions = f"jax {jax.__version__}, {tp.conv_impl.active()}"
    peak = {
        "bfloat16": matmul_peak(10, 8192, jnp.bfloat16),
        "float32": matmul_peak(10, 8192),
        "float32-highest": matmul_peak(10, 8192, precision="highest"),
    }
    print(
        f"{device.device_kind}; {versions}; 8192^3 matmul: bfloat16 {peak['bfloat16'] / 1e12:.0f}"
        f" TFLOP/s, float32 (default precision) {peak['float32'] / 1e12:.0f}, float32 "
        f"'highest' {peak['float32-highest'] / 1e12:.1f}"
    )
    emit({"device": device.device_kind, "versions": versions, "peak": peak})
    if not args.no_checks:
        err = float32_error(50, 8)
        print(
            f"ResNet-50 b8 float32 logits, GPU vs CPU: largest difference {err['default']:.2e} at "
            f"JAX's default precision, {err['highest']:.2e} at 'highest' (logits up to "
            f"{err['scale']:.2f})"
        )
        emit({"float32_error": err})
        acc = accumulation_check(256, 10)
        acc_cells = [
            f"{k}: f32 result {r['f32_result_ms']:.2f} / bf16 result "
            f"{r['bf16_result_ms']:.2f} ms, {r['values_differ']} of {r['values']} values differ"
            for k, r in acc.items()
        ]
        print("bfloat16 b256, asked for a float32 / a bfloat16 result: " + "; ".join(acc_cells))
        emit({"accumulation": acc})
        if not args.no_record:
            with RESULTS.open("a") as f:
                f.write(
                    f"| {datetime.date.today()} | gpu | 8192^3 matmul; ResNet-50 b8 f32 logits vs "
                    f"CPU | {device.device_kind} | {versions} | matmul bf16 "
                    f"{peak['bfloat16'] / 1e12:.0f} / f32 default "
                    f"{peak['float32'] / 1e12:.0f} / f32 highest "
                    f"{peak['float32-highest'] / 1e12:.1f} TFLOP/s; logits vs CPU "
                    f"{err['default']:.1e} (default precision) / {err['highest']:.1e} "
                    f"(highest) of {err['scale']:.2f} | medians of 10 |\n"
                )
                f.write(
                    f"| {datetime.date.today()} | gpu | bfloat16 products asked for a float32 / a "
                    f"bfloat16 result, b256 | {device.device_kind} | {versions} | "
                    + "; ".join(acc_cells)
                    + " | medians of 10, interleaved |\n"
                )
    for batch in [int(b) for b in args.batches.split(",")]:
        rng = np.random.RandomState(0)
        x = jnp.asarray(rng.uniform(0, 255, (batch, 224, 224, 3)), jnp.float32)
        y = jnp.asarray(np.arange(batch) % 1000, jnp.int32)
        for depth in [int(d) for d in args.depths.split(",")]:
            for name in args.dtypes.split(","):
                label = f"ResNet-{depth} b{batch} {name}"
                if args.budget and time.perf_counter() - start > args.budget:
                    print(f"{label}: not run (--budget {args.budget:.0f} s spent)")
                    continue
                # progress on stderr: where a run cut short by the device's time limit was
                print(f"{label}: compiling at {time.perf_counter() - start:.0f} s", file=sys.stderr)
                progs = programs(depth, DTYPES[name], x, y)
                print(f"{label}: timing at {time.perf_counter() - start:.0f} s", file=sys.stderr)
                calls = {(w, k): c["call"] for w, kinds in progs.items() for k, c in kinds.items()}
                for call in calls.values():  # warm-up
                    jax.block_until_ready(call())
                times = time_interleaved(calls, args.repeats)
                med = {k: statistics.median(v) for k, v in times.items()}
                compile_s = {
                    (w, k): c["trace"] + c["compile"]
                    for w, kinds in progs.items()
                    for k, c in kinds.items()
                }
                flops = 2 * tp.zoo.count_macs(tp.zoo.resnet(depth)) * batch
                ceiling = peak[name]
                cells = []
                for kind, n in (("infer", 1), ("train", 3)):
                    tpf, lin = med[("tpflax", kind)], med[("linen", kind)]
                    cells.append(
                        f"{kind} tpflax {tpf * 1e3:.2f} ms ({n * flops / tpf / 1e12:.0f} TFLOP/s,"
                        f" {n * flops / tpf / ceiling:.0%} of matmul) / linen {lin * 1e3:.2f} ms "
                        f"({lin / tpf:.2f}x tpflax's time); compile "
                        f"{compile_s[('tpflax', kind)]:.0f} / {compile_s[('linen', kind)]:.0f} s"
                    )
                print(f"{label}: " + "; ".join(cells))
                emit(
                    {
                        "depth": depth,
                        "batch": batch,
                        "dtype": name,
                        "flops": flops,
                        "times": {f"{w}/{k}": v for (w, k), v in times.items()},
                        "compile": {f"{w}/{k}": c for (w, k), c in compile_s.items()},
                    }
                )
                if not args.no_record:
                    with RESULTS.open("a") as f:
                        f.write(
                            f"| {datetime.date.today()} | gpu | {label} 224px NHWC | "
                            f"{device.device_kind} | {versions} | " + "; ".join(cells) + " | "
                            f"medians of {args.repeats}, interleaved |\n"
                        )
                if args.profile:
                    for who in ("tpflax", "linen"):
                        table = kernel_table(progs[who]["train"]["call"])
                        print(f"  {who} train step kernels: " + "\n    ".join(table))
                del progs
    return 0


if __name__ == "__main__":
    sys.exit(main())
