"""Writes the ``compat_layers_*`` golden fixtures: model functions in the style of
tensorpack's examples that build with ``tf.layers``, run by TensorFlow 2.21's
``tf.compat.v1.layers`` (tf_keras' legacy layers, graph mode) through generate.py's runner.

tests/test_compat_layers.py runs the same functions through ``tpflax.compat``: the bodies are
identical, only the imports differ. Run in ``.venv-golden``:

    python tools/golden/tf_layers.py --out tests/golden
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import generate  # sets TF's environment and graph mode first
import tensorflow.compat.v1 as tf
from tensorpack import FullyConnected
from tensorpack.tfutils.argscope import argscope, enable_argscope_for_module
from tensorpack.tfutils.tower import get_current_tower_context

enable_argscope_for_module(tf.layers)


# ------------------------------------------------- the models (same bodies in the tests)
def model_layers_mnist(image):
    """examples/basics/mnist-tflayers.py at a small size: tf.layers under an argscope."""
    is_training = get_current_tower_context().is_training
    image = image * 2 - 1
    with argscope([tf.layers.conv2d], padding="same", activation=tf.nn.relu):
        l = tf.layers.conv2d(image, 4, 3, name="conv0")
        l = tf.layers.max_pooling2d(l, 2, 2, padding="valid")
        l = tf.layers.conv2d(l, 4, 3, name="conv1")
        l = tf.layers.conv2d(l, 4, 3)
        l = tf.layers.max_pooling2d(l, 2, 2, padding="valid")
        l = tf.layers.conv2d(l, 6, 3, padding="valid")
    l = tf.layers.flatten(l)
    l = tf.layers.dense(l, 16, activation=tf.nn.relu, name="fc0")
    l = tf.layers.dropout(l, rate=0.5, training=is_training)
    logits = tf.layers.dense(l, 10)
    return [tf.identity(logits, name="logits")]


def model_layers_bn(image):
    """A conv + BatchNorm classifier (fused 4-D and non-fused 2-D batch_normalization),
    trained one step so the moving statistics are pinned."""
    is_training = get_current_tower_context().is_training
    l = tf.layers.conv2d(image, 4, 3, padding="same", use_bias=False, name="conv0")
    l = tf.layers.batch_normalization(l, training=is_training, name="bn0")
    l = tf.nn.relu(l)
    l = tf.layers.average_pooling2d(l, 3, 2, padding="same")
    l = tf.layers.conv2d(l, 6, 3, strides=2, padding="valid", use_bias=False)
    l = tf.layers.batch_normalization(l, axis=3, momentum=0.9, training=is_training)
    l = tf.layers.flatten(tf.nn.relu(l))
    l = tf.layers.dense(l, 8, use_bias=False)
    l = tf.layers.batch_normalization(l, epsilon=1e-5, training=is_training)
    return [tf.layers.dense(tf.nn.relu(l), 3, name="linear")]


def model_layers_generator(z):
    """A DCGAN-style generator of tf.layers.conv2d_transpose (SAME and VALID), with the
    class forms: one Conv2D object applied twice shares its variables."""
    is_training = get_current_tower_context().is_training
    with tf.variable_scope("gen"):
        l = tf.layers.dense(z, 2 * 2 * 8, use_bias=False)
        l = tf.reshape(l, [-1, 2, 2, 8])
        l = tf.nn.relu(tf.layers.batch_normalization(l, training=is_training))
        l = tf.layers.conv2d_transpose(l, 6, 4, strides=2, padding="same")
        l = tf.nn.relu(tf.layers.batch_normalization(l, training=is_training))
        l = tf.layers.conv2d_transpose(l, 4, 3, strides=2, padding="valid")
        refine = tf.layers.Conv2D(4, 3, padding="same", activation=tf.nn.relu)
        l = refine(refine(l))
        img = tf.layers.conv2d_transpose(l, 1, 2, strides=1, activation=tf.tanh, name="out")
    return [tf.identity(img, name="gen_image")]


def model_layers_naming(x):
    """TensorFlow's numbering of tf.layers scopes: unnamed calls after a named one and after
    a tensorpack layer, a discriminator of unnamed layers called in a scope and again with
    reuse=True, tf.identity names beside layer scopes, layer objects named twice."""

    def discriminator(t):
        t = tf.layers.dense(t, 4, activation=tf.nn.leaky_relu)
        return tf.layers.dense(t, 1)

    h = tf.layers.dense(x, 5, name="dense_1")
    h = tf.layers.dense(h, 5)
    h = tf.layers.dense(h, 5)
    h = FullyConnected("fc", h, 5)
    k = tf.identity(h, name="fc_1")
    h = tf.layers.Dense(5, name="fc")(k)
    with tf.variable_scope("discrim"):
        real = discriminator(h)
    with tf.variable_scope("discrim", reuse=True):
        fake = discriminator(tf.tanh(h))
    h2 = tf.layers.Dense(3, name="twice")(h)
    h3 = tf.layers.Dense(3, name="twice")(h)
    return [real, fake, tf.identity(h2 + h3, name="sum")]


def model_layers_scopes(x):
    """Every variable scope counts for tf.layers' numbering, as TensorFlow counts it: one
    opened and left empty, a default_name scope, a tensorpack layer's; counts inside a
    scope start afresh when it is opened again, and a scope object re-entered restores
    them on exit."""
    with tf.variable_scope("dense"):
        pass
    h = tf.layers.dense(x, 4)
    with tf.variable_scope(None, default_name="dense"):
        h = tf.layers.dense(h, 4)
    h = FullyConnected("dense_3", h, 4)
    h = tf.layers.dense(h, 4)
    with tf.variable_scope("block") as block:
        h = tf.layers.dense(h, 4)
        with tf.variable_scope(None, default_name="sub"):
            h = tf.layers.dense(h, 4)
    with tf.variable_scope(block, reuse=True):
        shared = tf.layers.dense(h, 4)
        with tf.variable_scope(None, default_name="sub"):
            shared = tf.layers.dense(shared, 4)
    with tf.variable_scope("block", reuse=tf.AUTO_REUSE):
        again = tf.layers.dense(shared, 4)
        more = tf.layers.dense(again, 4, name="extra")
    return [h, shared, tf.identity(again + more, name="last")]


def model_layers_nchw(image):
    """tf.layers in channels_first under one argscope, as tensorpack's GPU examples write
    them: a dilated convolution, BatchNorm on axis 1, SAME pooling, a transposed
    convolution, flatten (in channels-last order) and dense on a 3-D tensor."""
    is_training = get_current_tower_context().is_training
    l = tf.transpose(image, [0, 3, 1, 2])
    layers = [tf.layers.conv2d, tf.layers.conv2d_transpose, tf.layers.flatten]
    layers += [tf.layers.max_pooling2d, tf.layers.average_pooling2d]
    with argscope(layers, data_format="channels_first"):
        l = tf.layers.conv2d(l, 4, 3, dilation_rate=2, padding="same", activation=tf.nn.relu)
        l = tf.layers.batch_normalization(l, axis=1, training=is_training)
        l = tf.layers.max_pooling2d(l, 3, 2, padding="same")
        l = tf.layers.conv2d_transpose(l, 3, 3, strides=2, padding="same")
        pooled = tf.layers.average_pooling2d(l, 3, 2, padding="same")
        flat = tf.layers.flatten(pooled)
    seq = tf.layers.dense(tf.reshape(pooled, [-1, 3, 16]), 5, activation=tf.tanh)
    return [tf.layers.dense(flat, 4), seq]


MODELS = {
    "compat_layers_nchw_train": (model_layers_nchw, [2, 8, 8, 2], True),
    "compat_layers_mnist_infer": (model_layers_mnist, [2, 12, 12, 1], False),
    "compat_layers_bn_train": (model_layers_bn, [4, 8, 8, 2], True),
    "compat_layers_bn_infer": (model_layers_bn, [4, 8, 8, 2], False),
    "compat_layers_generator_train": (model_layers_generator, [3, 6], True),
    "compat_layers_naming_train": (model_layers_naming, [3, 4], True),
    "compat_layers_scopes_train": (model_layers_scopes, [3, 4], True),
}
CAPTURE = {
    "compat_layers_mnist_infer": ["logits"],
    "compat_layers_naming_train": ["fc_1", "sum"],
    "compat_layers_scopes_train": ["last"],
}


def write_checkpoint(out_dir):
    """tests/golden/tf_layers/: model_layers_bn trained three steps by TensorFlow (Momentum,
    the moving statistics updated), saved by tf.train.Saver as model-3, and its inference
    output on a fixed input (reference.npz), computed from the restored checkpoint."""
    import numpy as np

    where = os.path.join(out_dir, "tf_layers")
    os.makedirs(where, exist_ok=True)
    rng = np.random.RandomState(3)
    x_val = rng.randn(4, 8, 8, 2).astype("float32")
    labels = rng.randint(0, 3, 4).astype("int32")

    def build(training):
        tf.reset_default_graph()
        x = tf.placeholder(tf.float32, x_val.shape, name="input")
        with generate.TowerContext("", is_training=training):
            return x, model_layers_bn(x)[0]

    x, logits = build(True)
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        step = tf.train.MomentumOptimizer(0.1, 0.9).minimize(
            loss, global_step=tf.train.get_or_create_global_step()
        )
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for v in tf.global_variables():  # the model's variables from seeded values
            if v.op.name == "global_step" or v.op.name.endswith("/Momentum"):
                continue
            v.load(generate.random_value(rng, v.op.name, v.shape.as_list()), sess)
        for _ in range(3):
            sess.run(step, {x: x_val})
        prefix = tf.train.Saver().save(
            sess, os.path.join(where, "model"), global_step=3, write_meta_graph=False
        )
    x, logits = build(False)
    with tf.Session() as sess:
        tf.train.Saver().restore(sess, prefix)
        out = sess.run(logits, {x: x_val})
    np.savez_compressed(os.path.join(where, "reference.npz"), input=x_val, output=out)
    print(f"wrote {prefix}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden")
    parser.add_argument("--only", default=None, help="substrings of model ids to run, a,b,...")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for mid, (fn, shape, training) in MODELS.items():
        if args.only and not any(part in mid for part in args.only.split(",")):
            continue
        spec = {"id": mid, "model": mid, "input_shape": shape, "training": training, "seed": 1}
        if mid in CAPTURE:
            spec["capture"] = CAPTURE[mid]
        generate.run(spec, fn, args.out)
        print(f"wrote {mid}")
    if not args.only or "checkpoint" in args.only:
        write_checkpoint(args.out)


if __name__ == "__main__":
    main()
