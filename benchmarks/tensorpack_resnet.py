"""The reference for speed: tensorpack 0.11 on TensorFlow (CPU) runs ResNet (tools/golden/zoo.py's
builder, tensorpack's examples/ResNet structure) in inference and a training step (Momentum,
BatchNorm in training, UPDATE_OPS run with the step). Runs in `.venv-golden`.

Two ways to run it:
- ``--serve`` (what benchmarks/vs_tensorpack.py uses): builds and warms both graphs, prints one
  JSON line (``{"ready": true, "tensorflow": ..., "onednn": ...}``), then answers each line
  ``infer`` or ``train`` read from stdin with one timed call's seconds, until ``quit`` or the
  end of stdin. So the caller times tensorpack interleaved with its own variants, on the same
  machine load, one call at a time.
- Without it: times ``--repeats`` calls of each and prints one JSON line with every time.

Threads: TensorFlow gets the cores JAX uses, all of the machine's: intra-op parallelism =
os.cpu_count() (XLA:CPU's Eigen pool is as large), inter-op parallelism 1 (XLA runs one op at
a time on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
from tensorpack.tfutils.tower import TowerContext

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "golden"))
from zoo import resnet

tf1 = tf.compat.v1


def session(graph: tf1.Graph) -> tf1.Session:
    config = tf1.ConfigProto(
        intra_op_parallelism_threads=os.cpu_count() or 1, inter_op_parallelism_threads=1
    )
    return tf1.Session(graph=graph, config=config)


def build(depth: int, batch: int, size: int, training: bool) -> Callable[[], None]:
    """One call of inference or of a training step, in its own graph and session, warmed up
    (graph optimizations, oneDNN primitives)."""
    graph = tf1.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.float32, [batch, size, size, 3], "input")
        label = tf1.placeholder(tf.int32, [batch], "label")
        with TowerContext("", is_training=training):
            (logits,) = resnet(depth, "resnet", data_format="NHWC")(image)
        if training:
            cost = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(logits=logits, labels=label)
            )
            with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
                fetch = tf1.train.MomentumOptimizer(0.1, 0.9).minimize(cost)
        else:
            fetch = logits
        init = tf1.global_variables_initializer()
    rng = np.random.RandomState(0)
    feed = {
        image: rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"),
        label: (np.arange(batch) % 1000).astype("int32"),
    }
    sess = session(graph)
    sess.run(init)

    def call() -> None:
        sess.run(fetch, feed)

    call()
    return call


def seconds(call: Callable[[], None]) -> float:
    """One call's wall time."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def versions() -> dict[str, str]:
    return {
        "tensorflow": tf.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


def serve(calls: dict[str, Callable[[], None]], out: TextIO) -> None:
    """Answers the requests on stdin on ``out`` (the module doc's protocol)."""

    def reply(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    reply(json.dumps({"ready": True, **versions()}))
    for line in sys.stdin:
        kind = line.strip()
        if kind == "quit":
            return
        if kind not in calls:
            reply(json.dumps({"error": f"expected one of {sorted(calls)} or quit, got {kind!r}"}))
            continue
        reply(str(seconds(calls[kind])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help="time calls asked on stdin")
    args = parser.parse_args()
    if args.serve:
        # the replies keep stdout to themselves: tensorpack's logger (and anything else that
        # prints) goes to stderr
        out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    calls = {
        kind: build(args.depth, args.batch, args.size, kind == "train")
        for kind in ("infer", "train")
    }
    if args.serve:
        serve(calls, out)
        return
    times = {kind: [seconds(call) for _ in range(args.repeats)] for kind, call in calls.items()}
    print(json.dumps({**times, **versions()}))


if __name__ == "__main__":
    main()
