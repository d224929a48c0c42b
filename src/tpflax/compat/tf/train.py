"""``tf.train``: TensorFlow 1.x's optimizers (``tp.train.tf_optimizers``, TF's update rules),
``exponential_decay``, and the global step inside model code."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from tpflax._src.frame import maybe_frame
from tpflax.train import step_context, tf_optimizers
from tpflax.train.tf_optimizers import (
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    RMSPropOptimizer,
)

__all__ = [
    "AdagradOptimizer",
    "AdamOptimizer",
    "GlobalStep",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "RMSPropOptimizer",
    "exponential_decay",
    "get_global_step",
    "get_or_create_global_step",
]


class GlobalStep:
    """What ``tf.train.get_or_create_global_step()`` returns outside a running model (in a
    ``ModelDesc.optimizer()``): the optimizer's own step. ``tf.train.exponential_decay``
    given it returns a schedule, which the TF optimizers evaluate at each step."""

    def __repr__(self) -> str:
        return "<tf.train global step: the optimizer's step>"


def get_or_create_global_step(graph: Any = None) -> Any:
    """``tf.train.get_or_create_global_step()``: inside a model that ``tp.train`` runs, the
    number of steps it has run (the TrainState's ``step``, an int32 scalar); outside any
    model (a ``ModelDesc.optimizer()``), a :class:`GlobalStep` that
    ``tf.train.exponential_decay`` turns into a schedule.

    Raises:
        RuntimeError: inside a model that ``tp.train`` does not run (there is no global step:
            pass the step to the model as an input instead).
    """
    del graph
    step = step_context.current()
    if step is not None:
        return jnp.asarray(step)
    if maybe_frame() is None:
        return GlobalStep()
    raise RuntimeError(
        "tf.train.get_or_create_global_step(): no training step here; it is the TrainState's "
        "step when tp.train runs the model (elsewhere pass the step as an input)"
    )


def get_global_step(graph: Any = None) -> Any:
    """``tf.train.get_global_step()``: as :func:`get_or_create_global_step`."""
    return get_or_create_global_step(graph)


def exponential_decay(
    learning_rate: float,
    global_step: Any,
    decay_steps: int,
    decay_rate: float,
    staircase: bool = False,
    name: str | None = None,
) -> Any:
    """``tf.train.exponential_decay`` with TensorFlow's signature: ``learning_rate *
    decay_rate ** (global_step / decay_steps)`` (the exponent floored with ``staircase``).

    With the :class:`GlobalStep` of a ``ModelDesc.optimizer()``, a schedule that the TF
    optimizers evaluate at their own step (``tp.train.tf_optimizers.exponential_decay``);
    with a step value (inside a model ``tp.train`` runs), the learning rate at that step.
    """
    del name
    schedule = tf_optimizers.exponential_decay(learning_rate, decay_steps, decay_rate, staircase)
    if isinstance(global_step, GlobalStep):
        return schedule
    return schedule(global_step)
