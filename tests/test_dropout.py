"""Dropout in training: statistics and scaling checked against the definition of
tf.nn.dropout (no golden: TensorFlow's random stream cannot be reproduced)."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import pytest

import tpflax as tp


def _train(fn, x, seed=1):
    model = tp.transform(fn)
    params, state = model.init(jax.random.key(0), x)
    return model.apply(params, state, x, is_training=True, rng=jax.random.key(seed))[0]


def test_kept_values_are_scaled_and_rate_is_respected() -> None:
    x = jnp.full((200, 100), 3.0)
    y = _train(lambda x: tp.Dropout("d", x, rate=0.3), x)
    kept = y != 0
    assert jnp.allclose(y[kept], 3.0 / 0.7)
    frac = float(jnp.mean(kept))
    assert abs(frac - 0.7) < 0.02  # 20000 Bernoulli draws: std 0.003


def test_positional_keep_prob_warns_like_tensorpack(caplog) -> None:
    x = jnp.ones((200, 100))
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        y = _train(lambda x: tp.Dropout("d", x, 0.8), x)
    assert abs(float(jnp.mean(y != 0)) - 0.8) < 0.02
    assert "probability to keep" in caplog.text


def test_noise_shape_shares_the_mask() -> None:
    x = jnp.ones((50, 4, 6))
    y = _train(lambda x: tp.Dropout("d", x, rate=0.5, noise_shape=(50, 1, 6)), x)
    assert bool(jnp.all(y == y[:, :1, :]))


def test_training_override_and_different_keys() -> None:
    x = jnp.ones((64, 64))
    y_eval = _train(lambda x: tp.Dropout("d", x, rate=0.5, is_training=False), x)
    assert bool(jnp.all(y_eval == x))
    a = _train(lambda x: tp.Dropout("d", x, rate=0.5), x, seed=1)
    b = _train(lambda x: tp.Dropout("d", x, rate=0.5), x, seed=2)
    assert not bool(jnp.all(a == b))


def test_rate_may_be_a_scalar_tensor_as_in_tensorpack() -> None:
    """cifar-convnet writes Dropout(rate=tf.constant(0.5 if training else 0.0)): a 0-d array,
    concrete or traced, drops exactly as the same float does."""
    import numpy as np

    model = tp.transform(lambda x, r: tp.Dropout(x, rate=r))
    x = jnp.ones((4, 8))
    params, state = model.init(jax.random.key(0), x, 0.5)

    def run(rate):
        return model.apply(params, state, x, rate, is_training=True, rng=jax.random.key(3))[0]

    want = run(0.5)
    np.testing.assert_array_equal(run(np.asarray(0.5, np.float32)), want)
    np.testing.assert_array_equal(jax.jit(run)(jnp.float32(0.5)), want)
    np.testing.assert_array_equal(jax.jit(run)(jnp.float32(0.0)), x)
    with pytest.raises(ValueError, match=r"Dropout: rate must be a number in \[0, 1\)"):
        run(np.asarray([0.5]))
