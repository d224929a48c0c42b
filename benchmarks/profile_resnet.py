"""Where the time goes: a `jax.profiler` trace of tp.zoo ResNet (batch 8, 224x224, float32)
inference and training step on this machine, summed per kind of XLA:CPU kernel.

Each executed thunk of the compiled programs is matched to its HLO instruction
(``compiled.as_text()``); convolutions (XLA's or oneDNN's custom calls) and matrix products
are counted with their FLOPs, so
the table shows each kind's share of the time and the GFLOP/s it reaches, beside a 4096x4096
float32 matmul's. Not part of `make bench` (it takes a minute and writes a trace); run
``python benchmarks/profile_resnet.py [--depth 50]``. The findings are in RESULTS.md's notes.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import statistics
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from conv_lowering import TX, matmul_peak, train_step
from run import timeit

import tpflax as tp


def _dims(text: str) -> list[int]:
    return [int(v) for v in text.split(",")] if text else []


def kernel_kinds(hlo: str) -> dict[str, tuple[str, float]]:
    """``{instruction name: (kind, FLOPs)}`` for every fusion and custom kernel of ``hlo``."""
    calls = dict(re.findall(r"%([\w.\-]+) = [^\n]*calls=%([\w.\-]+)", hlo))
    bodies = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^%?([\w.\-]+) \([^\n]*\{\n(.*?)\n\}", hlo, re.S | re.M)
    }
    out = {}
    for name, comp in calls.items():
        body = bodies.get(comp, "")
        conv = re.search(
            r"= f32\[([\d,]*)\][^ ]* convolution\((%[\w.\-]+), (%[\w.\-]+)\), "
            r"window=\{size=(\d+)x(\d+)[^\n]*dim_labels=\w+_(\w+)->",
            body,
        )
        dot = re.search(
            r"= f32\[([\d,]*)\][^ ]* dot\((%[\w.\-]+), (%[\w.\-]+)\), "
            r"lhs_contracting_dims=\{(\d*)\}",
            body,
        )
        if conv:  # each output element sums over the kernel's taps and input features
            kh, kw, rhs_labels = int(conv.group(4)), int(conv.group(5)), conv.group(6)
            rhs = re.search(re.escape(conv.group(3)) + r" = f32\[([\d,]*)\]", body)
            rhs_dims = _dims(rhs.group(1)) if rhs else []
            per_output = np.prod(rhs_dims) / rhs_dims[rhs_labels.index("o")] if rhs_dims else 0
            flops = 2 * np.prod(_dims(conv.group(1))) * per_output
            # a filter gradient's "window" is the output gradient's whole map
            kind = f"convolution {kh}x{kw}" if max(kh, kw) <= 11 else "convolution, dW"
            out[name] = (kind, float(flops))
        elif dot:
            lhs = re.search(re.escape(dot.group(2)) + r" = f32\[([\d,]*)\]", body)
            k = _dims(lhs.group(1))[int(dot.group(4))] if lhs and dot.group(4) else 0
            out[name] = ("matrix product", float(2 * np.prod(_dims(dot.group(1))) * k))
        elif " reduce(" in body:
            out[name] = ("reduction (BatchNorm moments, pooling)", 0.0)
        else:
            root = re.search(r"ROOT [^=]+= [^ ]+ (\w+)\(", body)
            out[name] = (f"elementwise/copy ({root.group(1) if root else '?'})", 0.0)
    for m in re.finditer(
        r"%([\w.\-]+) = (?:f32|bf16)\[([\d,]*)\][^ ]* custom-call\([^\n]*"
        r"custom_call_target=\"tpflax_onednn_conv_(\w+)\", "
        r"operand_layout_constraints=\{(?:f32|bf16)\[([\d,]*)\][^ ]*, (?:f32|bf16)\[([\d,]*)\]",
        hlo,
    ):
        name, result, op, a, b = m.groups()
        # every pass multiplies each output-gradient (or output) element by kh*kw*I taps;
        # fwd_post (BatchNorm/ReLU as post-ops) and fwd_bf16 are forwards
        base = "fwd" if op.startswith("fwd") else op
        w = _dims({"fwd": b, "bwd_data": b, "bwd_weights": result}[base])
        outputs = np.prod(_dims({"fwd": result, "bwd_data": a, "bwd_weights": b}[base]))
        out[name] = (f"oneDNN convolution ({op})", float(2 * outputs * np.prod(w[:3])))
    for m in re.finditer(
        r"%([\w.\-]+) = [^\n]* custom-call\([^\n]*custom_call_target=\"tpflax_onednn_bn_(\w+)\"",
        hlo,
    ):  # BatchNorm in training (tpflax/_src/onednn_batch_norm.py)
        out[m.group(1)] = (f"oneDNN BatchNorm ({m.group(2)})", 0.0)
    for m in re.finditer(
        r"%([\w.\-]+) = [^\n]* custom-call\([^\n]*custom_call_target=\"tpflax_onednn_max_pool\"",
        hlo,
    ):  # max pooling's value and first maxima (tpflax/_src/onednn_max_pool.py)
        out[m.group(1)] = ("oneDNN max pooling", 0.0)
    return out


def trace_events(call, repeats: int) -> list[dict]:
    """The events of a ``jax.profiler`` trace (perfetto's JSON) of ``repeats`` calls."""
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        for _ in range(repeats):
            jax.block_until_ready(call())
        jax.profiler.stop_trace()
        (trace,) = glob.glob(f"{tmp}/plugins/profile/*/perfetto_trace.json.gz")
        with gzip.open(trace) as f:
            data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def profile(fn, args, repeats: int) -> tuple[dict[str, list[float]], float]:
    """Per kind ``[milliseconds, GFLOP]`` per call, and the median wall time of a call."""
    compiled = jax.jit(fn).lower(*args).compile()
    kinds = kernel_kinds(compiled.as_text())
    jax.block_until_ready(compiled(*args))
    wall = statistics.median(timeit(lambda: compiled(*args), repeats))
    events = trace_events(lambda: compiled(*args), repeats)
    table: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for e in events:
        kind = kinds.get(e.get("name", ""))
        if e.get("ph") == "X" and kind is not None:
            table[kind[0]][0] += e["dur"] / 1e3 / repeats
            table[kind[0]][1] += kind[1] / 1e9 / repeats
    return dict(table), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impl", default="auto", help="tp.conv_impl: auto, xla or onednn")
    parser.add_argument("--only", choices=("inference", "train step"), default=None)
    args = parser.parse_args()
    with tp.conv_impl(args.impl):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    model = tp.transform(tp.zoo.resnet(args.depth))
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.uniform(0, 255, (args.batch, 224, 224, 3)), jnp.float32)
    y = jnp.asarray(np.arange(args.batch) % 1000, jnp.int32)
    params, state = jax.jit(model.init)(jax.random.key(0), x)
    peak = matmul_peak(args.repeats) / 1e9
    print(
        f"ResNet-{args.depth} b{args.batch}, {tp.conv_impl.active()}; "
        f"a 4096^2 float32 matmul runs at {peak:.0f} GFLOP/s"
    )
    runs = {
        "inference": (lambda p, s, x: model.apply(p, s, x)[0], (params, state, x)),
        "train step": (
            train_step(lambda p, s, x: model.apply(p, s, x, is_training=True)),
            (params, state, TX.init(params), x, y),
        ),
    }
    for label, (fn, fn_args) in runs.items():
        if args.only not in (None, label):
            continue
        table, wall = profile(fn, fn_args, args.repeats)
        total = sum(ms for ms, _ in table.values())
        print(f"\n{label}: {wall * 1e3:.0f} ms per call; kernels sum to {total:.0f} ms")
        for kind, (ms, gflop) in sorted(table.items(), key=lambda kv: -kv[1][0]):
            rate = f"{gflop / ms * 1e3:6.0f} GFLOP/s" if gflop else ""
            print(f"  {ms:7.1f} ms {ms / total:6.1%}  {kind:45} {rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
