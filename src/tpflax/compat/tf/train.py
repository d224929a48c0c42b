"""``tf.train``: TensorFlow 1.x's optimizers (``tp.train.tf_optimizers``, TF's update rules),
``exponential_decay``, and the global step inside model code."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from tpflax.train import step_context
from tpflax.train.tf_optimizers import (
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    RMSPropOptimizer,
    exponential_decay,
)

__all__ = [
    "AdagradOptimizer",
    "AdamOptimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "RMSPropOptimizer",
    "exponential_decay",
    "get_global_step",
    "get_or_create_global_step",
]


def get_or_create_global_step(graph: Any = None) -> Any:
    """``tf.train.get_or_create_global_step()``: the number of steps ``tp.train`` has run
    (the TrainState's ``step``, an int32 scalar), inside a model that ``tp.train`` runs.

    Raises:
        RuntimeError: outside ``tp.train`` (there is no global step: pass the step to the
            model as an input instead).
    """
    del graph
    step = step_context.current()
    if step is None:
        raise RuntimeError(
            "tf.train.get_or_create_global_step(): no training step here; it is the "
            "TrainState's step when tp.train runs the model (elsewhere pass the step as an input)"
        )
    return jnp.asarray(step)


def get_global_step(graph: Any = None) -> Any:
    """``tf.train.get_global_step()``: as :func:`get_or_create_global_step`."""
    return get_or_create_global_step(graph)
