"""LinearWrap: every tensorpack method, plus the jnp/jax/lax escape."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import tpflax as tp


def test_methods() -> None:
    x = jnp.arange(4.0) - 1.0
    w = tp.LinearWrap(x)
    assert w() is x and w.tensor() is x
    assert jnp.allclose(w.apply(jnp.multiply, 2.0)(), 2.0 * x)
    assert jnp.allclose(w.apply2(lambda a, b, c: a * b + c, 3.0, 1.0)(), 3.0 * x + 1.0)
    assert jnp.allclose(w.jax.nn.relu()(), jax.nn.relu(x))
    assert jnp.allclose(w.lax.neg()(), -x)
    assert jnp.allclose(w.jnp.add(1.0).jnp.square()(), (x + 1.0) ** 2)


def test_print_tensor_returns_self(capsys) -> None:
    w = tp.LinearWrap(jnp.ones(2))
    assert w.print_tensor() is w
    assert "[1. 1.]" in capsys.readouterr().out


def test_tf_escape_points_to_jax() -> None:
    with pytest.raises(AttributeError, match=r"LinearWrap.tf: there is no TensorFlow.*\.jnp"):
        tp.LinearWrap(jnp.ones(2)).tf.multiply(2.0)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match=r"neither a registered layer.*forget to extract"):
        tp.LinearWrap(jnp.ones(2)).Conv3D("c")


def test_whole_pipeline_jit_compiles() -> None:
    def net(x):
        return (
            tp.LinearWrap(x)
            .Conv2D("conv0", 4, 3, activation=tp.BNReLU)
            .MaxPooling("pool0", 2)
            .Dropout(rate=0.5)
            .GlobalAvgPooling("gap")
            .FullyConnected("fc", 3)()
        )

    model = tp.transform(net)
    x = jnp.ones((2, 8, 8, 1))
    params, state = model.init(jax.random.key(0), x)
    apply = jax.jit(model.apply, static_argnames="is_training")
    y, new_state = apply(params, state, x, is_training=True, rng=jax.random.key(1))
    assert y.shape == (2, 3)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
