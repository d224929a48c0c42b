"""FixedUnPooling against NumPy's Kronecker product, and its bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("mat", [None, np.array([[1.0, -0.5, 2.0], [0.0, 3.0, 1.0]])])
def test_unpool_is_a_kronecker_product(fmt, mat) -> None:
    x = np.random.RandomState(0).randn(2, 3, 4, 5).astype(np.float32)  # NHWC data
    m = np.zeros((2, 3), np.float32) if mat is None else mat.astype(np.float32)
    if mat is None:
        m[0, 0] = 1
    want = np.stack([np.stack([np.kron(x[n, :, :, c], m) for c in range(5)], -1) for n in range(2)])
    inp = x if fmt == "NHWC" else x.transpose(0, 3, 1, 2)
    y, _ = tp.FixedUnPooling.apply({}, {}, inp, (2, 3), mat, data_format=fmt)
    got = np.asarray(y) if fmt == "NHWC" else np.asarray(y).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_unpool_accepts_a_jax_matrix_and_keeps_dtype() -> None:
    x = jnp.ones((1, 2, 2, 1), jnp.bfloat16)
    y, _ = tp.FixedUnPooling.apply({}, {}, x, 2, jnp.full((2, 2), 0.5))
    assert y.dtype == jnp.bfloat16 and bool(jnp.all(y == 0.5))


def test_unpool_bad_matrix() -> None:
    x = jnp.ones((1, 2, 2, 1))
    net = tp.transform(lambda x: tp.FixedUnPooling("up", x, 2, np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"FixedUnPooling 'up': unpool_mat must have shape"):
        net.init(jax.random.key(0), x)
    net = tp.transform(lambda x: tp.FixedUnPooling("up", x, 2, [[1, 0], [0, 0]]))
    with pytest.raises(TypeError, match=r"FixedUnPooling 'up': unpool_mat must be a 2-D array"):
        net.init(jax.random.key(0), x)
    net = tp.transform(lambda x: tp.FixedUnPooling("up", x, 2))
    with pytest.raises(ValueError, match=r"FixedUnPooling 'up': x must be 4-D"):
        net.init(jax.random.key(0), jnp.ones((2, 2)))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_avg_pool_differentiates_under_jit(padding) -> None:
    """Regression: a traced zero as reduce_window's init made the window sum opaque to
    autodiff under jit ("Linearization failed")."""
    x = jnp.asarray(np.random.RandomState(0).randn(1, 5, 5, 2), jnp.float32)

    def f(x):
        return jnp.sum(tp.AvgPooling.apply({}, {}, x, 2, padding=padding)[0])

    np.testing.assert_allclose(jax.jit(jax.grad(f))(x), jax.grad(f)(x), rtol=1e-6)
