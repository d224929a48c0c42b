"""Conv2DTranspose beyond the goldens: the input-gradient identity for any shape, names,
aliases and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tpflax as tp
from tpflax._src.conv import conv2d, conv2d_transpose, transpose_output_size


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
@settings(max_examples=25, deadline=None)
@given(
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    padding=st.sampled_from(["SAME", "VALID"]),
    fmt=st.sampled_from(["NHWC", "NCHW"]),
)
def test_is_the_input_gradient_of_a_convolution(size, kernel, stride, padding, fmt) -> None:
    """TensorFlow defines conv2d_transpose as the gradient of conv2d w.r.t. its input, for
    the output size tensorpack chooses; checked here for any kernel, stride and layout."""
    rng = np.random.RandomState(0)
    cin, filters = 2, 3
    out = [
        transpose_output_size(n, k, s, padding)
        for n, k, s in zip(size, kernel, stride, strict=True)
    ]
    x_shape = (2, *size, cin) if fmt == "NHWC" else (2, cin, *size)
    y_shape = (2, *out, filters) if fmt == "NHWC" else (2, filters, *out)
    x = jnp.asarray(rng.randn(*x_shape), jnp.float32)
    W = jnp.asarray(rng.randn(*kernel, filters, cin), jnp.float32)

    def forward(y):
        return conv2d(y, W, None, strides=stride, padding=padding, data_format=fmt)

    y0 = jnp.zeros(y_shape, jnp.float32)
    assert forward(y0).shape == x.shape  # the forward conv maps the output size back
    _, vjp = jax.vjp(forward, y0)
    (want,) = vjp(x)
    got = conv2d_transpose(x, W, None, strides=stride, padding=padding, data_format=fmt)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_variable_names_and_alias_share_argscope() -> None:
    def net(x):
        with tp.argscope(tp.Deconv2D, filters=6, kernel_size=2, strides=2):
            a = tp.Conv2DTranspose("up0", x)
            b = tp.LinearWrap(x).Deconv2D("up1", use_bias=False)()
        return a, b

    params, _ = tp.transform(net).init(jax.random.key(0), jnp.ones((1, 3, 3, 4)))
    assert tp.Deconv2D is tp.Conv2DTranspose
    assert params["up0"]["W"].shape == (2, 2, 6, 4)
    assert params["up0"]["b"].shape == (6,)
    assert set(params["up1"]) == {"W"}


def test_default_initializer_uses_fan_in_over_filters() -> None:
    params, _ = tp.Deconv2D.init(jax.random.key(1), jnp.ones((1, 4, 4, 8)), 64, 3)
    std = float(jnp.std(params["W"]))
    assert abs(std - np.sqrt(2.0 / (3 * 3 * 64))) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"filters": 4, "kernel_size": 3, "padding": "full"}, ValueError, "padding must be"),
        ({"filters": 0, "kernel_size": 3}, ValueError, "filters must be a positive int"),
        ({"filters": 4, "kernel_size": (3, 3, 3)}, ValueError, "kernel_size must be an int"),
        ({"filters": 4, "kernel_size": 3, "dilation_rate": 2}, TypeError, "unknown argument"),
    ],
)
def test_bad_arguments(kwargs, error, pattern) -> None:
    net = tp.transform(lambda x: tp.Conv2DTranspose("up", x, **kwargs))
    with pytest.raises(error, match=rf"Conv2DTranspose 'up': {pattern}"):
        net.init(jax.random.key(0), jnp.ones((1, 3, 3, 2)))


def test_rank_and_positional_limits() -> None:
    net = tp.transform(lambda x: tp.Deconv2D("up", x, 4, 3))
    with pytest.raises(ValueError, match=r"Conv2DTranspose 'up': inputs must be 4-D"):
        net.init(jax.random.key(0), jnp.ones((1, 3, 3)))
    net = tp.transform(lambda x: tp.Deconv2D("up", x, 4, 3, 2, "valid"))
    with pytest.raises(TypeError, match=r"takes at most 3 positional argument"):
        net.init(jax.random.key(0), jnp.ones((1, 3, 3, 2)))
