"""tp.intercept: the one interception point for variables and layer calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import tpflax as tp


class Log(tp.Interceptor):
    def __init__(self, tag: str, seen: list) -> None:
        self.tag, self.seen = tag, seen

    def variable(self, request, next):
        self.seen.append((self.tag, "variable", request.name, request.trainable))
        return next(request)

    def layer(self, call, next):
        self.seen.append((self.tag, "layer", call.layer, call.scope))
        return next(call)


def test_innermost_interceptor_runs_first_and_sees_every_variable_and_layer() -> None:
    seen: list = []

    def net(x):
        with tp.intercept(Log("outer", seen)), tp.intercept(Log("inner", seen)):
            return tp.Conv2D("conv0", x, 4, 3, activation=tp.BNReLU)

    tp.transform(net).init(jax.random.key(0), jnp.ones((1, 5, 5, 2)))
    assert seen[:2] == [
        ("inner", "layer", "Conv2D", "conv0"),
        ("outer", "layer", "Conv2D", "conv0"),
    ]
    assert ("inner", "layer", "BNReLU", "conv0") in seen  # unnamed: the calling scope
    assert ("inner", "layer", "BatchNorm", "conv0/bn") in seen
    variables = [(n, t) for tag, kind, n, t in seen if kind == "variable" and tag == "inner"]
    assert sorted(variables) == [
        ("conv0/W", True),
        ("conv0/b", True),
        ("conv0/bn/beta", True),
        ("conv0/bn/gamma", True),
        ("conv0/bn/mean/EMA", False),
        ("conv0/bn/variance/EMA", False),
    ]
    assert [t for t, k, *_ in seen if k == "variable"].count("outer") == len(variables)


def test_layer_call_has_resolved_arguments_and_may_change_them() -> None:
    calls = []

    class NoBias(tp.Interceptor):
        def layer(self, call, next):
            calls.append(dict(call.kwargs))
            if call.layer == "FullyConnected":
                call = call.replace(kwargs={**call.kwargs, "use_bias": False})
            return next(call)

    def net(x):
        with tp.argscope(tp.FullyConnected, activation=jax.nn.relu), tp.intercept(NoBias()):
            return tp.FullyConnected("fc", x, out_dim=2)  # tensorpack's alias

    params, _ = tp.transform(net).init(jax.random.key(0), jnp.ones((1, 3)))
    assert sorted(params["fc"]) == ["W"]
    assert calls[0]["units"] == 2 and calls[0]["activation"] is jax.nn.relu
    assert calls[0]["use_bias"] is True  # the layer's default, filled in


def test_a_variable_interceptor_may_replace_the_value_and_the_request() -> None:
    class Frozen(tp.Interceptor):
        def variable(self, request, next):
            return jax.lax.stop_gradient(next(request.replace(trainable=False)))

    def net(x):
        with tp.intercept(Frozen()):
            h = tp.FullyConnected("backbone", x, 2)
        return tp.FullyConnected("head", h, 1)

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones((1, 3)))
    assert sorted(params) == ["head"] and sorted(state) == ["backbone"]


def test_intercept_takes_only_interceptors() -> None:
    with pytest.raises(TypeError, match=r"tp\.intercept: expected a tp\.Interceptor; got function"):
        with tp.intercept(lambda r, n: n(r)):
            pass
