"""BatchRenorm beyond the goldens: keyword-only arguments, traced rmax/dmax schedules,
inference, and its state across steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def _model():
    return tp.transform(lambda x, rmax, dmax: tp.BatchRenorm("rn", x, rmax=rmax, dmax=dmax))


def test_rmax_dmax_may_be_traced_schedules() -> None:
    x = jnp.asarray(np.random.RandomState(0).randn(8, 3) * 2 + 1, jnp.float32)
    model = _model()
    params, state = model.init(jax.random.key(0), x, 1.0, 0.0)
    eager, eager_state = model.apply(params, state, x, 1.5, 0.25, is_training=True)

    @jax.jit
    def step(params, state, x, rmax, dmax):
        return model.apply(params, state, x, rmax, dmax, is_training=True)

    traced, traced_state = step(params, state, x, jnp.float32(1.5), jnp.float32(0.25))
    np.testing.assert_allclose(traced, eager, rtol=1e-6, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), traced_state, eager_state
    )


def test_r_and_d_clip_towards_the_renorm_statistics() -> None:
    """With r = 1/rmax .. rmax and |d| <= dmax, rmax=1 and dmax=0 is plain batch norm, and
    a huge rmax/dmax normalizes with the renorm statistics (fresh: mean 0, stddev 1)."""
    x = np.asarray(np.random.RandomState(1).randn(16, 2) * 3 + 2, np.float32)
    model = _model()
    params, state = model.init(jax.random.key(0), x, 1.0, 0.0)
    y_bn, _ = model.apply(params, state, x, 1.0, 0.0, is_training=True)
    xn = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(y_bn, xn, atol=1e-5)
    y_free, new_state = model.apply(params, state, x, 1e6, 1e6, is_training=True)
    np.testing.assert_allclose(y_free, x, atol=1e-4)  # (x - 0) / 1 with gamma 1, beta 0
    np.testing.assert_allclose(
        new_state["rn"]["renorm_mean"], 0.01 * np.asarray(x.mean(0)), rtol=1e-5
    )


def test_inference_uses_moving_statistics_and_keeps_state() -> None:
    x = jnp.asarray(np.random.RandomState(2).randn(4, 2, 2, 3), jnp.float32)
    model = _model()
    params, state = model.init(jax.random.key(0), x, 2.0, 1.0)
    state = jax.tree.map(lambda v: v * 0 + 0.5, state)
    y, new_state = model.apply(params, state, x, 2.0, 1.0, is_training=False)
    np.testing.assert_allclose(y, (x - 0.5) / np.sqrt(0.5 + 1e-5), rtol=1e-5, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, new_state, state)


def test_arguments_are_keyword_only_and_scalar() -> None:
    x = jnp.ones((4, 3))
    with pytest.raises(TypeError, match=r"BatchRenorm 'rn': takes at most 0 positional"):
        tp.transform(lambda x: tp.BatchRenorm("rn", x, 3.0, 5.0)).init(jax.random.key(0), x)
    with pytest.raises(TypeError, match=r"BatchRenorm 'rn': missing required argument\(s\)"):
        tp.transform(lambda x: tp.BatchRenorm("rn", x, rmax=3.0)).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"BatchRenorm 'rn': rmax must be a scalar"):
        _model().init(jax.random.key(0), x, jnp.ones(3), 1.0)
