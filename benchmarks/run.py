"""`make bench`: what tpflax's sugar costs under jit, measured side by side in one run.

Runs the tensorpack tutorial model (tpflax: argscope + LinearWrap + named layers) and the same
network hand-written with jax.lax on the same params, both jit-compiled, interleaved, and
reports the median time of each and their ratio. The ratio is what to read: this machine is
shared and noisy, absolute times are not comparable across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

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


def handwritten(params: dict, image: jax.Array) -> jax.Array:
    """tutorial_net's first output, in plain jax.lax, inference mode."""

    def conv(x, p, padding="SAME"):
        y = lax.conv_general_dilated(
            x, p["W"], (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jax.nn.relu(y + p["b"].reshape(1, 1, 1, -1))

    x = conv(image, params["conv0"])
    x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = conv(x, params["conv1"])
    x = conv(x, params["conv2"])
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(x @ params["fc0"]["W"] + params["fc0"]["b"][None, :])
    x = x * 0.5 + 0.0
    return x @ params["fc1"]["W"] + params["fc1"]["b"][None, :]


def timeit(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(runs: dict, rounds: int) -> dict:
    """Each callable's times over ``rounds``, interleaved (every one sees the same machine
    load), the order rotated each round."""
    times: dict = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            times[name].extend(timeit(runs[name], 1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    image = embedded_images(args.batch, 0)
    model = tp.transform(lambda x: tutorial_net(x)[0])
    params, state = model.init(jax.random.key(0), image)
    ours = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])
    theirs = jax.jit(handwritten)
    a, b = ours(params, state, image), theirs(params, image)
    err = float(jnp.max(jnp.abs(a - b)))
    t_ours, t_hand = [], []
    for _ in range(args.rounds):  # interleaved, so both see the same machine load
        t_ours += timeit(lambda: ours(params, state, image), 3)
        t_hand += timeit(lambda: theirs(params, image), 3)
    m_ours, m_hand = statistics.median(t_ours), statistics.median(t_hand)
    print(f"device: {jax.devices()[0].device_kind}, batch {args.batch}, max |diff| {err:.2e}")
    print(f"tpflax tutorial model (jit): {m_ours * 1e3:8.2f} ms median")
    print(f"hand-written jax.lax  (jit): {m_hand * 1e3:8.2f} ms median")
    print(f"ratio tpflax / hand-written: {m_ours / m_hand:.3f}")


if __name__ == "__main__":
    main()
