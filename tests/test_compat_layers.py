"""tpflax.compat.tf.layers against real TensorFlow: the compat_layers_* goldens
(tools/golden/tf_layers.py) run here as the same model functions, only the imports differ
(test_model_bodies_are_the_golden_twins checks that)."""

from __future__ import annotations

import ast
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import GOLDEN_DIR, OUT_RTOL, assert_close, check_fixture, fixtures

import tpflax as tp
from tpflax.compat import tf
from tpflax.compat.tensorpack import (
    FullyConnected,
    argscope,
    enable_argscope_for_module,
    get_current_tower_context,
)

enable_argscope_for_module(tf.layers)


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    """TensorFlow broadcasts ranks implicitly; the suite's conftest makes JAX raise on that."""
    with jax.numpy_rank_promotion("allow"):
        yield


# ------------------------------------------- the golden models (same bodies as tools/golden)
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
    "compat_layers_nchw_train": model_layers_nchw,
    "compat_layers_mnist_infer": model_layers_mnist,
    "compat_layers_bn_train": model_layers_bn,
    "compat_layers_bn_infer": model_layers_bn,
    "compat_layers_scopes_train": model_layers_scopes,
    "compat_layers_generator_train": model_layers_generator,
    "compat_layers_naming_train": model_layers_naming,
}
GOLDEN = {fx.id: fx for fx in fixtures("compat_layers_*.npz")}


@pytest.mark.parametrize("fixture_id", sorted(MODELS))
def test_tf_layers_models_match_tensorflow(fixture_id: str) -> None:
    """Variable names (so TF checkpoints load by name: restore is strict), outputs, moving
    statistics after a training step, gradients and the tensors fetched by TF name."""
    check_fixture(GOLDEN[fixture_id], MODELS[fixture_id])


def test_model_bodies_are_the_golden_twins() -> None:
    """The ported functions are the TensorFlow originals, character for character in the AST."""
    source = pathlib.Path(__file__).parents[1] / "tools" / "golden" / "tf_layers.py"
    theirs = {
        node.name: ast.dump(node)
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("model_")
    }
    ours = {
        node.name: ast.dump(node)
        for node in ast.parse(pathlib.Path(__file__).read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("model_")
    }
    assert sorted(theirs) == sorted(ours) and theirs == ours


def test_a_tensorflow_checkpoint_of_tf_layers_loads_by_name() -> None:
    """model_layers_bn trained three steps by TensorFlow and saved by tf.train.Saver
    (tools/golden/tf_layers.py): every variable loads by its TF name, the optimizer's slots
    and global_step are skipped, and the inference output is TensorFlow's."""
    where = GOLDEN_DIR / "tf_layers"
    with np.load(where / "reference.npz") as data:
        x, want = jnp.asarray(data["input"]), data["output"]
    model = tp.transform(model_layers_bn)
    params0, state0 = jax.eval_shape(model.init, jax.random.key(0), x)
    params, state, report = tp.checkpoint.restore(str(where / "model-3"), params0, state0)
    assert sorted(report.loaded) == sorted(tp.checkpoint.flatten(params0, state0))
    assert "global_step" in report.skipped and "conv0/kernel/Momentum" in report.skipped
    (got,), _ = model.apply(params, state, x)
    assert_close("output", got, want, OUT_RTOL)


# ----------------------------------------------------------------- naming beyond the goldens
def _names(fn, x):
    params, state = jax.eval_shape(tp.transform(fn).init, jax.random.key(0), x)
    return sorted(tp.checkpoint.flatten(params, state))


def test_unnamed_layers_are_numbered_as_tensorflow_numbers_them() -> None:
    """Measured with TF 2.21's tf.compat.v1.layers: a variable scope opened before counts,
    AUTO_REUSE scopes share, an unnamed layer after a same-named one raises."""
    x = jnp.ones((2, 6, 6, 3))

    def after_user_scope(x):
        with tf.variable_scope("conv2d"):
            tf.get_variable("w", [1])
        return tf.layers.conv2d(x, 2, 3)

    assert _names(after_user_scope, x) == ["conv2d/w", "conv2d_1/bias", "conv2d_1/kernel"]

    def auto_reuse(x):
        with tf.variable_scope("a", reuse=tf.AUTO_REUSE):
            y, z = tf.layers.conv2d(x, 2, 3), tf.layers.conv2d(x, 2, 3)
        with tf.variable_scope("a", reuse=tf.AUTO_REUSE):
            return y, z, tf.layers.conv2d(x, 2, 3)

    want = ["a/conv2d/bias", "a/conv2d/kernel", "a/conv2d_1/bias", "a/conv2d_1/kernel"]
    assert _names(auto_reuse, x) == want

    def named_after_unnamed(x):
        return tf.layers.conv2d(x, 2, 3), tf.layers.conv2d(x, 2, 3, name="conv2d")

    with pytest.raises(ValueError, match=r"'conv2d/kernel' already exists"):
        _names(named_after_unnamed, x)

    def named_reuse(x):
        y = tf.layers.conv2d(x, 2, 3, name="c")
        return y, tf.layers.conv2d(x, 2, 3, name="c", reuse=True)

    assert _names(named_reuse, x) == ["c/bias", "c/kernel"]


def test_layer_object_made_outside_the_model_is_built_in_each_call() -> None:
    """A tf.layers object kept outside the model function creates its variables in init and
    reads them in apply (its scope is remembered per model call)."""
    dense = tf.layers.Dense(3, name="head")

    def net(x):
        return dense(x) + dense(x * 2.0)

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones((2, 4)))
    assert sorted(tp.checkpoint.flatten(params)) == ["head/bias", "head/kernel"]
    y, _ = model.apply(params, state, jnp.ones((2, 4)))
    assert y.shape == (2, 3)


def test_dropout_uses_the_model_rng_in_training() -> None:
    def net(x):
        return tf.layers.dropout(x, rate=0.25, training=get_current_tower_context().is_training)

    model = tp.transform(net)
    x = jnp.ones((64, 64))
    params, state = model.init(jax.random.key(0), x)
    y, _ = model.apply(params, state, x, is_training=True, rng=jax.random.key(1))
    kept = np.asarray(y) != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75, rtol=1e-6)
    same, _ = model.apply(params, state, x, is_training=False)
    assert (same == x).all()


def test_flatten_channels_first_flattens_in_channels_last_order() -> None:
    x = jnp.arange(2 * 3 * 2 * 2, dtype=jnp.float32).reshape(2, 3, 2, 2)
    y, _ = tp.transform(lambda x: tf.layers.flatten(x, data_format="channels_first")).apply(
        {}, {}, x
    )
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1).reshape(2, -1))


def test_layer_errors_name_the_call() -> None:
    x = jnp.ones((2, 4, 4, 3))

    def init(fn):
        return tp.transform(fn).init(jax.random.key(0), x)

    with pytest.raises(TypeError, match=r"tf.layers.Conv2D: activation must be a function"):
        init(lambda x: tf.layers.conv2d(x, 2, 3, activation="relu"))
    with pytest.raises(ValueError, match=r"Conv2D: strides > 1 with dilation_rate > 1"):
        init(lambda x: tf.layers.conv2d(x, 2, 3, strides=2, dilation_rate=2))
    with pytest.raises(NotImplementedError, match=r"tf.layers.Dense: kernel_constraint="):
        init(lambda x: tf.layers.dense(x, 2, kernel_constraint=abs))
    with pytest.raises(NotImplementedError, match=r"BatchNormalization: renorm="):
        init(lambda x: tf.layers.batch_normalization(x, renorm=True))
    with pytest.raises(ValueError, match=r"'batch_normalization': fused=True needs a 4-D"):
        init(lambda x: tf.layers.batch_normalization(x[:, 0, 0], fused=True))
    with pytest.raises(ValueError, match=r"tf.layers.Conv2D 'conv2d': inputs must be 4-D"):
        init(lambda x: tf.layers.conv2d(x[0], 2, 3))
    with pytest.raises(TypeError, match=r"'dropout': training must be a Python bool"):
        jax.jit(lambda x: init(lambda y: tf.layers.dropout(y, training=x.sum() > 0)))(x)


def test_tf_layers_keep_their_names_in_a_flax_module() -> None:
    """Inside tp.linen.layers the variables are the module's, under TensorFlow's names."""
    import flax.linen as nn

    class Head(nn.Module):
        @nn.compact
        def __call__(self, x):
            with tp.linen.layers(self, train=True):
                h = tf.layers.batch_normalization(tf.layers.dense(x, 3), training=True)
                return tf.layers.dense(h, 2)

    variables = jax.eval_shape(Head().init, jax.random.key(0), jnp.ones((2, 4)))
    assert sorted(variables["params"]) == [
        "batch_normalization/beta",
        "batch_normalization/gamma",
        "dense/bias",
        "dense/kernel",
        "dense_1/bias",
        "dense_1/kernel",
    ]
    assert sorted(variables["batch_stats"]) == [
        "batch_normalization/moving_mean",
        "batch_normalization/moving_variance",
    ]
