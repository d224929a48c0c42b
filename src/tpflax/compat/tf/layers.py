"""``tf.layers`` (TensorFlow 1.x's ``tf.compat.v1.layers``) with TensorFlow's variable names,
defaults and naming rules, on tpflax's ops.

Variables: ``conv2d/kernel`` (``[kh, kw, in, out]``; ``[kh, kw, out, in]`` for
``conv2d_transpose``), ``conv2d/bias``, ``dense/kernel`` (``[in, units]``), ``dense/bias``,
``batch_normalization/gamma``, ``beta``, and in ``state`` ``moving_mean`` and
``moving_variance``: a TensorFlow checkpoint of a ``tf.layers`` model loads by name
(``tp.checkpoint.restore``). Defaults are TensorFlow's: ``'valid'`` padding, kernels from the
enclosing ``tf.variable_scope``'s initializer or glorot uniform, zero biases, BatchNorm
momentum 0.99 and epsilon 1e-3, and ``training=False`` (pass ``training=`` as in TF;
``tp.is_training()`` gives the model's flag). Unnamed layers are ``conv2d``, ``conv2d_1``,
... as TensorFlow numbers them (see ``_layers_scope``). The functions take an argscope after
``tp.enable_argscope_for_module(tf.layers)``, as in tensorpack.

Not supported (raise at the call): ``kernel_constraint``/``bias_constraint``, BatchNorm's
``renorm``, ``virtual_batch_size`` and ``adjustment``, activations given as strings.
"""

from __future__ import annotations

from typing import Any as _Any

from tpflax.compat.tf import _layers_impl

Layer = _layers_impl.Layer
Conv2D = _layers_impl.Conv2D
Conv2DTranspose = _layers_impl.Conv2DTranspose
Dense = _layers_impl.Dense
MaxPooling2D = _layers_impl.MaxPooling2D
AveragePooling2D = _layers_impl.AveragePooling2D
Dropout = _layers_impl.Dropout
Flatten = _layers_impl.Flatten
BatchNormalization = _layers_impl.BatchNormalization
# The layers' names for their classes, as TF's module has them (tf.layers.Convolution2D ...)
Convolution2D = Conv2D
Convolution2DTranspose = Deconvolution2D = Deconv2D = Conv2DTranspose
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D

__all__ = [
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
    "Conv2D",
    "Conv2DTranspose",
    "Convolution2D",
    "Convolution2DTranspose",
    "Deconv2D",
    "Deconvolution2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
    "average_pooling2d",
    "batch_normalization",
    "conv2d",
    "conv2d_transpose",
    "dense",
    "dropout",
    "flatten",
    "max_pooling2d",
]

# Only the functions below are functions of this module: enable_argscope_for_module(tf.layers)
# wraps every one of them, as tensorpack's wraps TensorFlow's.


def conv2d(
    inputs: _Any,
    filters: int,
    kernel_size: _Any,
    strides: _Any = (1, 1),
    padding: str = "valid",
    data_format: str = "channels_last",
    dilation_rate: _Any = (1, 1),
    activation: _Any = None,
    use_bias: bool = True,
    kernel_initializer: _Any = None,
    bias_initializer: _Any = None,
    kernel_regularizer: _Any = None,
    bias_regularizer: _Any = None,
    activity_regularizer: _Any = None,
    kernel_constraint: _Any = None,
    bias_constraint: _Any = None,
    trainable: bool = True,
    name: str | None = None,
    reuse: _Any = None,
) -> _Any:
    """``tf.layers.conv2d``: variables ``kernel`` ``[kh, kw, in, filters]`` and ``bias``."""
    layer = Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation_rate,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint,
        trainable=trainable,
        name=name,
        _reuse=reuse,
        _scope=name,
    )
    return layer(inputs)


def conv2d_transpose(
    inputs: _Any,
    filters: int,
    kernel_size: _Any,
    strides: _Any = (1, 1),
    padding: str = "valid",
    data_format: str = "channels_last",
    activation: _Any = None,
    use_bias: bool = True,
    kernel_initializer: _Any = None,
    bias_initializer: _Any = None,
    kernel_regularizer: _Any = None,
    bias_regularizer: _Any = None,
    activity_regularizer: _Any = None,
    kernel_constraint: _Any = None,
    bias_constraint: _Any = None,
    trainable: bool = True,
    name: str | None = None,
    reuse: _Any = None,
) -> _Any:
    """``tf.layers.conv2d_transpose``: ``kernel`` ``[kh, kw, filters, in]`` and ``bias``;
    the output is ``size * stride`` (``'same'``) or ``size * stride + max(k - stride, 0)``."""
    layer = Conv2DTranspose(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint,
        trainable=trainable,
        name=name,
        _reuse=reuse,
        _scope=name,
    )
    return layer(inputs)


def dense(
    inputs: _Any,
    units: int,
    activation: _Any = None,
    use_bias: bool = True,
    kernel_initializer: _Any = None,
    bias_initializer: _Any = None,
    kernel_regularizer: _Any = None,
    bias_regularizer: _Any = None,
    activity_regularizer: _Any = None,
    kernel_constraint: _Any = None,
    bias_constraint: _Any = None,
    trainable: bool = True,
    name: str | None = None,
    reuse: _Any = None,
) -> _Any:
    """``tf.layers.dense``: ``kernel`` ``[in, units]`` and ``bias``, over the last axis."""
    layer = Dense(
        units,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint,
        trainable=trainable,
        name=name,
        _reuse=reuse,
        _scope=name,
    )
    return layer(inputs)


def max_pooling2d(
    inputs: _Any,
    pool_size: _Any,
    strides: _Any,
    padding: str = "valid",
    data_format: str = "channels_last",
    name: str | None = None,
) -> _Any:
    """``tf.layers.max_pooling2d`` (no variables; its scope is numbered as a layer's)."""
    layer = MaxPooling2D(pool_size, strides, padding, data_format, name=name, _scope=name)
    return layer(inputs)


def average_pooling2d(
    inputs: _Any,
    pool_size: _Any,
    strides: _Any,
    padding: str = "valid",
    data_format: str = "channels_last",
    name: str | None = None,
) -> _Any:
    """``tf.layers.average_pooling2d``; with ``'same'``, padding is not counted (TF's rule)."""
    layer = AveragePooling2D(pool_size, strides, padding, data_format, name=name, _scope=name)
    return layer(inputs)


def dropout(
    inputs: _Any,
    rate: float = 0.5,
    noise_shape: _Any = None,
    seed: _Any = None,
    training: _Any = False,
    name: str | None = None,
) -> _Any:
    """``tf.layers.dropout``: drops with probability ``rate`` when ``training`` is true (the
    mask comes from the model's ``rng``), else returns ``inputs``."""
    layer = Dropout(rate, noise_shape=noise_shape, seed=seed, name=name, _scope=name)
    return layer(inputs, training=training)


def flatten(inputs: _Any, name: str | None = None, data_format: str = "channels_last") -> _Any:
    """``tf.layers.flatten``: ``[N, ...] -> [N, -1]``; ``'channels_first'`` inputs flatten in
    channels-last order, as TensorFlow's."""
    layer = Flatten(data_format=data_format, name=name, _scope=name)
    return layer(inputs)


def batch_normalization(
    inputs: _Any,
    axis: int = -1,
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    center: bool = True,
    scale: bool = True,
    beta_initializer: _Any = None,
    gamma_initializer: _Any = None,
    moving_mean_initializer: _Any = None,
    moving_variance_initializer: _Any = None,
    beta_regularizer: _Any = None,
    gamma_regularizer: _Any = None,
    beta_constraint: _Any = None,
    gamma_constraint: _Any = None,
    training: _Any = False,
    trainable: bool = True,
    name: str | None = None,
    reuse: _Any = None,
    renorm: bool = False,
    renorm_clipping: _Any = None,
    renorm_momentum: float = 0.99,
    fused: _Any = None,
    virtual_batch_size: _Any = None,
    adjustment: _Any = None,
) -> _Any:
    """``tf.layers.batch_normalization``: ``gamma``, ``beta``; ``moving_mean`` and
    ``moving_variance`` in ``state``.

    With ``training=True`` it normalizes by the batch's mean and biased variance and
    writes ``moving -= (moving - batch) * (1 - momentum)`` to ``new_state``; the batch
    variance averaged is the unbiased one (``n / (n - 1)``) on 4-D inputs normalized on axis
    1 or 3 (TensorFlow's fused kernel), the biased one otherwise, as TF 1.x's layer does.
    Else it uses the moving statistics.
    """
    layer = BatchNormalization(
        axis=axis,
        momentum=momentum,
        epsilon=epsilon,
        center=center,
        scale=scale,
        beta_initializer=beta_initializer,
        gamma_initializer=gamma_initializer,
        moving_mean_initializer=moving_mean_initializer,
        moving_variance_initializer=moving_variance_initializer,
        beta_regularizer=beta_regularizer,
        gamma_regularizer=gamma_regularizer,
        beta_constraint=beta_constraint,
        gamma_constraint=gamma_constraint,
        renorm=renorm,
        renorm_clipping=renorm_clipping,
        renorm_momentum=renorm_momentum,
        fused=fused,
        virtual_batch_size=virtual_batch_size,
        adjustment=adjustment,
        trainable=trainable,
        name=name,
        _reuse=reuse,
        _scope=name,
    )
    return layer(inputs, training=training)
