"""`make bench`: the mixed-precision inference mode (float32 weights and BatchNorm statistics,
bfloat16 activations, products summed in float32; README "Mixed precision") against float32.

1. Accuracy on real data: tensorpack's digits checkpoint (the demo's, src/tpflax/demo_data)
   on the 360 held-out images, float32 and bfloat16: accuracy, agreement of the predicted
   classes, largest logit change.
2. Speed: ResNet-18 and ResNet-50 (tp.zoo, batch 8, 224x224, NHWC) inference in float32 and
   in bfloat16 (under 'auto', and bfloat16 with XLA's convolutions, `tp.conv_impl('xla')`),
   timed interleaved, medians; tensorpack's preprocessing runs in float32, the network on
   its bfloat16 output.

Appends a row to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import statistics
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from conv_lowering import RESULTS, machine
from run import time_interleaved

import tpflax as tp
from tpflax import demo


def digits_accuracy() -> dict[str, float]:
    data = demo.load_data()
    x, y = data["test_images"].astype(np.float32), data["test_labels"]
    model = tp.transform(demo.digits_net)
    params, state = model.init(jax.random.key(0), x[:1])
    params, state, _ = tp.checkpoint.restore(
        str(demo.DATA / demo.CHECKPOINT), params, state, strict=True
    )
    predict = jax.jit(lambda x: model.apply(params, state, x)[0].astype(jnp.float32))
    f32 = np.asarray(predict(jnp.asarray(x)))
    bf16 = np.asarray(predict(jnp.asarray(x, jnp.bfloat16)))
    return {
        "float32": float(np.mean(f32.argmax(1) == y)),
        "bfloat16": float(np.mean(bf16.argmax(1) == y)),
        "agree": float(np.mean(f32.argmax(1) == bf16.argmax(1))),
        "max_logit_change": float(np.max(np.abs(f32 - bf16))),
        "logit_scale": float(np.max(np.abs(f32))),
        "n": len(y),
    }


def resnet_speed(depth: int, batch: int, size: int, repeats: int) -> dict[str, float]:
    model = tp.transform(tp.zoo.resnet(depth, preprocess=False))
    pixels = np.random.RandomState(0).uniform(0, 255, (batch, size, size, 3))
    x = tp.zoo.image_preprocess(jnp.asarray(pixels, jnp.float32))
    params, state = jax.jit(model.init)(jax.random.key(0), x)

    def infer(dtype: Any, impl: str) -> Any:
        def run(p: Any, s: Any, x: jax.Array) -> jax.Array:
            with tp.conv_impl(impl):
                return model.apply(p, s, x.astype(dtype))[0]

        return jax.jit(run)

    # 'auto' in both dtypes, and bfloat16 with XLA's own convolutions (where 'auto' ran it
    # before oneDNN's bfloat16 kernels were used)
    fns = {
        "float32": infer(jnp.float32, "auto"),
        "bfloat16": infer(jnp.bfloat16, "auto"),
        "bfloat16-xla": infer(jnp.bfloat16, "xla"),
    }
    for f in fns.values():
        jax.block_until_ready(f(params, state, x))
    runs = {name: functools.partial(f, params, state, x) for name, f in fns.items()}
    return {k: statistics.median(v) for k, v in time_interleaved(runs, repeats).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="18,50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    acc = digits_accuracy()
    print(
        f"digits held out ({acc['n']} images, tensorpack's checkpoint): accuracy float32 "
        f"{acc['float32']:.4f}, bfloat16 {acc['bfloat16']:.4f}; classes agree on "
        f"{acc['agree']:.2%}; largest logit change {acc['max_logit_change']:.3f} (logits up to "
        f"{acc['logit_scale']:.1f})"
    )
    cells = [
        f"digits accuracy f32 {acc['float32']:.4f} / bf16 {acc['bfloat16']:.4f}, agree "
        f"{acc['agree']:.2%}, max logit change {acc['max_logit_change']:.3f} of "
        f"{acc['logit_scale']:.1f}"
    ]
    for depth in [int(d) for d in args.depths.split(",")]:
        t = resnet_speed(depth, args.batch, args.size, args.repeats)
        flops = 2 * tp.zoo.count_macs(tp.zoo.resnet(depth)) * args.batch
        print(
            f"ResNet-{depth} b{args.batch} inference: float32 {t['float32']:.3f} s "
            f"({flops / t['float32'] / 1e9:.0f} GFLOP/s), bfloat16 {t['bfloat16']:.3f} s "
            f"({flops / t['bfloat16'] / 1e9:.0f} GFLOP/s): {t['float32'] / t['bfloat16']:.2f}x; "
            f"bfloat16 on XLA's convolutions {t['bfloat16-xla']:.3f} s "
            f"({t['float32'] / t['bfloat16-xla']:.2f}x)"
        )
        cells.append(
            f"ResNet-{depth} infer f32 {t['float32']:.3f} s / bf16 {t['bfloat16']:.3f} s "
            f"({t['float32'] / t['bfloat16']:.2f}x) / bf16 on XLA {t['bfloat16-xla']:.3f} s "
            f"({t['float32'] / t['bfloat16-xla']:.2f}x)"
        )
    if not args.no_record:
        with RESULTS.open("a") as f:
            f.write(
                f"| {datetime.date.today()} | bfloat16 | digits held out; ResNet b{args.batch} "
                f"{args.size}px NHWC | {machine()} | jax "
                f"{jax.__version__} | " + "; ".join(cells) + f" | medians of {args.repeats}, "
                "interleaved |\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
