"""A user's own layer gets argscope, naming, LinearWrap and both call styles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import tpflax as tp


@tp.layer_register(log_shape=True)
def AddBias(x, init=0.0):
    b = tp.get_variable("b", (x.shape[-1],), jax.nn.initializers.constant(init))
    return x + b[None, :]


@tp.layer_register(use_scope=None)
def Twice(x):
    return 2.0 * x


def test_named_call_argscope_and_linear_wrap() -> None:
    def net(x):
        with tp.argscope(AddBias, init=1.5):
            y = tp.LinearWrap(x).AddBias("add0").Twice().AddBias("add1", init=-1.0)()
        return y

    model = tp.transform(net)
    x = jnp.zeros((2, 3))
    params, state = model.init(jax.random.key(0), x)
    assert sorted(tp.checkpoint.flatten(params)) == ["add0/b", "add1/b"]
    y, _ = model.apply(params, state, x)
    assert jnp.allclose(y, 2.0 * 1.5 - 1.0)


def test_pure_call() -> None:
    x = jnp.zeros((2, 3))
    params, state = AddBias.init(jax.random.key(0), x, init=0.25)
    assert state == {}
    y, _ = AddBias.apply(params, state, x)
    assert jnp.allclose(y, 0.25)


def test_registered_by_name_and_argscope_validated() -> None:
    assert tp.get_registered_layer("AddBias") is AddBias
    with pytest.raises(TypeError, match=r"argscope\(AddBias\).*unknown argument 'bias'"):
        with tp.argscope(AddBias, bias=1):
            pass


def test_name_clash_with_another_layer() -> None:
    with pytest.raises(ValueError, match="a layer named 'Conv2D' is already registered"):

        @tp.layer_register()
        def Conv2D(x):
            return x


def test_log_shape_needs_a_scope() -> None:
    with pytest.raises(ValueError, match="log_shape=True needs use_scope=True"):
        tp.layer_register(log_shape=True, use_scope=None)


def test_pure_calls_of_builtin_layers_keep_tensorpack_names() -> None:
    x = jnp.ones((2, 4, 4, 3))
    params, state = tp.Conv2D.init(jax.random.key(0), x, 5, 3, activation=tp.BNReLU)
    assert sorted(tp.checkpoint.flatten(params, state)) == [
        "W",
        "b",
        "bn/beta",
        "bn/gamma",
        "bn/mean/EMA",
        "bn/variance/EMA",
    ]
    y, new_state = tp.Conv2D.apply(params, state, x, 5, 3, activation=tp.BNReLU, is_training=True)
    assert y.shape == (2, 4, 4, 5)
    assert float(jnp.min(y)) >= 0.0
    assert not jnp.allclose(new_state["bn"]["mean"]["EMA"], state["bn"]["mean"]["EMA"])


def test_pure_call_inside_a_model_uses_its_own_params() -> None:
    inner_params, inner_state = tp.FullyConnected.init(jax.random.key(1), jnp.ones((2, 3)), 4)

    def net(x):
        y, _ = tp.FullyConnected.apply(inner_params, inner_state, x, 4)
        return tp.FullyConnected("fc", y, 2)

    params, _ = tp.transform(net).init(jax.random.key(0), jnp.ones((2, 3)))
    assert sorted(tp.checkpoint.flatten(params)) == ["fc/W", "fc/b"]


def test_a_user_layer_takes_the_name_of_a_zoo_layer() -> None:
    """tensorpack's ShuffleNet example defines its own DepthConv (and VGG16 its GroupNorm):
    tp.zoo's layers of those names yield to the user's, which LinearWrap then finds; the zoo's
    objects keep working."""
    from tpflax._src import registry
    from tpflax.zoo import DepthConv as zoo_depthconv

    saved = registry._REGISTRY["DepthConv"]
    try:

        def DepthConv(x, out_channel, kernel_shape):
            return x * 2.0

        mine = tp.layer_register(use_scope=None)(DepthConv)
        assert registry.get_registered_layer("DepthConv") is mine
        doubled = tp.transform(lambda x: tp.LinearWrap(x).DepthConv(4, 3)())
        params, state = doubled.init(jax.random.key(0), jnp.ones((1, 2)))
        assert doubled.apply(params, state, jnp.ones((1, 2)))[0].tolist() == [[2.0, 2.0]]
        # the zoo's layer still computes a depthwise convolution under its own object
        z = tp.transform(lambda x: zoo_depthconv("dw", x, 2, 3, data_format="NHWC"))
        params, _ = z.init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))
        assert params["dw"]["W"].shape == (3, 3, 2, 1)  # tensorpack's depthwise kernel
        with pytest.raises(ValueError, match=r"a layer named 'DepthConv' is already registered"):
            tp.layer_register(use_scope=None)(_another_depthconv())
    finally:
        registry._REGISTRY["DepthConv"] = saved
        registry._YIELDING.add("DepthConv")


def _another_depthconv():
    def DepthConv(x):
        return x

    return DepthConv
