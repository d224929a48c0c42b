"""Fully connected: the pure op and tensorpack's ``FullyConnected`` layer.

As in ``conv.py``: variables take the input's dtype at ``init``; computation runs in the
input's dtype at ``apply``.
"""

from __future__ import annotations

import jax

from tpflax._src import initializers, utils
from tpflax._src.activation import apply_activation
from tpflax._src.frame import get_variable
from tpflax._src.registry import layer_context, layer_register
from tpflax._src.regularize import add_regularizers
from tpflax._src.types import Activation, Initializer, Regularizer


def batch_flatten(x: jax.Array) -> jax.Array:
    """Tensorpack's ``batch_flatten``: ``[N, ...] -> [N, prod(...)]`` in the array's own order
    (an NCHW input flattens as C, H, W)."""
    return x.reshape(x.shape[0], -1)


def dense(x: jax.Array, W: jax.Array, b: jax.Array | None) -> jax.Array:
    """The op behind ``FullyConnected``: ``x @ W + b`` for a 2-D ``x``."""
    y = utils.matmul(x, W)
    return y if b is None else y + b.astype(y.dtype)[None, :]


@layer_register(log_shape=True, positional=("units",), aliases={"out_dim": "units"})
def FullyConnected(
    inputs: jax.Array,
    units: int,
    activation: Activation | None = None,
    use_bias: bool = True,
    kernel_initializer: Initializer | None = None,
    bias_initializer: Initializer | None = None,
    kernel_regularizer: Regularizer | None = None,
    bias_regularizer: Regularizer | None = None,
    activity_regularizer: Regularizer | None = None,
) -> jax.Array:
    """Fully connected layer, tensorpack's ``FullyConnected`` (``tf.layers.Dense`` with
    tensorpack's ``VarianceScaling(2.0)`` default kernel initializer).

    Inputs of more than 2 dimensions are flattened first, in their own layout order: an NCHW
    feature map flattens as ``C, H, W``, so its weights differ from the same model in NHWC.

    Args:
        inputs: ``[N, ...]``, at least 2-D.
        units: output size (alias ``out_dim``).
        activation: a function or a layer (alias ``nl``).
        use_bias: create ``b``.
        kernel_initializer: JAX initializer for ``W`` (alias ``W_init``).
        bias_initializer: JAX initializer for ``b``, zeros by default (alias ``b_init``).
        kernel_regularizer, bias_regularizer, activity_regularizer: as in ``Conv2D``.

    Returns:
        ``[N, units]``, named ``<name>/output``.

    Variable names:
        ``W``: ``[in_dim, units]``; ``b``: ``[units]``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> params, _ = tp.FullyConnected.init(jax.random.key(0), jnp.ones((2, 3, 4)), 5)
        >>> params['W'].shape
        (12, 5)
    """
    who = layer_context("FullyConnected")
    if inputs.ndim < 2:
        raise ValueError(
            f"{who}: inputs must be at least 2-D ([N, ...]); got shape {tuple(inputs.shape)}"
        )
    utils.check_floating(inputs, who=who)
    units = utils.positive_int(units, who=who, arg="units")
    in_dim = 1
    for axis in range(1, inputs.ndim):
        in_dim *= utils.static_dim(inputs, axis, who=who, what="feature")
    x = batch_flatten(inputs)
    W = get_variable(
        "W",
        (in_dim, units),
        initializers.resolve(
            kernel_initializer, initializers.variance_scaling_2(), who=who, arg="kernel_initializer"
        ),
        dtype=inputs.dtype,
        who=who,
    )
    b = None
    if use_bias:
        b = get_variable(
            "b",
            (units,),
            initializers.resolve(
                bias_initializer, initializers.zeros, who=who, arg="bias_initializer"
            ),
            dtype=inputs.dtype,
            who=who,
        )
    y = apply_activation(activation, dense(x, W, b), who=who)
    add_regularizers(who, W, b, y, kernel_regularizer, bias_regularizer, activity_regularizer)
    return y
