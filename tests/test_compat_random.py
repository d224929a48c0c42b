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

import functools
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
N_EFF = {"nn_dropout_noise_shape": 400, "nn_dropout_noise_shape_none": 400}


def in_model(src: str, env: dict[str, Any] | None = None) -> Any:
    """The case's source (the same text TF ran) inside a model: a jitted function of the
    ``rng`` given to ``apply`` (eager random ops compile op by op: slow)."""
    fn = eval(src, {"tf": tf, **(env or {})})
    model = tp.transform(lambda x: fn())
    x = jnp.zeros(())
    return jax.jit(lambda k: model.apply({}, {}, x, rng=k)[0])  # no variables to init


@functools.cache
def samples() -> dict[str, np.ndarray]:
    """Every case's sample, drawn in two jitted programs (one per kind: XLA's compile time is
    most of this test's, and grows less with one program than with one per case)."""
    inits = {c: v["spec"] for c, v in RANDOM.items() if "shape" in v["spec"]}
    ops = sorted(c for c in RANDOM if c not in inits)
    fns = [eval(RANDOM[c]["spec"]["src"], {"tf": tf}) for c in ops]
    draws = in_model("lambda: [f() for f in fns]", {"fns": fns})(jax.random.key(1))
    made = {c: eval(spec["src"], {"tf": tf})() for c, spec in inits.items()}

    @jax.jit
    def initialize(k: jax.Array) -> dict[str, jax.Array]:
        return {c: init(k, tuple(inits[c]["shape"]), jnp.float32) for c, init in made.items()}

    out = {c: np.asarray(v) for c, v in initialize(jax.random.key(1)).items()}
    out.update({c: np.asarray(v) for c, v in zip(ops, draws, strict=True)})
    return out


def check(cid: str, case: dict[str, Any], got: np.ndarray) -> list[str]:
    """What differs between our sample and TensorFlow's statistics (nothing: [])."""
    if "value" in case:
        same = got.dtype == case["value"].dtype and np.array_equal(got, case["value"])
        return [] if same else [f"{cid}: {got} != TF's {case['value']}"]
    mean, std, lo, hi, nonzero, size, bounded = case["stats"]
    if got.size != size:
        return [f"{cid}: {got.size} values, TF {size}"]
    bad = []
    if "dtype" in case:
        want = jax.dtypes.canonicalize_dtype(np.dtype(str(case["dtype"])))
        bad += [] if got.dtype == want else [f"{cid}: dtype {got.dtype}, TF {want}"]
    g = got.astype("float64")
    tol = 5 * math.sqrt(2) / math.sqrt(N_EFF.get(cid, size))
    frac = float(np.mean(g != 0))
    checks = [
        ("mean", g.mean(), mean, tol * std),
        ("std", g.std(), std, tol * std / math.sqrt(2)),
        ("fraction non-zero", frac, nonzero, tol * math.sqrt(nonzero * (1 - nonzero))),
    ]
    if bounded:
        checks += [("min", g.min(), lo, 0.02 * (hi - lo)), ("max", g.max(), hi, 0.02 * (hi - lo))]
    if cid.startswith("nn_dropout") or got.dtype.kind == "i":  # exact values: 0, x / keep
        checks += [("min", g.min(), lo, 0.0), ("max", g.max(), hi, 0.0)]
    for what, ours, theirs, allowed in checks:
        if abs(ours - theirs) > allowed:
            bad.append(f"{cid}: {what} {ours:.6g}, TF {theirs:.6g} (allowed {allowed:.3g})")
    return bad


def test_distributions_match_tensorflow() -> None:
    """One test for all cases (one sampling program), every difference reported."""
    drawn = samples()
    bad = [msg for cid in sorted(RANDOM) for msg in check(cid, RANDOM[cid], drawn[cid])]
    assert not bad, "\n".join(bad)


def test_random_ops_follow_the_model_rng() -> None:
    run = in_model("lambda: tf.stack([tf.random_normal([4]), tf.random_uniform([4])])")
    a, b = run(jax.random.key(1)), run(jax.random.key(2))
    assert np.array_equal(a, run(jax.random.key(1)))  # the same key: the same draws
    assert not np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # each call its own key


def test_random_ops_under_jit_and_without_rng() -> None:
    model = tp.transform(lambda x: x + tf.truncated_normal(tf.shape(x), stddev=0.1))
    x = jnp.zeros((3, 4))
    params, state = jax.jit(model.init)(jax.random.key(0), x)
    out = jax.jit(lambda k: model.apply(params, state, x, rng=k)[0])(jax.random.key(3))
    assert out.shape == (3, 4) and float(jnp.max(jnp.abs(out))) <= 0.2
    with pytest.raises(ValueError, match=r"tf.truncated_normal: needs a random key.*rng="):
        model.apply(params, state, x)
    with pytest.raises(ValueError, match=r"tf.nn.dropout: give exactly one of keep_prob and rate"):
        tf.nn.dropout(x, keep_prob=0.5, rate=0.5)


def test_initializers_take_jax_arguments() -> None:
    init: Any = tf.variance_scaling_initializer(scale=2.0, mode="fan_out")
    w = jax.eval_shape(lambda k: init(k, (3, 3, 8, 16)), jax.random.key(0))
    assert w.shape == (3, 3, 8, 16) and w.dtype == jnp.float32
    assert tf.zeros_initializer()(jax.random.key(0), (2,), jnp.int32).dtype == jnp.int32
    with pytest.raises(ValueError, match="unknown mode 'fan_middle'"):
        tf.variance_scaling_initializer(mode="fan_middle")
