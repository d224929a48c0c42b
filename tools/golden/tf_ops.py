"""Writes the fixtures of ``tpflax.compat.tf`` from real TensorFlow 2.21 (``tf.compat.v1``,
graph mode, CPU): ``tests/golden/tf_ops/ops.npz`` and ``tests/golden/tf_ops/random.npz``.

Run by `make golden-tf-ops` in `.venv-golden`. Every case is the source of a function of its
inputs written against ``tf`` (``"lambda x: tf.reduce_mean(x, 1, keep_dims=True)"``); it is run
here with ``tf = tf.compat.v1`` and replayed by tests/test_compat_ops.py with
``tf = tpflax.compat.tf``, so one text pins both sides. ops.npz holds, per case ``<id>/``:

    spec        JSON: {"src", "n_in", "n_out", "grad"}
    in<j>       the inputs (float32, int32 or bool)
    out<k>      TensorFlow's outputs (a list-valued op gives several)
    cot<k>      one cotangent per float output (loss = sum(out_k * cot_k))
    grad<j>     d loss / d in<j> for each float input (when "grad")

random.npz pins what cannot match bit for bit (TensorFlow's random stream): per case, the
statistics of one large TensorFlow sample (mean, std, min, max, fraction non-zero, size,
whether the distribution is bounded) under ``<id>/stats``, and the exact values of the
constant initializers under ``<id>/value``.

Nothing in the fixtures comes from tpflax.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
tf1 = tf.compat.v1

sys.path.insert(0, os.path.dirname(__file__))
from tf_ops_cases import INITIALIZERS, RANDOM, cases


def stats(v, bounded):
    v = np.asarray(v, "float64")
    return np.asarray(
        [v.mean(), v.std(), v.min(), v.max(), np.mean(v != 0), v.size, float(bounded)]
    )


def op_fixtures():
    out = {}
    for cid, src, inputs in cases():
        g = tf.Graph()
        with g.as_default(), tf1.Session(graph=g) as sess:
            fn = eval(src, {"tf": tf1})
            ins = [tf1.constant(v) for v in inputs]
            res = fn(*ins)
            outs = list(res) if isinstance(res, list | tuple) else [res]
            rng = np.random.RandomState(len(out))
            cots = [
                np.asarray(rng.randn(*o.shape.as_list()), "float32")
                if o.dtype == tf.float32
                else None
                for o in outs
            ]
            floats = [j for j, v in enumerate(inputs) if v.dtype == np.float32]
            grads = None
            if floats and any(c is not None for c in cots):
                loss = tf.add_n(
                    [tf.reduce_sum(o * c) for o, c in zip(outs, cots, strict=True) if c is not None]
                )
                grads = tf1.gradients(loss, [ins[j] for j in floats])
                grads = [
                    tf.zeros_like(ins[j]) if d is None else tf1.convert_to_tensor(d)
                    for j, d in zip(floats, grads, strict=True)
                ]
            fetched = sess.run([outs, grads] if grads is not None else [outs, []])
        spec = {"src": src, "n_in": len(inputs), "n_out": len(outs), "grad": grads is not None}
        out[f"{cid}/spec"] = np.asarray(json.dumps(spec))
        for j, v in enumerate(inputs):
            out[f"{cid}/in{j}"] = v
        for k, (v, c) in enumerate(zip(fetched[0], cots, strict=True)):
            out[f"{cid}/out{k}"] = np.asarray(v)
            if c is not None:
                out[f"{cid}/cot{k}"] = c
        for j, gv in zip(floats if grads is not None else [], fetched[1], strict=True):
            out[f"{cid}/grad{j}"] = np.asarray(gv, "float32")
        print(f"{cid:40s} {src}")
    return out


def random_fixtures():
    out = {}
    for cid, src, bounded in RANDOM:
        g = tf.Graph()
        with g.as_default(), tf1.Session(graph=g) as sess:
            tf1.set_random_seed(0)  # the same fixtures each time they are made
            v = sess.run(eval(src, {"tf": tf1})())
        out[f"{cid}/spec"] = np.asarray(json.dumps({"src": src}))
        out[f"{cid}/stats"] = stats(v, bounded)
        out[f"{cid}/dtype"] = np.asarray(str(v.dtype))
    for cid, src, shape, kind in INITIALIZERS:
        g = tf.Graph()
        with g.as_default(), tf1.Session(graph=g) as sess:
            tf1.set_random_seed(0)
            v = sess.run(eval(src, {"tf": tf1})()(shape, dtype=tf.float32))
        out[f"{cid}/spec"] = np.asarray(json.dumps({"src": src, "shape": shape, "kind": kind}))
        if kind == "exact":
            out[f"{cid}/value"] = v
        else:
            out[f"{cid}/stats"] = stats(v, kind == "bounded")
        print(f"{cid:40s} {src}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/tf_ops")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    np.savez_compressed(os.path.join(args.out, "ops.npz"), **op_fixtures())
    np.savez_compressed(os.path.join(args.out, "random.npz"), **random_fixtures())


if __name__ == "__main__":
    main()
