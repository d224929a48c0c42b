"""Default initializers: tensorpack's VarianceScaling(2.0, fan_in, untruncated normal),
checked against its formula std = sqrt(2 / fan_in) (TF's random stream is not reproducible)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp


def test_conv_kernel_std_and_zero_bias() -> None:
    x = jnp.ones((1, 8, 8, 64))
    params, _ = tp.Conv2D.init(jax.random.key(0), x, 256, 3)
    W = np.asarray(params["W"])
    want = np.sqrt(2.0 / (3 * 3 * 64))
    assert abs(W.std() / want - 1) < 0.02
    assert abs(W.mean()) < 0.05 * want
    # untruncated: a truncated normal would have no values beyond 2 std
    assert np.mean(np.abs(W) > 2 * want) > 0.03
    assert not np.any(params["b"])


def test_split_conv_and_fc_fan_in() -> None:
    params, _ = tp.Conv2D.init(jax.random.key(0), jnp.ones((1, 4, 4, 64)), 256, 3, split=4)
    assert abs(float(params["W"].std()) / np.sqrt(2.0 / (9 * 16)) - 1) < 0.03
    params, _ = tp.FullyConnected.init(jax.random.key(1), jnp.ones((2, 500)), 400)
    assert abs(float(params["W"].std()) / np.sqrt(2.0 / 500) - 1) < 0.02


def test_batchnorm_defaults() -> None:
    params, state = tp.BatchNorm.init(jax.random.key(0), jnp.ones((2, 3)))
    flat = tp.checkpoint.flatten(params, state)
    assert {k: v.tolist() for k, v in flat.items()} == {
        "beta": [0.0] * 3,
        "gamma": [1.0] * 3,
        "mean/EMA": [0.0] * 3,
        "variance/EMA": [1.0] * 3,
    }


def test_init_is_independent_of_layer_order() -> None:
    def ab(x):
        return tp.FullyConnected("b", tp.FullyConnected("a", x, 3), 3)

    def ba(x):
        with tp.variable_scope("unused"):
            pass
        return tp.FullyConnected("b", tp.FullyConnected("a", x, 3), 3)

    x = jnp.ones((2, 3))
    p1, _ = tp.transform(ab).init(jax.random.key(0), x)
    p2, _ = tp.transform(ba).init(jax.random.key(0), x)
    assert jnp.array_equal(p1["b"]["W"], p2["b"]["W"])
    assert not jnp.array_equal(p1["a"]["W"], p1["b"]["W"])
