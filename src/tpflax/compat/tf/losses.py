"""``tf.losses`` (TF1): ``mean_squared_error``, ``huber_loss``, ``absolute_difference`` and
the cross entropies, with TensorFlow's default reduction (``SUM_BY_NONZERO_WEIGHTS``: the
weighted sum over the number of non-zero weights).
Unlike TF, the loss is not added to a ``LOSSES`` collection: return it from the model."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from tpflax.compat.tf import nn
from tpflax.compat.tf._collections import get_regularization_loss, get_regularization_losses
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


def absolute_difference(
    labels: Any,
    predictions: Any,
    weights: Any = 1.0,
    scope: Any = None,
    loss_collection: Any = None,
    reduction: str = "weighted_sum_by_nonzero_weights",
) -> Any:
    """``tf.losses.absolute_difference`` (TF1), not added to a collection."""
    err = _tf_abs(jnp.subtract(*broadcast(predictions, labels)))
    return _reduce(err, weights, reduction, "tf.losses.absolute_difference")


def sparse_softmax_cross_entropy(
    labels: Any,
    logits: Any,
    weights: Any = 1.0,
    scope: Any = None,
    loss_collection: Any = None,
    reduction: str = "weighted_sum_by_nonzero_weights",
) -> Any:
    """``tf.losses.sparse_softmax_cross_entropy`` (TF1), not added to a collection."""
    losses = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _reduce(losses, weights, reduction, "tf.losses.sparse_softmax_cross_entropy")


def softmax_cross_entropy(
    onehot_labels: Any,
    logits: Any,
    weights: Any = 1.0,
    label_smoothing: float = 0,
    scope: Any = None,
    loss_collection: Any = None,
    reduction: str = "weighted_sum_by_nonzero_weights",
) -> Any:
    """``tf.losses.softmax_cross_entropy`` (TF1): ``label_smoothing`` as TF, no gradient to
    the labels; not added to a collection."""
    lg = tensor(logits)
    y = tensor(onehot_labels).astype(lg.dtype)
    if label_smoothing > 0:
        k = y.shape[-1]
        y = y * (1 - label_smoothing) + label_smoothing / k
    losses = nn.softmax_cross_entropy_with_logits_v2(labels=lax.stop_gradient(y), logits=lg)
    return _reduce(losses, weights, reduction, "tf.losses.softmax_cross_entropy")


def sigmoid_cross_entropy(
    multi_class_labels: Any,
    logits: Any,
    weights: Any = 1.0,
    label_smoothing: float = 0,
    scope: Any = None,
    loss_collection: Any = None,
    reduction: str = "weighted_sum_by_nonzero_weights",
) -> Any:
    """``tf.losses.sigmoid_cross_entropy`` (TF1): ``label_smoothing`` as TF; not added to a
    collection."""
    lg = tensor(logits)
    y = tensor(multi_class_labels).astype(lg.dtype)
    if label_smoothing > 0:
        y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    losses = nn.sigmoid_cross_entropy_with_logits(labels=y, logits=lg)
    return _reduce(losses, weights, reduction, "tf.losses.sigmoid_cross_entropy")


class Reduction:
    """``tf.losses.Reduction``'s names."""

    NONE = "none"
    SUM = "weighted_sum"
    MEAN = "weighted_mean"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"


__all__ = [
    "Reduction",
    "absolute_difference",
    "get_regularization_loss",
    "get_regularization_losses",
    "huber_loss",
    "mean_squared_error",
    "sigmoid_cross_entropy",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
]
