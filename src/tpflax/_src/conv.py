"""Convolution: the pure op and tensorpack's ``Conv2D`` layer."""

from __future__ import annotations

from typing import Any

import jax
from jax import lax

from tpflax._src import initializers, utils
from tpflax._src.activation import apply_activation
from tpflax._src.frame import get_variable
from tpflax._src.registry import layer_context, layer_register
from tpflax._src.regularize import add_regularizers


def conv2d(
    x: jax.Array,
    W: jax.Array,
    b: jax.Array | None,
    *,
    strides: tuple[int, int],
    padding: str,
    data_format: str,
    dilation_rate: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> jax.Array:
    """The convolution op behind ``Conv2D``: pure, no variables, no names.

    Args:
        x: ``[N, H, W, C]`` (``'NHWC'``) or ``[N, C, H, W]`` (``'NCHW'``).
        W: ``[kh, kw, C // groups, filters]`` (TensorFlow's HWIO layout).
        b: ``[filters]`` or ``None``.
        strides: ``(sh, sw)``.
        padding: ``'SAME'`` (TensorFlow's rule: the odd pixel goes at the end) or ``'VALID'``.
        data_format: ``'NHWC'`` or ``'NCHW'``.
        dilation_rate: ``(dh, dw)``.
        groups: tensorpack's ``split``.

    Returns:
        The convolution plus bias, in ``data_format``.
    """
    dims = (data_format, "HWIO", data_format)
    y = lax.conv_general_dilated(
        x,
        W.astype(x.dtype),
        window_strides=strides,
        padding=padding,
        rhs_dilation=dilation_rate,
        dimension_numbers=dims,
        feature_group_count=groups,
    )
    if b is not None:
        shape = (1, 1, 1, -1) if data_format == "NHWC" else (1, -1, 1, 1)
        y = y + b.astype(y.dtype).reshape(shape)
    return y


@layer_register(
    log_shape=True,
    positional=("filters", "kernel_size"),
    aliases={"out_channel": "filters", "kernel_shape": "kernel_size", "stride": "strides"},
)
def Conv2D(
    inputs: jax.Array,
    filters: int,
    kernel_size: Any,
    strides: Any = (1, 1),
    padding: str = "same",
    data_format: str = "channels_last",
    dilation_rate: Any = (1, 1),
    activation: Any = None,
    use_bias: bool = True,
    kernel_initializer: Any = None,
    bias_initializer: Any = None,
    kernel_regularizer: Any = None,
    bias_regularizer: Any = None,
    activity_regularizer: Any = None,
    split: int = 1,
) -> jax.Array:
    """2-D convolution, tensorpack's ``Conv2D``.

    Differs from ``flax.linen.Conv`` as tensorpack differs from ``tf.layers``: the default
    kernel initializer is ``VarianceScaling(2.0)`` (untruncated normal, fan-in), the default
    padding is ``'same'``, and ``split`` does group convolution.

    Args:
        inputs: a 4-D array in ``data_format``.
        filters: output channels (alias ``out_channel``).
        kernel_size: int or ``(kh, kw)`` (alias ``kernel_shape``).
        strides: int or pair (alias ``stride``).
        padding: ``'same'`` or ``'valid'``, any case.
        data_format: ``'channels_last'``/``'NHWC'`` or ``'channels_first'``/``'NCHW'``.
        dilation_rate: int or pair.
        activation: a function, or a layer such as ``tp.BNReLU`` whose variables then live
            under this layer (``conv1/bn/gamma``) (alias ``nl``).
        use_bias: create ``b``.
        kernel_initializer: JAX initializer for ``W`` (alias ``W_init``).
        bias_initializer: JAX initializer for ``b``; zeros by default (alias ``b_init``).
        kernel_regularizer, bias_regularizer, activity_regularizer: functions whose values
            go to ``tp.regularize_cost_from_collection()``; not with ``split`` or dilation,
            as in tensorpack.
        split: number of groups; the input channels and ``filters`` must divide by it.

    Returns:
        The output, named ``<name>/output``.

    Variable names:
        ``W``: ``[kh, kw, in_channels // split, filters]``; ``b``: ``[filters]``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> x = jnp.ones((1, 8, 8, 3))
        >>> params, state = tp.Conv2D.init(jax.random.key(0), x, 16, 3, strides=2)
        >>> y, _ = tp.Conv2D.apply(params, state, x, 16, 3, strides=2)
        >>> params['W'].shape, y.shape
        ((3, 3, 3, 16), (1, 4, 4, 16))
    """
    who = layer_context("Conv2D")
    utils.check_rank(inputs, (4,), who=who)
    utils.check_floating(inputs, who=who)
    fmt = utils.data_format(data_format, who=who)
    pad = utils.padding(padding, who=who)
    kernel = utils.shape2d(kernel_size, who=who, arg="kernel_size")
    stride = utils.shape2d(strides, who=who, arg="strides")
    dilation = utils.shape2d(dilation_rate, who=who, arg="dilation_rate")
    filters = utils.positive_int(filters, who=who, arg="filters")
    split = utils.positive_int(split, who=who, arg="split")
    channels = utils.static_dim(inputs, 3 if fmt == "NHWC" else 1, who=who)
    if channels % split:
        raise ValueError(
            f"{who}: the input's channels (={channels}) must be divisible by split (={split})"
        )
    if filters % split:
        raise ValueError(f"{who}: filters (={filters}) must be divisible by split (={split})")
    regs = (kernel_regularizer, bias_regularizer, activity_regularizer)
    if (split > 1 or dilation != (1, 1)) and any(r is not None for r in regs):
        raise ValueError(
            f"{who}: kernel/bias/activity regularizers are not supported with split or "
            "dilation_rate, as in tensorpack; use tp.regularize_cost instead"
        )
    W = get_variable(
        "W",
        (*kernel, channels // split, filters),
        initializers.resolve(
            kernel_initializer, initializers.variance_scaling_2(), who=who, arg="kernel_initializer"
        ),
        who=who,
    )
    b = None
    if use_bias:
        b = get_variable(
            "b",
            (filters,),
            initializers.resolve(
                bias_initializer, initializers.zeros, who=who, arg="bias_initializer"
            ),
            who=who,
        )
    y = conv2d(
        inputs,
        W,
        b,
        strides=stride,
        padding=pad,
        data_format=fmt,
        dilation_rate=dilation,
        groups=split,
    )
    y = apply_activation(activation, y, who=who)
    add_regularizers(who, W, b, y, *regs)
    return y
