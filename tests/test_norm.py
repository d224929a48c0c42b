"""LayerNorm and InstanceNorm against their NumPy formulas, options and bad input."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def _np_norm(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize(
    ("shape", "fmt", "cshape"),
    [
        ((3, 5), "NHWC", (1, 5)),
        ((2, 3, 4, 5), "NHWC", (1, 1, 1, 5)),
        ((2, 5, 3, 4), "NCHW", (1, 5, 1, 1)),
    ],
)
def test_layer_norm_formula(shape, fmt, cshape) -> None:
    rng = np.random.RandomState(0)
    x = rng.randn(*shape).astype(np.float32) * 3 + 1
    gamma = rng.rand(5).astype(np.float32) + 0.5
    beta = rng.randn(5).astype(np.float32)
    y, state = tp.LayerNorm.apply(
        {"gamma": gamma, "beta": beta}, {}, x, epsilon=1e-3, data_format=fmt
    )
    axes = tuple(range(1, len(shape)))
    want = _np_norm(x, axes, 1e-3) * gamma.reshape(cshape) + beta.reshape(cshape)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert state == {}


@pytest.mark.parametrize(
    ("fmt", "axes", "cshape"), [("NHWC", (1, 2), (1, 1, 1, 3)), ("NCHW", (2, 3), (1, 3, 1, 1))]
)
def test_instance_norm_formula(fmt, axes, cshape) -> None:
    rng = np.random.RandomState(1)
    x = rng.randn(2, 3, 4, 3).astype(np.float32)
    gamma = rng.rand(3).astype(np.float32) + 0.5
    y, _ = tp.InstanceNorm.apply({"gamma": gamma}, {}, x, center=False, data_format=fmt)
    np.testing.assert_allclose(y, _np_norm(x, axes, 1e-5) * gamma.reshape(cshape), atol=1e-5)


def test_switches_decide_the_variables() -> None:
    x = jnp.ones((2, 3, 3, 4))
    key = jax.random.key(0)
    assert set(tp.LayerNorm.init(key, x)[0]) == {"beta", "gamma"}
    assert set(tp.LayerNorm.init(key, x, use_bias=False)[0]) == {"gamma"}
    assert tp.LayerNorm.init(key, x, center=False, scale=False)[0] == {}
    assert set(tp.InstanceNorm.init(key, x, scale=False)[0]) == {"beta"}


def test_instance_norm_use_affine_is_deprecated(caplog) -> None:
    def net(x):
        return tp.InstanceNorm("inorm", x, use_affine=False)

    with caplog.at_level(logging.WARNING, logger="tpflax"):
        params, _ = tp.transform(net).init(jax.random.key(0), jnp.ones((1, 2, 2, 3)))
    assert params == {}
    assert "use_affine= is deprecated" in caplog.text


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"LayerNorm 'ln': inputs must be 2-D or 4-D"):
        tp.transform(lambda x: tp.LayerNorm("ln", x)).init(jax.random.key(0), jnp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"InstanceNorm 'in': inputs must be 4-D"):
        tp.transform(lambda x: tp.InstanceNorm("in", x)).init(jax.random.key(0), jnp.ones((2, 3)))
    with pytest.raises(TypeError, match=r"LayerNorm 'ln': takes at most 0 positional"):
        tp.transform(lambda x: tp.LayerNorm("ln", x, 1e-3)).init(
            jax.random.key(0), jnp.ones((2, 3))
        )
    with pytest.raises(TypeError, match=r"InstanceNorm 'in': inputs must have a floating dtype"):
        tp.transform(lambda x: tp.InstanceNorm("in", x)).init(
            jax.random.key(0), jnp.ones((1, 2, 2, 3), jnp.int32)
        )
