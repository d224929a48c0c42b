"""``tf.losses`` (TF1): ``mean_squared_error`` and ``huber_loss`` with TensorFlow's default
reduction (``SUM_BY_NONZERO_WEIGHTS``: the weighted sum over the number of non-zero weights).
Unlike TF, the loss is not added to a ``LOSSES`` collection: return it from the model."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from tpflax.compat.tf._common import broadcast, tensor
from tpflax.compat.tf._math_ops import _tf_abs


def _reduce(losses: jax.Array, weights: Any, reduction: str, who: str) -> jax.Array:
    losses, w = broadcast(losses, tensor(weights).astype(losses.dtype))
    weighted = losses * w
    if reduction == "none":
        return weighted
    total = jnp.sum(weighted)
    if reduction == "weighted_sum":
        return total
    if reduction == "weighted_sum_by_nonzero_weights":
        count = jnp.sum(w != 0).astype(losses.dtype)
        return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)
    if reduction == "weighted_mean":
        wsum = jnp.sum(w)
        return jnp.where(wsum != 0, total / jnp.where(wsum != 0, wsum, 1), 0.0)
    if reduction == "weighted_sum_over_batch_size":
        return total / losses.size
    raise ValueError(f"{who}: unknown reduction {reduction!r}")


def mean_squared_error(
    labels: Any,
    predictions: Any,
    weights: Any = 1.0,
    scope: Any = None,
    loss_collection: Any = None,
    reduction: str = "weighted_sum_by_nonzero_weights",
) -> Any:
    """``tf.losses.mean_squared_error`` (TF1), not added to a collection."""
    err = jnp.square(jnp.subtract(*broadcast(predictions, labels)))
    return _reduce(err, weights, reduction, "tf.losses.mean_squared_error")


def huber_loss(
    labels: Any,
    predictions: Any,
    weights: Any = 1.0,
    delta: float = 1.0,
    scope: Any = None,
    loss_collection: Any = None,
    reduction: str = "weighted_sum_by_nonzero_weights",
) -> Any:
    """``tf.losses.huber_loss`` (TF1), not added to a collection."""
    abs_err = _tf_abs(jnp.subtract(*broadcast(predictions, labels)))
    quadratic = jnp.where(abs_err <= delta, abs_err, jnp.asarray(delta, abs_err.dtype))
    linear = abs_err - quadratic
    losses = 0.5 * quadratic * quadratic + delta * linear
    return _reduce(losses, weights, reduction, "tf.losses.huber_loss")


class Reduction:
    """``tf.losses.Reduction``'s names."""

    NONE = "none"
    SUM = "weighted_sum"
    MEAN = "weighted_mean"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"


__all__ = ["Reduction", "huber_loss", "mean_squared_error"]
