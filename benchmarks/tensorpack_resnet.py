"""The reference for speed: tensorpack 0.11 on TensorFlow (CPU) runs ResNet (tools/golden/zoo.py's
builder, tensorpack's examples/ResNet structure) in inference and a training step (Momentum,
BatchNorm in training, UPDATE_OPS run with the step). Runs in `.venv-golden`, called by
benchmarks/vs_tensorpack.py, and prints one JSON line: the times of every repeat, in seconds.

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

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
from tensorpack.tfutils.tower import TowerContext

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "golden"))
from zoo import resnet

tf1 = tf.compat.v1


def session() -> tf1.Session:
    config = tf1.ConfigProto(
        intra_op_parallelism_threads=os.cpu_count() or 1, inter_op_parallelism_threads=1
    )
    return tf1.Session(config=config)


def run(depth: int, batch: int, size: int, training: bool, repeats: int) -> list[float]:
    tf1.reset_default_graph()
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
    rng = np.random.RandomState(0)
    feed = {
        image: rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"),
        label: (np.arange(batch) % 1000).astype("int32"),
    }
    times = []
    with session() as sess:
        sess.run(tf1.global_variables_initializer())
        sess.run(fetch, feed)  # warm-up (graph optimizations, oneDNN primitives)
        for _ in range(repeats):
            t0 = time.perf_counter()
            sess.run(fetch, feed)
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = {
        "infer": run(args.depth, args.batch, args.size, False, args.repeats),
        "train": run(args.depth, args.batch, args.size, True, args.repeats),
        "tensorflow": tf.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
