"""`make bench`: ResNet-50 inference with BatchNorm as is and folded into the convolutions
(tp.zoo.fold_batchnorm), both jit-compiled, interleaved in one run; reports the median time
of each, their ratio, and the largest logit difference relative to the logit scale."""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp


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
    plain = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])
    folded = tp.zoo.fold_batchnorm(model_fn, params, state)
    want = plain(params, state, x).block_until_ready()
    got = folded(x).block_until_ready()
    rel = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
    times: dict[str, list[float]] = {"BatchNorm": [], "folded": []}
    for _ in range(args.rounds):
        for name, fn in (
            ("BatchNorm", lambda: plain(params, state, x)),
            ("folded", lambda: folded(x)),
        ):
            start = time.perf_counter()
            fn().block_until_ready()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["BatchNorm"])
    print(f"{args.arch}, batch {args.batch}, {args.size}x{args.size}, {jax.devices()[0].platform}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"  {name:10} {t * 1e3:8.1f} ms   {t / base:5.2f}x")
    print(f"  {len(folded.folded)} BatchNorms folded; max |logit diff| / scale = {rel:.2e}")


if __name__ == "__main__":
    main()
