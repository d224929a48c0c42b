"""`make demo`: the tensorpack tutorial's argscope + LinearWrap model, in tpflax.

Builds the model from tensorpack's "Symbolic Layers" tutorial, initialises it, jit-compiles
``apply``, runs it in training and inference mode on an embedded batch of synthetic 28x28
images, and prints tensorpack's shape log and trainable-variable summary.

Run: ``python -m tpflax.demo [--batch N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp


def tutorial_net(image: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The tutorial's model, line for line (``tf.multiply`` -> ``.jnp.multiply``)."""

    def func(x: jax.Array, shift: float) -> jax.Array:
        return x + shift

    with tp.argscope(tp.Conv2D, filters=32, kernel_size=3, activation=jax.nn.relu):
        logits = (
            tp.LinearWrap(image)
            .Conv2D("conv0")
            .MaxPooling("pool0", 2)
            .Conv2D("conv1", padding="SAME")
            .Conv2D("conv2", kernel_size=5)
            .FullyConnected("fc0", 512, activation=jax.nn.relu)
            .Dropout("dropout", rate=0.5)
            .jnp.multiply(0.5)
            .apply(func, 0.0)
            .FullyConnected("fc1", units=10, activation=lambda x: x)()
        )
        with (
            tp.argscope([tp.Conv2D, tp.MaxPooling], data_format="NCHW"),
            tp.argscope(tp.Conv2D, kernel_size=1),
        ):
            nchw = jnp.transpose(image, (0, 3, 1, 2))
            l2 = tp.LinearWrap(nchw).Conv2D("conv3", strides=2).MaxPooling("pool3", 2)()
    return logits, l2


def embedded_images(batch: int, seed: int) -> jax.Array:
    """A deterministic batch of 28x28 grey images: bright strokes on a dark background."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((batch, 28, 28, 1), np.float32)
    for i in range(batch):
        cy, cx, r = rng.uniform(9, 19), rng.uniform(9, 19), rng.uniform(4, 9)
        ring = np.abs(np.hypot(yy - cy, xx - cx) - r) < 1.5
        images[i, ..., 0] = ring + 0.05 * rng.randn(28, 28)
    return jnp.asarray(images)


def variable_table(params: dict, state: dict) -> str:
    """Tensorpack's ``describe_trainable_vars`` table, plus the non-trainable state."""
    rows = []
    for kind, tree in (("", params), (" (state)", state)):
        for name, value in tp.checkpoint.flatten(tree).items():
            rows.append((name + kind, str(list(value.shape)), int(np.prod(value.shape))))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'name':<{width}}  {'shape':<16}  {'#elements':>10}", "-" * (width + 30)]
    lines += [f"{n:<{width}}  {s:<16}  {c:>10,}" for n, s, c in rows]
    trainable = tp.checkpoint.flatten(params)
    count = sum(int(np.prod(v.shape)) for v in trainable.values())
    lines.append(f"Number of trainable variables: {len(trainable)}")
    lines.append(f"Number of parameters (elements): {count:,}")
    lines.append(f"Storage space needed for all trainable variables: {count * 4 / 2**20:.2f}MB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="images in the batch (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed for images and weights")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[tpflax] %(message)s"))
    logger = logging.getLogger("tpflax")
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        return _run(args)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _run(args: argparse.Namespace) -> int:

    images = embedded_images(args.batch, args.seed)
    print(f"tpflax {tp.__version__} on JAX {jax.__version__} ({jax.default_backend()})")
    print(f"input: {args.batch} embedded 28x28x1 images\n")
    model = tp.transform(tutorial_net)
    params, state = model.init(jax.random.key(args.seed), images)
    print("\nTrainable variables:\n" + variable_table(params, state) + "\n")

    apply = jax.jit(model.apply, static_argnames="is_training")
    for training in (True, False):
        start = time.perf_counter()
        (logits, l2), _ = apply(
            params, state, images, is_training=training, rng=jax.random.key(args.seed + 1)
        )
        logits.block_until_ready()
        compiled = time.perf_counter() - start
        start = time.perf_counter()
        (logits, l2), _ = apply(
            params, state, images, is_training=training, rng=jax.random.key(args.seed + 2)
        )
        logits.block_until_ready()
        run = time.perf_counter() - start
        mode = "training " if training else "inference"
        probs = jax.nn.softmax(logits)
        print(
            f"{mode}: logits {list(logits.shape)}, NCHW branch {list(l2.shape)}, "
            f"top class per image {np.asarray(jnp.argmax(probs, -1)).tolist()}, "
            f"first call {compiled * 1e3:.0f} ms (compile), next {run * 1e3:.1f} ms"
        )
    _weights_round_trip(model, params, state, images)
    return 0


def _weights_round_trip(model: tp.Transformed, params: dict, state: dict, images: Any) -> None:
    """Writes the weights as tensorpack's .npz and as a TensorFlow checkpoint, reads both back
    and checks the model computes the same logits."""
    (want, _), _ = model.apply(params, state, images)
    print()
    with tempfile.TemporaryDirectory() as folder:
        npz = os.path.join(folder, "tutorial.npz")
        prefix = os.path.join(folder, "model-1")
        tp.checkpoint.save_npz(npz, params, state)
        tp.checkpoint.save_tf_checkpoint(prefix, tp.checkpoint.flatten(params, state))
        for label, path in (("tensorpack .npz", npz), ("TF checkpoint", prefix)):
            loaded = tp.checkpoint.load(path)
            fresh_params, fresh_state = model.init(jax.random.key(123), images)
            p, s, report = tp.checkpoint.restore(loaded, fresh_params, fresh_state, strict=True)
            (got, _), _ = model.apply(p, s, images)
            same = bool(jnp.array_equal(got, want))
            size = sum(
                os.path.getsize(os.path.join(folder, f))
                for f in os.listdir(folder)
                if f.startswith(os.path.basename(path))
            )
            print(
                f"weights via {label}: {len(report.loaded)} variables, {size / 2**20:.1f} MiB, "
                f"same logits after reloading: {same}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
