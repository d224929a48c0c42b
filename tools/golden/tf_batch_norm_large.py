"""Tensorpack's BatchNorm in training on ResNet-sized inputs, where tpflax runs oneDNN's batch
normalization as TensorFlow does on CPU (tests/test_onednn_batch_norm.py).

The inputs are too large to commit (26 MB each), so each case is drawn from a seeded
``np.random.RandomState`` that the test draws again in the same order: the input
(``randn * scale + shift``, float32), then the output's cotangent (``randn``, float32).
gamma and beta are drawn after and stored. Saved per case: the spec, gamma and beta, the
EMA after one step, the gradients of gamma and beta, and for the output and the input's
gradient a strided sample and their largest magnitude.

Run in `.venv-golden` (``make golden``): ``python tools/golden/tf_batch_norm_large.py --out
tests/golden/batch_norm_large``.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import tensorflow as tf
from tensorpack import models as tpm
from tensorpack.tfutils.tower import TowerContext

tf1 = tf.compat.v1
tf1.disable_eager_execution()
# (id, input shape, data_format, input scale, input shift, seed)
CASES = [
    ("bn_large_nhwc_112x112x64", (8, 112, 112, 64), "NHWC", 2.0, 1.0, 0),
    ("bn_large_nhwc_56x56x256", (8, 56, 56, 256), "NHWC", 2.0, 1.0, 1),
    ("bn_large_nchw_64x56x56", (8, 64, 56, 56), "NCHW", 3.0, -2.0, 2),
]
SAMPLE_STRIDE = 997  # a strided sample of the large arrays, stored in full precision


def summary(value: np.ndarray) -> dict[str, np.ndarray]:
    value = np.asarray(value, np.float32)
    return {
        "sample": value.reshape(-1)[::SAMPLE_STRIDE].copy(),
        "scale": np.array(np.max(np.abs(value)), np.float32),
    }


def run(case_id, shape, data_format, scale, shift, seed, out_dir):
    tf1.reset_default_graph()
    rng = np.random.RandomState(seed)
    x_val = (rng.randn(*shape) * scale + shift).astype(np.float32)
    cot = rng.randn(*shape).astype(np.float32)
    channels = shape[1] if data_format == "NCHW" else shape[3]
    gamma = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    beta = rng.randn(channels).astype(np.float32)
    x = tf1.placeholder(tf.float32, shape, name="input")
    with TowerContext("", is_training=True):
        y = tpm.BatchNorm("bn", x, data_format=data_format)
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    variables = {v.op.name: v for v in tf1.global_variables()}
    grads = tf.gradients(tf.reduce_sum(y * cot), [x, variables["bn/gamma"], variables["bn/beta"]])
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        variables["bn/gamma"].load(gamma, sess)
        variables["bn/beta"].load(beta, sess)
        y_val, (gx, ggamma, gbeta), _ = sess.run([y, grads, update_ops], {x: x_val})
        ema = {n: sess.run(variables[n]) for n in ("bn/mean/EMA", "bn/variance/EMA")}
    spec = {
        "id": case_id,
        "input_shape": list(shape),
        "data_format": data_format,
        "input_scale": scale,
        "input_shift": shift,
        "seed": seed,
        "sample_stride": SAMPLE_STRIDE,
        "draws": "input = randn * scale + shift, then cotangent = randn, then gamma = "
        "uniform(0.5, 1.5, C), beta = randn(C), all float32",
    }
    record = {
        "spec": np.array(json.dumps(spec)),
        "var/bn/gamma": gamma,
        "var/bn/beta": beta,
        "state/bn/mean/EMA": ema["bn/mean/EMA"],
        "state/bn/variance/EMA": ema["bn/variance/EMA"],
        "grad/var/bn/gamma": ggamma,
        "grad/var/bn/beta": gbeta,
    }
    for name, value in (("output", y_val), ("grad/input", gx)):
        for key, v in summary(value).items():
            record[f"{name}/{key}"] = v
    np.savez_compressed(os.path.join(out_dir, case_id + ".npz"), **record)
    print(f"  {case_id}: batch mean's EMA {ema['bn/mean/EMA'][:3]} ...")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/batch_norm_large")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for case in CASES:
        run(*case, args.out)


if __name__ == "__main__":
    main()
