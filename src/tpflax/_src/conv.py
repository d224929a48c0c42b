"""Convolutions: the pure ops and tensorpack's ``Conv2D`` and ``Conv2DTranspose`` layers.

Variables take the dtype of the input at ``init`` (``tf.layers`` does the same: a float16
input gives float16 ``W`` and ``b``). At ``apply`` the computation runs in the input's dtype,
so float32 weights with a bfloat16 input compute in bfloat16 (Keras' autocast).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from tpflax._src import epilogue, initializers, layout, onednn, utils
from tpflax._src.activation import apply_activation
from tpflax._src.conv_impl import (
    output_size,
    patches_conv,
    pointwise_conv,
    use_onednn,
    use_patches,
    use_pointwise_dot,
)
from tpflax._src.frame import get_variable
from tpflax._src.registry import layer_context, layer_register, register_alias
from tpflax._src.regularize import add_regularizers
from tpflax._src.types import Activation, Initializer, Regularizer, Size2D


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
        The convolution plus bias, in ``data_format``. How it is lowered follows
        ``tp.conv_impl`` (on CPU by default: oneDNN where it is built and measured faster; else
        a 1x1 convolution is a matrix product, and so is a larger one with few output
        positions, over patches).
    """
    args = (strides, padding, data_format, dilation_rate, groups)
    inference = use_onednn(x, W, strides, dilation_rate, groups, data_format, inference=True)
    if inference == use_onednn(x, W, strides, dilation_rate, groups, data_format):
        y = _lowered(x, W, *args, onednn_conv=inference)
    else:  # one lowering when not differentiated, the training table's when it is
        y = _inference_or_training(x, W, args, inference)
    return layout.add_bias(y, b, data_format)


def _inference_or_training(x: jax.Array, W: jax.Array, args: tuple, inference: bool) -> jax.Array:
    """``conv(x, W)`` lowered on oneDNN or not by ``inference`` when no transformation
    differentiates it, and as the training table says when one does: JAX calls the JVP rule
    only then (forward and reverse mode, any order; zero tangents skipped)."""

    @jax.custom_jvp
    def conv(x: jax.Array, W: jax.Array) -> jax.Array:
        return _lowered(x, W, *args, onednn_conv=inference)

    @functools.partial(conv.defjvp, symbolic_zeros=True)
    def conv_jvp(primals: tuple, tangents: tuple) -> tuple:
        (x, W), (dx, dW) = primals, tangents
        y = _lowered(x, W, *args, onednn_conv=not inference)
        terms = [
            _lowered(a, b, *args, onednn_conv=not inference)
            for a, b, zero in ((dx, W, dx), (x, dW, dW))
            if not isinstance(zero, SymbolicZero)
        ]
        dy = functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)
        return y, dy

    return conv(x, W)


def _lowered(
    x: jax.Array,
    W: jax.Array,
    strides: tuple[int, int],
    padding: str,
    data_format: str,
    dilation_rate: tuple[int, int],
    groups: int,
    *,
    onednn_conv: bool,
) -> jax.Array:
    """The convolution without bias, on oneDNN or by the other lowerings' rules."""
    if onednn_conv:
        nhwc = x if data_format == "NHWC" else x.transpose(0, 2, 3, 1)
        y = onednn.conv(
            nhwc,
            W.astype(x.dtype),  # bfloat16 input, float32 weights: computed in bfloat16
            strides=strides,
            padding=padding,
            dilation=dilation_rate,
            groups=groups,
        )
        y = y if data_format == "NHWC" else y.transpose(0, 3, 1, 2)
    elif use_pointwise_dot(W.shape[:2], dilation_rate, groups):
        y = pointwise_conv(x, W, strides, data_format)  # faster on XLA:CPU, same sums
    elif use_patches(
        *_output_map(x, W, strides, padding, data_format),
        W.shape[2],
        W.shape[:2],
        dilation_rate,
        groups,
    ):
        y = patches_conv(x, W, strides, padding, data_format)  # faster on small outputs
    else:
        dims = (data_format, "HWIO", data_format)
        y = lax.conv_general_dilated(
            x,
            W.astype(x.dtype),
            window_strides=strides,
            padding=padding,
            rhs_dilation=dilation_rate,
            dimension_numbers=dims,
            feature_group_count=groups,
            preferred_element_type=utils.accumulation_dtype(x.dtype),
        ).astype(x.dtype)
    return y


def _output_map(
    x: jax.Array, W: jax.Array, strides: tuple[int, int], padding: str, data_format: str
) -> tuple[int, int]:
    """``(OH * OW, N * OH * OW)``: the output pixels per image and in all; ``(-1, -1)`` when a
    size is symbolic (``jax.export``)."""
    if not all(isinstance(d, int) for d in x.shape):
        return -1, -1
    hw = x.shape[1:3] if data_format == "NHWC" else x.shape[2:4]
    oh, ow = (
        output_size(s, k, st, padding) for s, k, st in zip(hw, W.shape[:2], strides, strict=True)
    )
    return oh * ow, x.shape[0] * oh * ow


@layer_register(
    log_shape=True,
    positional=("filters", "kernel_size"),
    aliases={"out_channel": "filters", "kernel_shape": "kernel_size", "stride": "strides"},
)
def Conv2D(
    inputs: jax.Array,
    filters: int,
    kernel_size: Size2D,
    strides: Size2D = (1, 1),
    padding: str = "same",
    data_format: str = "channels_last",
    dilation_rate: Size2D = (1, 1),
    activation: Activation | None = None,
    use_bias: bool = True,
    kernel_initializer: Initializer | None = None,
    bias_initializer: Initializer | None = None,
    kernel_regularizer: Regularizer | None = None,
    bias_regularizer: Regularizer | None = None,
    activity_regularizer: Regularizer | None = None,
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
    fmt, pad, kernel, stride, filters, channels = _conv_args(
        who, inputs, data_format, padding, kernel_size, strides, filters
    )
    dilation = utils.shape2d(dilation_rate, who=who, arg="dilation_rate")
    split = utils.positive_int(split, who=who, arg="split")
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
    W = _kernel((*kernel, channels // split, filters), kernel_initializer, inputs.dtype, who)
    b = _bias(use_bias, filters, bias_initializer, inputs.dtype, who)
    args: dict[str, Any] = {
        "strides": stride,
        "padding": pad,
        "data_format": fmt,
        "dilation_rate": dilation,
        "groups": split,
    }
    y = conv2d(inputs, W, b, **args)
    with epilogue.offered(y, _epilogue_recipe(inputs, W, b, args)):
        y = apply_activation(activation, y, who=who)
    add_regularizers(who, W, b, y, *regs)
    return y


def _epilogue_recipe(
    x: jax.Array, W: jax.Array, b: jax.Array | None, args: dict[str, Any]
) -> epilogue.Recipe | None:
    """How ``conv2d(x, W, b, **args)`` computes its output again with BatchNorm's affine and
    ReLU as oneDNN post-ops (``activation=BNReLU``); ``None`` unless its inference lowering is
    oneDNN on float32."""
    strides, dilation, groups, fmt = (
        args[k] for k in ("strides", "dilation_rate", "groups", "data_format")
    )
    if x.dtype != jnp.float32 or not use_onednn(
        x, W, strides, dilation, groups, fmt, inference=True
    ):
        return None
    return epilogue.Recipe(
        x=x,
        W=W,
        options={
            "strides": strides,
            "padding": args["padding"],
            "dilation": dilation,
            "groups": groups,
        },
        data_format=fmt,
        conv=functools.partial(conv2d, b=None, **args),
        steps=() if b is None else (("add", b.astype(jnp.float32)),),
    )


def _conv_args(
    who: str,
    inputs: jax.Array,
    data_format: Any,
    padding: Any,
    kernel_size: Any,
    strides: Any,
    filters: Any,
) -> tuple[str, str, tuple[int, int], tuple[int, int], int, int]:
    """Checks the arguments both convolutions share; returns ``(data_format, padding,
    kernel, strides, filters, input channels)`` in canonical form."""
    utils.check_rank(inputs, (4,), who=who)
    utils.check_floating(inputs, who=who)
    fmt = utils.data_format(data_format, who=who)
    return (
        fmt,
        utils.padding(padding, who=who),
        utils.shape2d(kernel_size, who=who, arg="kernel_size"),
        utils.shape2d(strides, who=who, arg="strides"),
        utils.positive_int(filters, who=who, arg="filters"),
        utils.static_dim(inputs, 3 if fmt == "NHWC" else 1, who=who),
    )


def _kernel(shape: tuple[int, ...], init: Initializer | None, dtype: Any, who: str) -> jax.Array:
    default = initializers.variance_scaling_2()
    initializer = initializers.resolve(init, default, who=who, arg="kernel_initializer")
    return get_variable("W", shape, initializer, dtype=dtype, who=who)


def _bias(
    use_bias: bool, filters: int, init: Initializer | None, dtype: Any, who: str
) -> jax.Array | None:
    if not use_bias:
        return None
    initializer = initializers.resolve(init, initializers.zeros, who=who, arg="bias_initializer")
    return get_variable("b", (filters,), initializer, dtype=dtype, who=who)


def transpose_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Tensorpack's output size rule for ``Conv2DTranspose`` along one spatial axis:
    ``size * stride`` for SAME, ``size * stride + max(kernel - stride, 0)`` for VALID."""
    return size * stride + (max(kernel - stride, 0) if padding == "VALID" else 0)


def _transpose_pads(size: int, out: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    # The forward convolution that maps `out` to `size` pads (lo, hi); its input gradient,
    # which is the transposed convolution, pads the stride-dilated input by these amounts.
    lo = 0
    if padding == "SAME":
        lo = max((size - 1) * stride + kernel - out, 0) // 2
    return kernel - 1 - lo, out - 1 - (size - 1) * stride + lo


def conv2d_transpose(
    x: jax.Array,
    W: jax.Array,
    b: jax.Array | None,
    *,
    strides: tuple[int, int],
    padding: str,
    data_format: str,
) -> jax.Array:
    """The op behind ``Conv2DTranspose``: TensorFlow's ``conv2d_transpose`` (the input
    gradient of a convolution) with tensorpack's output size, pure, no names.

    Args:
        x: ``[N, H, W, C]`` (``'NHWC'``) or ``[N, C, H, W]`` (``'NCHW'``).
        W: ``[kh, kw, filters, C]``, TensorFlow's layout for a transposed kernel.
        b: ``[filters]`` or ``None``.
        strides: ``(sh, sw)``.
        padding: ``'SAME'`` or ``'VALID'``.
        data_format: ``'NHWC'`` or ``'NCHW'``.

    Returns:
        ``[N, H * sh (+ max(kh - sh, 0) for VALID), ..., filters]`` in ``data_format``.
    """
    spatial = (1, 2) if data_format == "NHWC" else (2, 3)
    kernel = W.shape[:2]
    pads, outs = [], []
    for axis, k, s in zip(spatial, kernel, strides, strict=True):
        size = x.shape[axis]
        outs.append(transpose_output_size(size, k, s, padding))
        pads.append(_transpose_pads(size, outs[-1], k, s, padding))

    if use_onednn(x, W, strides, (1, 1), 1, data_format, transpose=True):
        nhwc = x if data_format == "NHWC" else x.transpose(0, 2, 3, 1)
        y = onednn.conv_transpose(
            nhwc, W, out_hw=(outs[0], outs[1]), strides=strides, padding=padding
        )
        y = y if data_format == "NHWC" else y.transpose(0, 3, 1, 2)
    else:
        # Flip the kernel spatially and swap its channel axes: HW(filters)(C) -> HW(C)(filters).
        rhs = jnp.swapaxes(W[::-1, ::-1], 2, 3).astype(x.dtype)
        y = lax.conv_general_dilated(
            x,
            rhs,
            window_strides=(1, 1),
            padding=pads,
            lhs_dilation=strides,
            dimension_numbers=(data_format, "HWIO", data_format),
            preferred_element_type=utils.accumulation_dtype(x.dtype),
        ).astype(x.dtype)
    return layout.add_bias(y, b, data_format)


@layer_register(
    log_shape=True,
    positional=("filters", "kernel_size", "strides"),
    aliases={"out_channel": "filters", "kernel_shape": "kernel_size", "stride": "strides"},
)
def Conv2DTranspose(
    inputs: jax.Array,
    filters: int,
    kernel_size: Size2D,
    strides: Size2D = (1, 1),
    padding: str = "same",
    data_format: str = "channels_last",
    activation: Activation | None = None,
    use_bias: bool = True,
    kernel_initializer: Initializer | None = None,
    bias_initializer: Initializer | None = None,
    kernel_regularizer: Regularizer | None = None,
    bias_regularizer: Regularizer | None = None,
    activity_regularizer: Regularizer | None = None,
) -> jax.Array:
    """Transposed 2-D convolution, tensorpack's ``Conv2DTranspose`` (alias ``Deconv2D``).

    Tensorpack 0.11 on TensorFlow > 1.12 uses its own implementation rather than
    ``tf.layers``, and so does this: the output is ``H * stride`` for SAME and
    ``H * stride + max(kernel - stride, 0)`` for VALID, any kernel and stride, both layouts.

    Differs from tensorpack in one way: tensorpack 0.11 rejects ``kernel_regularizer``,
    ``bias_regularizer`` and ``activity_regularizer`` here (an assertion, to dodge a Keras
    bug); tpflax accepts them with ``Conv2D``'s meaning.

    Args:
        inputs: a 4-D array in ``data_format``.
        filters: output channels (alias ``out_channel``).
        kernel_size: int or ``(kh, kw)`` (alias ``kernel_shape``).
        strides: int or pair (alias ``stride``).
        padding: ``'same'`` or ``'valid'``, any case.
        data_format: ``'channels_last'``/``'NHWC'`` or ``'channels_first'``/``'NCHW'``.
        activation: a function or a layer (alias ``nl``).
        use_bias: create ``b``.
        kernel_initializer: JAX initializer for ``W``; ``VarianceScaling(2.0)`` over
            ``fan_in = kh * kw * filters`` by default, as in TensorFlow (alias ``W_init``).
        bias_initializer: zeros by default (alias ``b_init``).
        kernel_regularizer, bias_regularizer, activity_regularizer: as in ``Conv2D``.

    Returns:
        The output, named ``<name>/output``.

    Variable names:
        ``W``: ``[kh, kw, filters, in_channels]`` (note the order); ``b``: ``[filters]``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> x = jnp.ones((1, 5, 5, 3))
        >>> params, _ = tp.Deconv2D.init(jax.random.key(0), x, 8, 3, 2, padding='valid')
        >>> y, _ = tp.Deconv2D.apply(params, {}, x, 8, 3, 2, padding='valid')
        >>> params['W'].shape, y.shape
        ((3, 3, 8, 3), (1, 11, 11, 8))
    """
    who = layer_context("Conv2DTranspose")
    fmt, pad, kernel, stride, filters, channels = _conv_args(
        who, inputs, data_format, padding, kernel_size, strides, filters
    )
    W = _kernel((*kernel, filters, channels), kernel_initializer, inputs.dtype, who)
    b = _bias(use_bias, filters, bias_initializer, inputs.dtype, who)
    y = conv2d_transpose(inputs, W, b, strides=stride, padding=pad, data_format=fmt)
    y = apply_activation(activation, y, who=who)
    add_regularizers(who, W, b, y, kernel_regularizer, bias_regularizer, activity_regularizer)
    return y


Deconv2D = register_alias("Deconv2D", Conv2DTranspose)
