"""TensorFlow 1.x's graph collections as model code reads them: ``tf.GraphKeys``,
``tf.get_collection``, ``tf.trainable_variables``, ``tf.global_variables`` and
``tf.losses.get_regularization_loss(es)``, answered from the running model (the variables
it created so far in this call, the regularization losses its layers and scopes added).

There is no graph to add to: ``tf.add_to_collection`` and the collections tpflax has no
counterpart for raise, naming what to write instead.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src.frame import Frame, current_frame
from tpflax._src.tree import lookup
from tpflax.compat.tf._common import unsupported
from tpflax.compat.tf._naming import remember

__all__ = [
    "GraphKeys",
    "add_to_collection",
    "get_collection",
    "global_variables",
    "trainable_variables",
]


class GraphKeys:
    """``tf.GraphKeys``: the collection names model code asks ``tf.get_collection`` for."""

    GLOBAL_VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    MODEL_VARIABLES = "model_variables"
    LOCAL_VARIABLES = "local_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    SUMMARIES = "summaries"


def _variables(frame: Frame, scope: str | None, trainable_only: bool) -> list[jax.Array]:
    """The variables created so far in this call, in creation order, filtered as TensorFlow
    filters collections: ``re.match(scope, name)``."""
    out = []
    for name, trainable in frame.created.items():
        if trainable_only and not trainable:
            continue
        if scope is not None and not re.match(scope, name):
            continue
        value = lookup(frame.params if trainable else frame.state, name.split("/"))
        out.append(remember(value, name))
    return out


def trainable_variables(scope: str | None = None) -> list[jax.Array]:
    """``tf.trainable_variables(scope)``: the trainable variables the model created so far
    (their values; ``v.op.name`` is the variable's name), those whose name matches ``scope``
    from the start (``re.match``) when given."""
    return _variables(current_frame("tf.trainable_variables()"), scope, trainable_only=True)


def global_variables(scope: str | None = None) -> list[jax.Array]:
    """``tf.global_variables(scope)``: every variable the model created so far, trainable
    or not (``params`` and ``state``), filtered by ``scope`` as
    :func:`trainable_variables`."""
    return _variables(current_frame("tf.global_variables()"), scope, trainable_only=False)


def get_collection(key: str, scope: str | None = None) -> list[Any]:
    """``tf.get_collection(key, scope)`` for the collections model code reads:

    - ``GraphKeys.TRAINABLE_VARIABLES``, ``GLOBAL_VARIABLES`` (and ``MODEL_VARIABLES``, the
      same): as :func:`trainable_variables` / :func:`global_variables`.
    - ``GraphKeys.REGULARIZATION_LOSSES``: the losses added so far by ``*_regularizer``
      arguments and regularizer scopes (no ``scope`` filter: the losses have no names here).
    - ``GraphKeys.UPDATE_OPS``: ``[]``. tpflax applies BatchNorm's moving-average updates
      itself in training (they go to ``new_state``), so
      ``with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))`` runs as
      written.

    Raises:
        NotImplementedError: any other collection (nothing adds to it in tpflax).
    """
    frame = current_frame(f"tf.get_collection({key!r})")
    if key == GraphKeys.TRAINABLE_VARIABLES:
        return _variables(frame, scope, trainable_only=True)
    if key in (GraphKeys.GLOBAL_VARIABLES, GraphKeys.MODEL_VARIABLES):
        return _variables(frame, scope, trainable_only=False)
    if key == GraphKeys.REGULARIZATION_LOSSES:
        if scope is not None:
            raise NotImplementedError(
                "tf.get_collection(REGULARIZATION_LOSSES, scope): tpflax's regularization "
                "losses carry no names to filter by scope; use tp.regularize_cost(regex, func)"
            )
        return list(frame.reg_losses)
    if key == GraphKeys.UPDATE_OPS:
        return []
    raise unsupported(
        f"tf.get_collection({key!r})",
        "a tpflax model has no graph collections beyond its variables, regularization losses "
        "and update ops",
        "return the values from the model function (capture=[...] fetches named tensors)",
    )


def add_to_collection(name: str, value: Any) -> None:
    """``tf.add_to_collection``: raises (there is no graph to add to)."""
    raise unsupported(
        f"tf.add_to_collection({name!r})",
        "a tpflax model has no graph collections",
        "return the value from the model function, or name it (tf.identity(x, name=...)) "
        "and fetch it with capture=[name]",
    )


def get_regularization_losses(scope: str | None = None) -> list[jax.Array]:
    """``tf.losses.get_regularization_losses()``: the regularization losses added so far."""
    return get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(
    scope: str | None = None, name: str = "total_regularization_loss"
) -> jax.Array:
    """``tf.losses.get_regularization_loss()``: the sum of the regularization losses added so
    far (0.0 when there are none), capturable as ``name``. Unlike tensorpack's
    ``regularize_cost_from_collection``, TensorFlow's sum does not depend on the mode."""
    from tpflax.compat.tf._naming import named

    losses = get_regularization_losses(scope)
    total = jnp.zeros((), jnp.float32)
    for loss in losses:
        total = total + jnp.asarray(loss, jnp.float32)
    return named(total, name)
