"""``tpflax.compat.tf``'s random ops and initializers against real TensorFlow
(tools/golden/tf_ops.py's random.npz). TensorFlow's random stream cannot be reproduced, so
each case pins the distribution: the mean, standard deviation, fraction of non-zeros and,
for bounded distributions (uniform, truncated normal, dropout), the smallest and largest
values of a TensorFlow sample of 10,000 to 20,000 draws against ours of the same size.
Constant initializers match exactly.

Tolerances: both samples are random, so a mean may differ by sqrt(2) standard errors; we
allow 5 of those (sqrt(2) * 5 * std / sqrt(n)), the same for the standard deviation (whose
standard error is at most std / sqrt(2 n) for these distributions) and the fraction of
non-zeros. That still tells apart TF1's variance-scaling correction (0.87962566: 12% on the
std, the tolerance is under 4%) and a wrong truncation bound (the extremes of 10,000 draws
lie within 0.1% of the range of a truncated normal's bounds; we allow 2%). The samples are
drawn from fixed keys, so the test is deterministic."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compat_ops import load

import tpflax as tp
from tpflax.compat import tf

RANDOM = load("random.npz")
# independent draws, where a noise shape shares one draw across a row
N_EFF = {"nn_dropout_noise_shape": 400}


def in_model(src: str, seed: int = 1) -> jax.Array:
    fn = eval(src, {"tf": tf})  # the case's source, the same text TF ran
    model = tp.transform(lambda x: fn())
    x = jnp.zeros(())
    params, state = model.init(jax.random.key(0), x)
    return model.apply(params, state, x, rng=jax.random.key(seed))[0]


def sample(cid: str) -> jax.Array:
    spec = RANDOM[cid]["spec"]
    if "shape" not in spec:
        return in_model(spec["src"])
    init = eval(spec["src"], {"tf": tf})()
    return init(jax.random.key(1), tuple(spec["shape"]), jnp.float32)


@pytest.mark.parametrize("cid", sorted(RANDOM))
def test_distribution_matches_tensorflow(cid: str) -> None:
    case, got = RANDOM[cid], np.asarray(sample(cid))
    if "value" in case:
        np.testing.assert_array_equal(got, case["value"])
        assert got.dtype == case["value"].dtype
        return
    mean, std, lo, hi, nonzero, size, bounded = case["stats"]
    assert got.size == size
    if "dtype" in case:
        assert got.dtype == jax.dtypes.canonicalize_dtype(np.dtype(str(case["dtype"])))
    g = got.astype("float64")
    n = N_EFF.get(cid, size)
    tol = 5 * math.sqrt(2) / math.sqrt(n)
    assert abs(g.mean() - mean) <= tol * std, (cid, "mean", g.mean(), mean)
    assert abs(g.std() - std) <= tol * std / math.sqrt(2), (cid, "std", g.std(), std)
    frac = float(np.mean(g != 0))
    assert abs(frac - nonzero) <= tol * math.sqrt(nonzero * (1 - nonzero)) + 1e-12, cid
    if bounded:
        assert abs(g.min() - lo) <= 0.02 * (hi - lo), (cid, "min", g.min(), lo)
        assert abs(g.max() - hi) <= 0.02 * (hi - lo), (cid, "max", g.max(), hi)
    if cid.startswith("nn_dropout") or got.dtype.kind == "i":  # exact values: 0, x / keep
        assert (g.min(), g.max()) == (lo, hi), cid


def test_random_ops_follow_the_model_rng() -> None:
    src = "lambda: tf.random_normal([4]) + tf.random_uniform([4])"
    assert np.array_equal(in_model(src, 1), in_model(src, 1))
    assert not np.array_equal(in_model(src, 1), in_model(src, 2))
    two = in_model("lambda: tf.stack([tf.random_normal([4]), tf.random_normal([4])])")
    assert not np.array_equal(two[0], two[1])


def test_random_ops_under_jit_and_without_rng() -> None:
    model = tp.transform(lambda x: x + tf.truncated_normal(tf.shape(x), stddev=0.1))
    x = jnp.zeros((3, 4))
    params, state = model.init(jax.random.key(0), x)
    out = jax.jit(lambda k: model.apply(params, state, x, rng=k)[0])(jax.random.key(3))
    assert out.shape == (3, 4) and float(jnp.max(jnp.abs(out))) <= 0.2
    with pytest.raises(ValueError, match=r"tf.truncated_normal: needs a random key.*rng="):
        model.apply(params, state, x)
    with pytest.raises(ValueError, match=r"tf.nn.dropout: give exactly one of keep_prob and rate"):
        tf.nn.dropout(x, keep_prob=0.5, rate=0.5)


def test_initializers_take_jax_arguments() -> None:
    init: Any = tf.variance_scaling_initializer(scale=2.0, mode="fan_out")
    w = init(jax.random.key(0), (3, 3, 8, 16))
    assert w.shape == (3, 3, 8, 16) and w.dtype == jnp.float32
    assert tf.zeros_initializer()(jax.random.key(0), (2,), jnp.int32).dtype == jnp.int32
    with pytest.raises(ValueError, match="unknown mode 'fan_middle'"):
        tf.variance_scaling_initializer(mode="fan_middle")
