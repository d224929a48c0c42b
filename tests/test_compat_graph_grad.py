"""``tf.gradients`` inside model code: the traced graph from xs to ys, differentiated.

TensorFlow's numbers are pinned by the Improved-WGAN port (test_compat_ports.py,
``compat_wgan_gp_train``: its gradient penalty, and the optimizer's gradients through it, to
1e-5 of TensorFlow's). These tests hold the same derivatives to JAX's own ``jax.grad`` of the
function written out by hand, wherever ``apply`` runs: eagerly, under ``jax.jit``, under
``jax.grad`` (second order) and ``jax.vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp
from tpflax.compat import tf


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    with jax.numpy_rank_promotion("allow"):
        yield


X = jnp.asarray(np.random.RandomState(0).randn(4, 5), jnp.float32)


def net(x):
    y = tp.FullyConnected("fc", x, 3, activation=tf.nn.relu)  # TF's relu gradient rule
    score = tf.reduce_sum(tf.square(tf.tanh(y)))
    (g,) = tf.gradients(score, [x])
    g2 = tf.gradients([y, score], x, grad_ys=[2.0 * tf.ones_like(y), None])[0]
    return tf.reduce_sum(tf.square(g)) + tf.reduce_sum(g2)


def by_hand(params, x):
    w, b = params["fc"]["W"], params["fc"]["b"]

    def inner(x):
        y = jax.nn.relu(x @ w + b)
        return y, jnp.sum(jnp.tanh(y) ** 2)

    g = jax.grad(lambda x: inner(x)[1])(x)
    _, pullback = jax.vjp(inner, x)
    (g2,) = pullback((2.0 * jnp.ones((x.shape[0], 3)), jnp.ones(())))
    return jnp.sum(g**2) + jnp.sum(g2)


def close(a, b, rtol=1e-5):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-6), a, b)


@pytest.fixture(scope="module")
def variables():
    return tp.transform(net).init(jax.random.key(0), X)


def test_value_eagerly_and_under_jit(variables) -> None:
    params, state = variables
    model = tp.transform(net)
    want = by_hand(params, X)
    close(model.apply(params, state, X)[0], want)
    close(jax.jit(model.apply)(params, state, X)[0], want)


def test_second_order_through_the_optimizers_gradient(variables) -> None:
    """The penalty's own gradient with respect to the weights, as tf.train's optimizers take
    it in Improved-WGAN: the replayed graph is part of the program jax.grad differentiates."""
    params, state = variables
    model = tp.transform(net)
    want = jax.grad(by_hand)(params, X)
    close(jax.grad(lambda p: model.apply(p, state, X)[0])(params), want)
    close(jax.jit(jax.grad(lambda p: model.apply(p, state, X)[0]))(params), want)


def test_vmapped_apply(variables) -> None:
    params, state = variables
    model = tp.transform(net)
    xs = jnp.stack([X, 2 * X])
    got = jax.vmap(lambda x: model.apply(params, state, x)[0])(xs)
    close(got, jnp.stack([by_hand(params, X), by_hand(params, 2 * X)]))


def test_unconnected_stopped_and_deep() -> None:
    """None for an x that ys do not depend on (zeros with unconnected_gradients='zero'),
    tf.stop_gradient respected, and a graph deeper than Python's recursion limit."""

    def model(x):
        other = tf.ones([2])
        stopped = tf.stop_gradient(x) * x  # d/dx = x, not 2x
        deep = x
        for _ in range(1500):
            deep = deep * 1.001
        none, zero = (
            tf.gradients(tf.reduce_sum(x), [other, other])[0],
            tf.gradients(tf.reduce_sum(x), other, unconnected_gradients="zero")[0],
        )
        return none, zero, tf.gradients(stopped, x)[0], tf.gradients(tf.reduce_sum(deep), x)[0]

    x = jnp.asarray([1.0, -2.0, 3.0])
    (none, zero, stopped, deep), _ = jax.jit(tp.transform(model).apply)({}, {}, x)
    assert none is None
    np.testing.assert_array_equal(zero, np.zeros(2))
    np.testing.assert_allclose(stopped, x)
    np.testing.assert_allclose(deep, np.full(3, 1.001**1500), rtol=1e-4)


def test_outside_a_traced_graph_says_what_to_write() -> None:
    with pytest.raises(NotImplementedError, match=r"not a tensor of a traced graph.*jax.grad"):
        tf.gradients(jnp.ones(3), [jnp.ones(3)])

    def model(x):
        return tf.gradients(tf.reduce_sum(x), x, stop_gradients=[x])

    with pytest.raises(NotImplementedError, match="stop_gradients= is not supported"):
        tp.transform(model).apply({}, {}, jnp.ones(3))

    def nested(x):  # x belongs to the model's trace, not to the inner jax.jit's
        return jax.jit(lambda v: tf.gradients(tf.reduce_sum(x * v), x))(2.0)

    with pytest.raises(NotImplementedError, match="another trace than the running model"):
        jax.jit(tp.transform(nested).apply)({}, {}, jnp.ones(3))
