"""Layers that tensorpack's ImageNet examples define for themselves (not in tensorpack.models):
``DepthConv`` and ``channel_shuffle`` (ShuffleNet), ``GroupNorm`` (VGG16), ``lrn`` (AlexNet).
Same variable names and math as the examples; NCHW or NHWC through ``data_format``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from tpflax._src import layout, utils
from tpflax._src.conv import conv2d
from tpflax._src.frame import get_variable
from tpflax._src.norm_ops import moments, normalize
from tpflax._src.registry import layer_context, layer_register


@layer_register(log_shape=True, yields=True)
def DepthConv(
    x: jax.Array,
    out_channel: int,
    kernel_shape: int,
    padding: str = "SAME",
    stride: int = 1,
    W_init: Any = None,
    activation: Any = None,
    data_format: str = "NCHW",
    use_bias: bool = False,
) -> jax.Array:
    """Depthwise convolution of tensorpack's ShuffleNet example (``tf.nn.depthwise_conv2d``):
    ``tp.Conv2D``'s op with one group per input channel, so it is lowered as ``tp.conv_impl``
    says and accumulates half-precision inputs in float32 like every convolution.

    Args:
        use_bias: not in the example (which has no bias); ``True`` adds ``b`` (what
            ``tp.zoo.fold_batchnorm`` gives a folded DepthConv).

    Variable names:
        ``W``: ``[k, k, in_channels, out_channel // in_channels]``; ``b``: ``[out_channel]``
        with ``use_bias``.
    """
    fmt = utils.data_format(data_format, who="DepthConv")
    who = layer_context("DepthConv")
    cin = utils.static_dim(x, layout.channel_axis(4, fmt, who=who), who=who)
    if out_channel % cin:
        raise ValueError(
            f"{who}: out_channel (={out_channel}) must be a multiple of the input's "
            f"channels (={cin})"
        )
    mult = out_channel // cin
    init = W_init or jax.nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
    W = get_variable("W", (kernel_shape, kernel_shape, cin, mult), init, dtype=x.dtype, who=who)
    b = None
    if use_bias:
        b = get_variable("b", (out_channel,), jax.nn.initializers.zeros, dtype=x.dtype, who=who)
    # depthwise = grouped conv with one group per input channel; HWIO with I = 1, output
    # channel c * mult + m as tf.nn.depthwise_conv2d orders them
    y = conv2d(
        x,
        W.reshape(kernel_shape, kernel_shape, 1, cin * mult),
        b,
        strides=(stride, stride),
        padding=utils.padding(padding, who=who),
        data_format=fmt,
        groups=cin,
    )
    return y if activation is None else activation(y)


def channel_shuffle(x: jax.Array, group: int, data_format: str = "NCHW") -> jax.Array:
    """ShuffleNet's channel shuffle: channels ``(group, c / group)`` -> ``(c / group, group)``
    as the example reshapes ``[N, C/g, g, H, W]`` and swaps the two channel axes."""
    fmt = utils.data_format(data_format, who="channel_shuffle")
    if fmt == "NCHW":
        n, c, h, w = x.shape
        y = x.reshape(n, c // group, group, h, w).transpose(0, 2, 1, 3, 4)
        return y.reshape(n, c, h, w)
    n, h, w, c = x.shape
    y = x.reshape(n, h, w, c // group, group).transpose(0, 1, 2, 4, 3)
    return y.reshape(n, h, w, c)


@layer_register(use_scope=None, yields=True)
def GroupNorm(
    x: jax.Array, group: int = 32, gamma_initializer: Any = None, data_format: str = "NCHW"
) -> jax.Array:
    """Group normalization as tensorpack's VGG16 / FasterRCNN examples define it
    (epsilon 1e-5, statistics per sample over each group of channels and space). Called
    without a name (VGG16: inside ``variable_scope('conv1_1_gn')``) or with one
    (``GroupNorm('gn', x)``).

    Variable names:
        ``beta``, ``gamma``: ``[C]``.
    """
    fmt = utils.data_format(data_format, who="GroupNorm")
    xc = x if fmt == "NCHW" else jnp.transpose(x, (0, 3, 1, 2))
    n, c, h, w = xc.shape
    if c % group:
        raise ValueError(f"GroupNorm: channels (={c}) must be divisible by group (={group})")
    beta = get_variable("beta", (c,), jax.nn.initializers.zeros)
    gamma = get_variable("gamma", (c,), gamma_initializer or jax.nn.initializers.ones)
    g = xc.reshape(n, group, c // group, h, w)
    mean, var = moments(g, (2, 3, 4))
    shape = (1, group, c // group, 1, 1)
    y = normalize(g, mean, var, gamma.reshape(shape), beta.reshape(shape), 1e-5)
    y = y.reshape(n, c, h, w)
    return y if fmt == "NCHW" else jnp.transpose(y, (0, 2, 3, 1))


def lrn(
    x: jax.Array,
    depth_radius: int = 5,
    bias: float = 1.0,
    alpha: float = 1.0,
    beta: float = 0.5,
    data_format: str = "NHWC",
) -> jax.Array:
    """``tf.nn.lrn``: ``x / (bias + alpha * sum_{|d| <= r} x[c + d]^2) ** beta`` over
    channels (AlexNet's local response normalization)."""
    axis = layout.channel_axis(4, data_format, who="tp.zoo")
    sq = jnp.square(x.astype(jnp.float32))
    window = [1] * 4
    window[axis] = 2 * depth_radius + 1
    pads = [(0, 0)] * 4
    pads[axis] = (depth_radius, depth_radius)
    total = lax.reduce_window(sq, 0.0, lax.add, tuple(window), (1, 1, 1, 1), pads)
    return (x / jnp.power(bias + alpha * total, beta)).astype(x.dtype)
