"""tpflax.compat model code inside flax.linen (tp.linen.Model) and Flax NNX (tp.nnx.Model):
the same outputs, state updates and gradients as tp.transform, whose numbers the compat
goldens pin against TensorFlow (test_compat_layers.py, test_compat_scopes.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import tpflax as tp
from tpflax.compat import tf
from tpflax.compat.tensorpack import BatchNorm, FullyConnected, add_moving_summary


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    with jax.numpy_rank_promotion("allow"):
        yield


def model(x):
    """tf.layers, tensorpack layers, get_variable, a regularizer scope, tf.assign on a
    non-trainable counter and add_moving_summary: every kind of state compat makes."""
    h = tf.layers.dense(x, 6, activation=tf.nn.relu)
    h = tf.layers.batch_normalization(h, training=tp.is_training())
    with tf.variable_scope("head", regularizer=lambda v: 0.1 * tf.reduce_sum(tf.square(v))):
        h = BatchNorm("bn", FullyConnected("fc", h, 4))
        w = tf.get_variable("w", [4, 2])
    seen = tf.get_variable("seen", [], trainable=False, initializer=tf.zeros_initializer())
    tf.assign_add(seen, 1.0)
    logits = tf.matmul(h, w)
    cost = tf.reduce_mean(tf.square(logits), name="cost")
    add_moving_summary(cost)
    return cost + tf.losses.get_regularization_loss(), logits


X = np.random.RandomState(0).randn(5, 3).astype("float32")


def reference(train: bool):
    transformed = tp.transform(model)
    params, state = transformed.init(jax.random.key(0), X, is_training=train)

    def loss(p):
        (cost, logits), new_state = transformed.apply(p, state, X, is_training=train)
        return cost, (logits, new_state)

    (cost, (logits, new_state)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return params, state, cost, logits, new_state, grads


def flat(tree):
    return tp.checkpoint.flatten(tree)


@pytest.mark.slow  # compiles NNX's value_and_grad (~9 s): make test-slow; linen's stays
def test_compat_model_inside_nnx_equals_transform() -> None:
    params, state, cost, logits, new_state, grads = reference(train=True)
    module = tp.nnx.Model(model, X, rngs=nnx.Rngs(0), is_training=True)
    assert sorted(module.params) == sorted(flat(params))
    assert sorted(module.batch_stats) == sorted(flat(state))
    for name, value in flat(params).items():
        module.params[name][...] = value
    for name, value in flat(state).items():
        module.batch_stats[name][...] = value

    def loss(m):
        got_cost, got_logits = m(X, train=True)
        return got_cost, got_logits

    # eager here, jitted in reference(): float rounding apart (1e-7 of 0.09 measured)
    (got_cost, got_logits), got_grads = nnx.value_and_grad(loss, has_aux=True)(module)
    np.testing.assert_allclose(got_cost, cost, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_logits, logits, rtol=1e-5, atol=1e-7)
    for name, want in flat(new_state).items():
        np.testing.assert_allclose(
            module.batch_stats[name][...], want, rtol=1e-5, atol=1e-7, err_msg=name
        )
    grad_params = got_grads.params
    for name, want in flat(grads).items():
        np.testing.assert_allclose(grad_params[name][...], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_compat_model_inside_linen_equals_transform() -> None:
    params, state, cost, logits, new_state, grads = reference(train=True)
    module = tp.linen.Model(model)
    variables = module.init(jax.random.key(0), X, train=True)
    assert sorted(variables["params"]) == sorted(flat(params))
    assert sorted(variables["batch_stats"]) == sorted(flat(state))
    batch_stats = flat(state)

    def loss(p):
        (got_cost, got_logits), updates = module.apply(
            {"params": p, "batch_stats": batch_stats}, X, train=True, mutable=["batch_stats"]
        )
        return got_cost, (got_logits, updates)

    (got_cost, (got_logits, updates)), got_grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        flat(params)
    )
    np.testing.assert_allclose(got_cost, cost, rtol=1e-6)
    np.testing.assert_allclose(got_logits, logits, rtol=1e-6)
    for name, want in flat(new_state).items():
        np.testing.assert_allclose(updates["batch_stats"][name], want, rtol=1e-6, err_msg=name)
    for name, want in flat(grads).items():
        np.testing.assert_allclose(got_grads[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
