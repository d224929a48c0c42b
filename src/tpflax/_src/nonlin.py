"""Nonlinearities with a layer's name: tensorpack's ``PReLU`` and ``Maxout``."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp

from tpflax._src import utils
from tpflax._src.frame import current_frame, get_variable
from tpflax._src.registry import layer_context, layer_register

log = logging.getLogger("tpflax")


def prelu(x: jax.Array, alpha: jax.Array) -> jax.Array:
    """``0.5 * ((1 + alpha) * x + (1 - alpha) * |x|)``, tensorpack's formula (equal to
    ``max(x, alpha * x)`` for ``alpha <= 1``), in ``x``'s dtype."""
    a = alpha.astype(x.dtype)
    return ((1 + a) * x + (1 - a) * jnp.abs(x)) * jnp.asarray(0.5, x.dtype)


@layer_register()
def PReLU(x: jax.Array, init: float = 0.001, name: str | None = None) -> jax.Array:
    """Parametric ReLU, tensorpack's ``PReLU``: one learnable slope for the whole layer.

    Args:
        x: any floating array.
        init: the slope's initial value.
        name: deprecated in tensorpack (it named the output tensor); accepted and ignored,
            with a log line.

    Returns:
        ``0.5 * ((1 + alpha) * x + (1 - alpha) * |x|)``, in ``x``'s dtype.

    Variable names:
        ``alpha``: a float32 scalar.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> x = jnp.array([-2.0, 3.0])
        >>> params, _ = tp.PReLU.init(jax.random.key(0), x, 0.25)
        >>> tp.PReLU.apply(params, {}, x)[0]
        Array([-0.5,  3. ], dtype=float32)
    """
    who = layer_context("PReLU")
    utils.check_floating(x, who=who)
    if name is not None and current_frame(who).shape_logger.first_time(f"<deprecated>{who}"):
        log.warning("%s: PReLU(name=...) is deprecated in tensorpack and has no effect", who)
    alpha = get_variable("alpha", (), jax.nn.initializers.constant(init), who=who)
    return prelu(x, alpha)


@layer_register(use_scope=None)
def Maxout(x: jax.Array, num_unit: int) -> jax.Array:
    """Maxout, tensorpack's ``Maxout``: the maximum over groups of ``num_unit`` consecutive
    channels.

    Tensorpack 0.11's own code fails for every input (it reshapes to a float shape,
    ``ch / num_unit``); this does what its docstring promises.

    Args:
        x: ``[N, H, W, C]`` or ``[N, C]``, channels last.
        num_unit: the group size; ``C`` must be divisible by it.

    Returns:
        ``[N, H, W, C // num_unit]`` or ``[N, C // num_unit]``.

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> tp.Maxout.apply({}, {}, jnp.array([[1.0, 5.0, 2.0, -1.0]]), 2)[0]
        Array([[5., 2.]], dtype=float32)
    """
    who = layer_context("Maxout")
    utils.check_rank(x, (2, 4), who=who)
    num_unit = utils.positive_int(num_unit, who=who, arg="num_unit")
    channels = utils.static_dim(x, x.ndim - 1, who=who)
    if channels % num_unit:
        raise ValueError(
            f"{who}: the input's channels (={channels}) must be divisible by num_unit (={num_unit})"
        )
    grouped = x.reshape(*x.shape[:-1], channels // num_unit, num_unit)
    return jnp.max(grouped, axis=-1)
