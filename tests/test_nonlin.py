"""PReLU and Maxout against their formulas, and their bad input."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def test_prelu_is_max_of_x_and_alpha_x() -> None:
    x = jnp.linspace(-3.0, 3.0, 13)
    for alpha in (0.0, 0.1, 0.25, 1.0):
        y, _ = tp.PReLU.apply({"alpha": jnp.float32(alpha)}, {}, x)
        np.testing.assert_allclose(y, np.maximum(x, alpha * x), atol=1e-6)


def test_prelu_variable_and_gradient() -> None:
    params, _ = tp.PReLU.init(jax.random.key(0), jnp.ones(3))
    assert params["alpha"].shape == () and float(params["alpha"]) == pytest.approx(0.001)
    x = jnp.array([-2.0, 1.0])
    # d/d alpha of 0.5 * ((1 + a) x + (1 - a) |x|) = 0.5 * (x - |x|) = min(x, 0)
    g = jax.grad(lambda p: jnp.sum(tp.PReLU.apply(p, {}, x)[0]))(params)
    assert float(g["alpha"]) == pytest.approx(-2.0)


def test_prelu_name_argument_is_deprecated(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        tp.transform(lambda x: tp.PReLU("p", x, name="out")).init(jax.random.key(0), jnp.ones(2))
    assert "PReLU(name=...) is deprecated" in caplog.text


@pytest.mark.parametrize("shape", [(2, 3, 4, 6), (5, 6)])
def test_maxout_formula(shape) -> None:
    x = np.random.RandomState(0).randn(*shape).astype(np.float32)
    y = tp.Maxout.apply({}, {}, x, 3)[0]
    want = x.reshape(*shape[:-1], 2, 3).max(axis=-1)
    np.testing.assert_array_equal(y, want)


def test_maxout_named_inside_a_model() -> None:
    def net(x):
        return tp.Maxout("mo", x, num_unit=2)

    model = tp.transform(net)
    x = jnp.arange(8.0).reshape(2, 4)
    params, state = model.init(jax.random.key(0), x)
    y, _, cap = model.apply(params, state, x, capture=["mo/output"])
    assert params == {} and y.shape == (2, 2)
    np.testing.assert_array_equal(cap["mo/output"], y)


def test_maxout_bad_input() -> None:
    with pytest.raises(ValueError, match=r"Maxout: the input's channels \(=5\) must be divisible"):
        tp.Maxout.init(jax.random.key(0), jnp.ones((2, 5)), 2)
    with pytest.raises(ValueError, match=r"Maxout: inputs must be 2-D or 4-D"):
        tp.Maxout.init(jax.random.key(0), jnp.ones((2, 3, 4)), 2)
    with pytest.raises(ValueError, match=r"Maxout: num_unit must be a positive int"):
        tp.Maxout.init(jax.random.key(0), jnp.ones((2, 4)), 0)


def test_prelu_rejects_integers() -> None:
    with pytest.raises(TypeError, match=r"PReLU 'p': inputs must have a floating dtype"):
        tp.transform(lambda x: tp.PReLU("p", x)).init(jax.random.key(0), jnp.ones(2, jnp.int32))
