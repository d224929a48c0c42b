"""The ``tf.layers`` classes behind ``tpflax.compat.tf.layers``: TensorFlow's arguments and
variable names, tpflax's ops for the math (``conv2d``, ``conv2d_transpose``, the pools,
``norm_ops``), ``tf.get_variable`` (``_scopes``) for the variables, so an enclosing
``tf.variable_scope``'s initializer, reuse and custom getter apply as in TensorFlow."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src import conv, layout, norm_ops, pool, utils
from tpflax._src import dropout as dropout_ops
from tpflax._src.frame import assign_sub_state, current_frame, next_rng_key
from tpflax._src.regularize import add_regularizers
from tpflax.compat.tf import _scopes
from tpflax.compat.tf._layers_scope import layer_scope


def _zeros(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
    return jnp.zeros(shape, dtype)


def _ones(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
    return jnp.ones(shape, dtype)


def _activation(value: Any, who: str) -> Any:
    if value is None or callable(value):
        return value
    raise TypeError(
        f"{who}: activation must be a function (tf.nn.relu) or None; got {value!r} "
        "(Keras' activation names are not supported)"
    )


def _no_constraints(who: str, **constraints: Any) -> None:
    for arg, value in constraints.items():
        if value is not None:
            raise NotImplementedError(
                f"{who}: {arg}= is not supported by tpflax.compat; apply the constraint to the "
                "parameters after the optimizer step"
            )


def _floating(inputs: Any, who: str) -> jax.Array:
    x = jnp.asarray(inputs)
    utils.check_floating(x, who=who)
    return x


class Layer:
    """``tf.layers.Layer``: a layer object; its first call in a model creates its variables
    in its own variable scope (named after the layer, numbered as TensorFlow does), later
    calls share them. ``layer.apply(x)`` is ``layer(x)``."""

    _base_name = "layer"

    def __init__(
        self,
        trainable: bool = True,
        name: str | None = None,
        dtype: Any = None,
        _reuse: Any = None,
        _scope: str | None = None,
        **kwargs: Any,
    ) -> None:
        who = f"tf.layers.{type(self).__name__}"
        if kwargs:
            raise TypeError(f"{who}: unexpected arguments {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{who}: name must be a non-empty string or None; got {name!r}")
        del dtype  # the variables take the inputs' dtype, as TF 1.x layers infer it
        self.trainable = bool(trainable)
        self.name = name
        self._reuse = _reuse
        self._scope = _scope

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        base = self.name or self._base_name
        with layer_scope(self, base, self._scope, self._reuse):
            return self.call(inputs, *args, **kwargs)

    def apply(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """``layer.apply(x)``, TF 1.x's alias of ``layer(x)``."""
        return self(inputs, *args, **kwargs)

    def call(self, inputs: Any) -> Any:
        """The layer's computation, inside its scope (subclasses define it)."""
        raise NotImplementedError(f"tf.layers.{type(self).__name__}.call")

    def _who(self) -> str:
        return f"tf.layers.{type(self).__name__} '{current_frame().scope_name}'"

    def _variable(self, name: str, shape: tuple[int, ...], init: Any, dtype: Any) -> Any:
        return _scopes.get_variable(
            name, shape, dtype=dtype, initializer=init, trainable=self.trainable
        )


class _WeightedLayer(Layer):
    """The kernel/bias layers' shared arguments."""

    def __init__(
        self,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        who = f"tf.layers.{type(self).__name__}"
        _no_constraints(who, kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.activation = _activation(activation, who)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._regularizers = (kernel_regularizer, bias_regularizer, activity_regularizer)

    def _weights(self, kernel_shape: tuple[int, ...], units: int, dtype: Any) -> tuple[Any, Any]:
        kernel = self._variable("kernel", kernel_shape, self.kernel_initializer, dtype)
        bias = None
        if self.use_bias:
            bias = self._variable("bias", (units,), self.bias_initializer or _zeros, dtype)
        return kernel, bias

    def _finish(self, y: Any, kernel: Any, bias: Any) -> Any:
        if self.activation is not None:
            y = self.activation(y)
        add_regularizers(self._who(), kernel, bias, y, *self._regularizers)
        return y


class _Conv(_WeightedLayer):
    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        data_format: str = "channels_last",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        who = f"tf.layers.{type(self).__name__}"
        self.filters = utils.positive_int(filters, who=who, arg="filters")
        self.kernel_size = utils.shape2d(kernel_size, who=who, arg="kernel_size")
        self.strides = utils.shape2d(strides, who=who, arg="strides")
        self.padding = utils.padding(padding, who=who)
        self.data_format = utils.data_format(data_format, who=who)

    def _input(self, inputs: Any) -> tuple[jax.Array, int]:
        who = self._who()
        x = _floating(inputs, who)
        utils.check_rank(x, (4,), who=who)
        return x, utils.static_dim(x, 3 if self.data_format == "NHWC" else 1, who=who)


class Conv2D(_Conv):
    """``tf.layers.Conv2D``; see ``tf.layers.conv2d``."""

    _base_name = "conv2d"

    def __init__(self, *args: Any, dilation_rate: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        who = f"tf.layers.{type(self).__name__}"
        self.dilation_rate = utils.shape2d(dilation_rate, who=who, arg="dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{who}: strides > 1 with dilation_rate > 1 is not supported (as in TensorFlow); "
                f"got strides={self.strides}, dilation_rate={self.dilation_rate}"
            )

    def call(self, inputs: Any) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        x, channels = self._input(inputs)
        shape = (*self.kernel_size, channels, self.filters)
        kernel, bias = self._weights(shape, self.filters, x.dtype)
        y = conv.conv2d(
            x,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        return self._finish(y, kernel, bias)


class Conv2DTranspose(_Conv):
    """``tf.layers.Conv2DTranspose``; see ``tf.layers.conv2d_transpose``."""

    _base_name = "conv2d_transpose"

    def call(self, inputs: Any) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        x, channels = self._input(inputs)
        shape = (*self.kernel_size, self.filters, channels)
        kernel, bias = self._weights(shape, self.filters, x.dtype)
        y = conv.conv2d_transpose(
            x,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )
        return self._finish(y, kernel, bias)


class Dense(_WeightedLayer):
    """``tf.layers.Dense``; see ``tf.layers.dense``."""

    _base_name = "dense"

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = utils.positive_int(units, who="tf.layers.Dense", arg="units")

    def call(self, inputs: Any) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        who = self._who()
        x = _floating(inputs, who)
        if x.ndim < 2:
            raise ValueError(f"{who}: inputs must be at least 2-D; got shape {tuple(x.shape)}")
        channels = utils.static_dim(x, x.ndim - 1, who=who)
        kernel, bias = self._weights((channels, self.units), self.units, x.dtype)
        flat = x.reshape(-1, channels)
        y = utils.matmul(flat, kernel).reshape(*x.shape[:-1], self.units)
        if bias is not None:
            y = y + bias.astype(y.dtype)
        return self._finish(y, kernel, bias)


class _Pooling2D(Layer):
    def __init__(
        self,
        pool_size: Any,
        strides: Any,
        padding: str = "valid",
        data_format: str = "channels_last",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        who = f"tf.layers.{type(self).__name__}"
        self.pool_size = utils.shape2d(pool_size, who=who, arg="pool_size")
        self.strides = utils.shape2d(strides, who=who, arg="strides")
        self.padding = utils.padding(padding, who=who)
        self.data_format = utils.data_format(data_format, who=who)

    def _input(self, inputs: Any) -> jax.Array:
        who = self._who()
        x = jnp.asarray(inputs)
        utils.check_rank(x, (4,), who=who)
        return x


class MaxPooling2D(_Pooling2D):
    """``tf.layers.MaxPooling2D``; see ``tf.layers.max_pooling2d``."""

    _base_name = "max_pooling2d"

    def call(self, inputs: Any) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        x = self._input(inputs)
        return pool.max_pool(x, self.pool_size, self.strides, self.padding, self.data_format)


class AveragePooling2D(_Pooling2D):
    """``tf.layers.AveragePooling2D``; see ``tf.layers.average_pooling2d``."""

    _base_name = "average_pooling2d"

    def call(self, inputs: Any) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        x = self._input(inputs)
        return pool.avg_pool(x, self.pool_size, self.strides, self.padding, self.data_format)


def _python_bool(value: Any, who: str) -> bool:
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{who}: training must be a Python bool (e.g. training=tp.is_training()); a traced "
            "tensor cannot choose the branch under jit"
        )
    return bool(value)


class Dropout(Layer):
    """``tf.layers.Dropout``; see ``tf.layers.dropout``."""

    _base_name = "dropout"

    def __init__(
        self, rate: float = 0.5, noise_shape: Any = None, seed: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"tf.layers.Dropout: rate must be a number in [0, 1); got {rate!r}")
        del seed  # the mask comes from the model's rng
        self.rate = float(rate)
        self.noise_shape = noise_shape

    def call(self, inputs: Any, training: Any = False) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        who = self._who()
        x = jnp.asarray(inputs)
        if not _python_bool(training, who) or self.rate == 0:
            return x
        shape = None
        if self.noise_shape is not None:
            shape = [x.shape[i] if d is None else int(d) for i, d in enumerate(self.noise_shape)]
        return dropout_ops.dropout(x, self.rate, next_rng_key(who), shape)


class Flatten(Layer):
    """``tf.layers.Flatten``; see ``tf.layers.flatten``."""

    _base_name = "flatten"

    def __init__(self, data_format: str = "channels_last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = utils.data_format(data_format, who="tf.layers.Flatten")

    def call(self, inputs: Any) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        x = jnp.asarray(inputs)
        if self.data_format == "NCHW" and x.ndim > 2:
            x = jnp.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))


class BatchNormalization(Layer):
    """``tf.layers.BatchNormalization``; see ``tf.layers.batch_normalization``."""

    _base_name = "batch_normalization"

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = None,
        gamma_initializer: Any = None,
        moving_mean_initializer: Any = None,
        moving_variance_initializer: Any = None,
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        renorm: bool = False,
        renorm_clipping: Any = None,
        renorm_momentum: float = 0.99,
        fused: Any = None,
        virtual_batch_size: Any = None,
        adjustment: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        who = "tf.layers.BatchNormalization"
        _no_constraints(who, beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        for arg, value in (
            ("renorm", renorm or None),
            ("virtual_batch_size", virtual_batch_size),
            ("adjustment", adjustment),
        ):
            if value is not None:
                raise NotImplementedError(
                    f"{who}: {arg}= is not supported by tpflax.compat (tp.BatchRenorm is "
                    "tensorpack's batch renormalization)"
                )
        del renorm_clipping, renorm_momentum
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise NotImplementedError(f"{who}: one axis only; got axis={axis!r}")
            axis = axis[0]
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.fused = fused
        self._inits = (
            beta_initializer or _zeros,
            gamma_initializer or _ones,
            moving_mean_initializer or _zeros,
            moving_variance_initializer or _ones,
        )
        self._regularizers = (gamma_regularizer, beta_regularizer)

    def call(self, inputs: Any, training: Any = False) -> Any:
        """The layer on ``inputs``, in its variable scope."""
        who = self._who()
        x = _floating(inputs, who)
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"{who}: axis {self.axis} is out of range for a {x.ndim}-D input")
        axis = self.axis % x.ndim
        fused = x.ndim == 4 and axis in (1, 3) and self.fused is not False
        if self.fused and not fused:
            raise ValueError(f"{who}: fused=True needs a 4-D input normalized on axis 1 or 3")
        channels = utils.static_dim(x, axis, who=who)
        beta_init, gamma_init, mean_init, var_init = self._inits
        f32 = jnp.float32
        gamma = self._variable("gamma", (channels,), gamma_init, f32) if self.scale else None
        beta = self._variable("beta", (channels,), beta_init, f32) if self.center else None
        moving_mean = _scopes.get_variable(
            "moving_mean", (channels,), f32, initializer=mean_init, trainable=False
        )
        moving_var = _scopes.get_variable(
            "moving_variance", (channels,), f32, initializer=var_init, trainable=False
        )
        add_regularizers(who, gamma, beta, None, *self._regularizers, None)

        def per_channel(value: Any) -> Any:
            return layout.per_channel(value, x.ndim, axis)

        if _python_bool(training, who):
            axes = tuple(a for a in range(x.ndim) if a != axis)
            mean, var = norm_ops.moments(x, axes)
            mean_c, var_c = mean.reshape(channels), var.reshape(channels)
            if fused:  # TF's fused kernel averages the unbiased variance (measured)
                n = math.prod(x.shape[a] for a in axes)
                var_c = var_c * jnp.float32(n / max(n - 1, 1))
            delta = norm_ops.ema_delta(moving_mean, mean_c, self.momentum, fused=fused)
            assign_sub_state("moving_mean", moving_mean, delta, who=who)
            delta = norm_ops.ema_delta(moving_var, var_c, self.momentum, fused=fused)
            assign_sub_state("moving_variance", moving_var, delta, who=who)
        else:
            mean, var = per_channel(moving_mean), per_channel(moving_var)
        return norm_ops.normalize(
            x, mean, var, per_channel(gamma), per_channel(beta), self.epsilon, centered=fused
        )
