"""Regularization: ``regularize_cost``, tensorpack's ``l1``/``l2_regularizer`` factors, and the
``REGULARIZATION_LOSSES`` collection filled by layers' ``*_regularizer`` arguments."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src.frame import current_frame, maybe_frame
from tpflax._src.tree import flatten

log = logging.getLogger("tpflax")


def l2_regularizer(scale: float) -> Callable[[jax.Array], jax.Array]:
    """Tensorpack 0.11's ``l2_regularizer``: ``tf.keras.regularizers.l2(scale * 0.5)``, i.e.
    ``0.5 * scale * sum(x ** 2)`` (the same value as TF1's ``contrib`` version)."""
    factor = scale * 0.5

    def l2(x: jax.Array) -> jax.Array:
        return jnp.asarray(factor, x.dtype) * jnp.sum(jnp.square(x))

    return l2


def l1_regularizer(scale: float) -> Callable[[jax.Array], jax.Array]:
    """Tensorpack 0.11's ``l1_regularizer``: ``scale * sum(|x|)``."""

    def l1(x: jax.Array) -> jax.Array:
        return jnp.asarray(scale, x.dtype) * jnp.sum(jnp.abs(x))

    return l1


def add_regularizers(
    who: str, W: Any, b: Any, y: Any, kernel_reg: Any, bias_reg: Any, activity_reg: Any
) -> None:
    """Adds a layer's tf.layers-style losses to the running model's collection:
    ``kernel_regularizer(W)``, ``bias_regularizer(b)`` and, as Keras does,
    ``activity_regularizer(output) / batch_size``."""
    frame = current_frame(who)
    for arg, reg, value in (
        ("kernel_regularizer", kernel_reg, W),
        ("bias_regularizer", bias_reg, b),
        ("activity_regularizer", activity_reg, y),
    ):
        if reg is None or value is None:
            continue
        if not callable(reg):
            raise TypeError(f"{who}: {arg} must be a function of an array; got {reg!r}")
        loss = reg(value)
        if arg == "activity_regularizer":
            loss = loss / jnp.asarray(y.shape[0], loss.dtype)
        frame.reg_losses.append(loss)


def _sum_float32(losses: list[Any]) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for loss in losses:
        if not jnp.issubdtype(loss.dtype, jnp.floating):
            raise TypeError(f"regularization loss must be floating; got {loss.dtype}")
        total = total + loss.astype(jnp.float32)
    return total


def regularize_cost_from_collection(name: str = "regularize_cost") -> jax.Array:
    """Tensorpack's ``regularize_cost_from_collection``: the float32 sum of the losses made by
    layers' ``kernel_regularizer`` / ``bias_regularizer`` / ``activity_regularizer`` in the
    running model; 0 when not training, as in tensorpack. Capturable as ``name``
    (tensorpack's tensor name), like :func:`regularize_cost`'s result."""
    frame = current_frame("tp.regularize_cost_from_collection()")
    if not frame.is_training:
        return jnp.zeros((), jnp.float32)
    return _named(_sum_float32(frame.reg_losses), name)


def regularize_cost(
    regex: str,
    func: Callable[[jax.Array], jax.Array],
    name: str = "regularize_cost",
    *,
    params: Mapping[str, Any] | None = None,
) -> jax.Array:
    """Tensorpack's ``regularize_cost``: ``sum(func(v))`` over trainable variables whose
    tensorpack name matches ``regex`` (``re.search``), as float32.

    Inside a model it sees the variables created so far and returns 0 when not training, as
    tensorpack does. Outside a model, pass ``params=`` (a params tree).

    Args:
        regex: e.g. ``'conv.*/W'`` or ``'.*/W'``.
        func: e.g. ``tp.l2_regularizer(1e-4)``.
        name: the result's tensor name, as in tensorpack (``name='regularize_loss'`` in its
            examples): inside a model, ``capture=[name]`` returns it (``'empty_' + name``
            when nothing matched or not training, tensorpack's name for its zero).
        params: a params tree, to use it outside a model.

    Returns:
        A float32 scalar.
    """
    if not isinstance(regex, str) or not regex:
        raise ValueError(f"tp.regularize_cost: regex must be a non-empty string; got {regex!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"tp.regularize_cost: name must be a non-empty string; got {name!r}")
    if params is not None:
        named = flatten(params)
    else:
        frame = current_frame("tp.regularize_cost(regex, func)")
        if not frame.is_training:
            return _named(jnp.zeros((), jnp.float32), f"empty_{name}")
        flat = flatten(frame.params)
        named = {n: flat[n] for n, trainable in frame.created.items() if trainable and n in flat}
    matched = [n for n in named if re.search(regex, n)]
    if matched:
        log.info("regularize_cost() found %d variables to regularize.", len(matched))
        running = maybe_frame()
        if running is None or running.shape_logger.first_time(f"<regularize_cost>{regex}"):
            names = ", ".join(f"{n}:0" for n in matched)
            log.info("The following tensors will be regularized: %s", names)
    if not matched:
        return _named(jnp.zeros((), jnp.float32), f"empty_{name}")
    return _named(_sum_float32([func(named[n]) for n in matched]), name)


def _named(value: jax.Array, name: str) -> jax.Array:
    """Records ``value`` under its TensorFlow name in the running model (for ``capture=``)."""
    frame = maybe_frame()
    if frame is not None:
        frame.outputs[frame.unique_name(name)] = value
    return value
