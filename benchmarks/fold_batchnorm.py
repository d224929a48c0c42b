"""`make bench`: ResNet-50 inference with BatchNorm as is and folded into the convolutions
(tp.zoo.fold_batchnorm), each with and without its BatchNorm/bias and ReLU fused into the
oneDNN convolutions (tpflax/_src/epilogue.py; fusion is the default), all jit-compiled,
interleaved in one run (the order rotated each round); reports the median time of each, its
ratio to BatchNorm fused, and the largest logit difference relative to the logit scale. With
the oneDNN library, also single ResNet-50 convolutions: bare, followed by BatchNorm+ReLU in
XLA's own pass, and with them fused."""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from run import time_interleaved

import tpflax as tp
from tpflax._src import epilogue, onednn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ResNet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    model_fn = tp.zoo.get(args.arch, data_format="NHWC")
    model = tp.transform(model_fn)
    x = jnp.asarray(
        np.random.RandomState(0).uniform(0, 255, (args.batch, args.size, args.size, 3)),
        jnp.float32,
    )
    params, state = model.init(jax.random.key(0), x)
    # Statistics like a trained model's (means near 0, variances near 1), so that folding
    # has work to do and the activations stay in range.
    rng = np.random.RandomState(1)
    flat = tp.checkpoint.flatten(state)
    for name, v in flat.items():
        if name.endswith("variance/EMA"):
            flat[name] = jnp.asarray(rng.uniform(0.5, 1.5, v.shape), v.dtype)
        else:
            flat[name] = jnp.asarray(rng.randn(*v.shape) * 0.2, v.dtype)
    state = tp.checkpoint.unflatten(flat)[1]

    def infer(fuse: bool):
        def run(p, s, x):
            with epilogue.fusing(fuse):
                return model.apply(p, s, x)[0]

        return jax.jit(run)

    with epilogue.fusing(True):
        folded = tp.zoo.fold_batchnorm(model_fn, params, state)
    with epilogue.fusing(False):
        folded_unfused = tp.zoo.fold_batchnorm(model_fn, params, state)
    plain, unfused = infer(True), infer(False)
    want = unfused(params, state, x).block_until_ready()
    runs = {
        "BatchNorm": lambda: plain(params, state, x),
        "BN unfused": lambda: unfused(params, state, x),
        "folded": lambda: folded(x),
        "folded unf.": lambda: folded_unfused(x),
    }
    rel = {}
    for name, fn in runs.items():
        got = fn().block_until_ready()
        rel[name] = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
    times = time_interleaved(runs, args.rounds)
    base = statistics.median(times["BatchNorm"])
    print(f"{args.arch}, batch {args.batch}, {args.size}x{args.size}, {jax.devices()[0].platform}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(
            f"  {name:11} {t * 1e3:8.1f} ms   {t / base:5.2f}x   logits vs BN unfused "
            f"{rel[name]:.1e} of their scale"
        )
    print(f"  {len(folded.folded)} BatchNorms folded")
    if onednn.available():
        single_convolutions(args.rounds * 4)


def single_convolutions(rounds: int) -> None:
    """ResNet-50's convolution shapes at batch 8 on oneDNN: bare, then BatchNorm's inference
    steps and ReLU in XLA's pass after it, then the same steps as oneDNN post-ops."""
    print("  single convolutions (ms, medians): bare / + BN+ReLU pass / fused")
    for n, h, c, o, k in [
        (8, 56, 64, 64, 3),
        (8, 56, 64, 256, 1),
        (8, 56, 256, 64, 1),
        (8, 28, 128, 128, 3),
        (8, 14, 256, 1024, 1),
        (8, 7, 512, 512, 3),
    ]:
        keys = jax.random.split(jax.random.key(0), 5)
        x = jax.random.normal(keys[0], (n, h, h, c))
        w = jax.random.normal(keys[1], (k, k, c, o)) * 0.1
        m, i, b = (jax.random.normal(key, (o,)) for key in keys[2:])

        runs = conv_runs(x, w, (m, i, b))
        for fn in runs.values():
            fn().block_until_ready()
        med = {
            name: statistics.median(t) * 1e3 for name, t in time_interleaved(runs, rounds).items()
        }
        print(
            f"    [{n},{h},{h},{c}] {k}x{k} -> {o}: {med['bare']:.2f} / {med['separate']:.2f} "
            f"(+{med['separate'] / med['bare'] - 1:.0%}) / {med['fused']:.2f} "
            f"(+{med['fused'] / med['bare'] - 1:.0%})"
        )


def conv_runs(x: jax.Array, w: jax.Array, vectors: tuple) -> dict:
    """One convolution bare, with BatchNorm+ReLU after it in XLA, and with them fused."""
    m, i, b = vectors

    def conv(x, w):
        return onednn.conv(x, w, strides=(1, 1), padding="SAME")

    bare = jax.jit(conv)
    separate = jax.jit(lambda x, w, m, i, b: jax.nn.relu((conv(x, w) - m) * i + b))
    fused = jax.jit(
        lambda x, w, *v: onednn.conv_post(
            x, w, ("sub", "mul", "add", "relu"), v, strides=(1, 1), padding="SAME"
        )
    )
    return {
        "bare": lambda: bare(x, w),
        "separate": lambda: separate(x, w, m, i, b),
        "fused": lambda: fused(x, w, m, i, b),
    }


if __name__ == "__main__":
    main()
