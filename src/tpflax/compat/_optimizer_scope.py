"""What ``tf.get_variable`` and ``tf.summary`` mean inside a tensorpack ``ModelDesc.optimizer()``,
which runs once, outside any model:

- ``tf.get_variable('learning_rate', initializer=1e-2, trainable=False)`` is a
  hyperparameter, which tensorpack's ``ScheduledHyperParamSetter`` changes by its name during
  training: here a :class:`HyperParam`, a schedule ``step -> value`` that the TF optimizers
  evaluate at each step; constant unless a callback schedules it by name
  (``ModelDesc.build_optimizer(callbacks=[ScheduledHyperParamSetter(...)])``).
- ``tf.summary.scalar('lr', lr)`` asks to log the learning rate: recorded in the ModelDesc's
  ``optimizer_summaries``, which ``tp.train`` logs with the step's metrics.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class HyperParam:
    """A hyperparameter made by ``tf.get_variable`` in ``ModelDesc.optimizer()``: callable as
    a schedule (``step -> value``), the given ``schedule`` if any, else its initial value.

    Attributes:
        name: its variable name (``'learning_rate'``), which schedules refer to.
        value: its initial value.
        schedule: ``step -> value`` replacing the constant (e.g.
            ``tp.train.tf_optimizers.scheduled_hyperparam(...)``), or ``None``.
    """

    name: str
    value: float
    schedule: Callable[[Any], Any] | None = None

    def __call__(self, step: Any) -> jax.Array:
        if self.schedule is not None:
            return jnp.asarray(self.schedule(step), jnp.float32)
        return jnp.asarray(self.value, jnp.float32)

    def __float__(self) -> float:
        return float(self.value)


@dataclasses.dataclass
class OptimizerScope:
    """The hyperparameters and summaries one ``optimizer()`` call made."""

    schedules: dict[str, Callable[[float], Any]]  # name -> (initial value -> schedule)
    hyperparams: dict[str, HyperParam] = dataclasses.field(default_factory=dict)
    summaries: dict[str, Any] = dataclasses.field(default_factory=dict)

    def hyperparam(self, name: str, initializer: Any, trainable: Any, who: str) -> HyperParam:
        """The :class:`HyperParam` ``tf.get_variable(name, initializer=...)`` makes here."""
        if trainable:
            raise ValueError(
                f"{who} in ModelDesc.optimizer(): a variable made there is a hyperparameter; "
                "give it trainable=False, as tensorpack's examples do"
            )
        value = np.asarray(getattr(initializer, "value", initializer))
        if value.ndim != 0 or not np.issubdtype(value.dtype, np.number):
            raise ValueError(
                f"{who} in ModelDesc.optimizer(): expected a number as initializer= (the "
                f"hyperparameter's initial value); got {initializer!r}"
            )
        make = self.schedules.get(name)
        param = HyperParam(name, float(value), None if make is None else make(float(value)))
        self.hyperparams[name] = param
        return param


_ACTIVE: contextvars.ContextVar[OptimizerScope | None] = contextvars.ContextVar(
    "tpflax_compat_optimizer_scope", default=None
)


def active() -> OptimizerScope | None:
    """The scope of the ``ModelDesc.optimizer()`` call running now, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def optimizer_scope(schedules: dict[str, Callable[[float], Any]]) -> Iterator[OptimizerScope]:
    """Runs a ``ModelDesc.optimizer()`` body: see the module's docstring."""
    scope = OptimizerScope(dict(schedules))
    token = _ACTIVE.set(scope)
    try:
        yield scope
    finally:
        _ACTIVE.reset(token)


@dataclasses.dataclass(frozen=True)
class ScheduledHyperParamSetter:
    """Tensorpack's ``ScheduledHyperParamSetter(param, schedule, interp, step_based)``
    callback: pass it to ``ModelDesc.build_optimizer(callbacks=...)`` (or
    ``tp.train.Trainer.from_model_desc(model, callbacks=...)``) and the hyperparameter
    ``param`` made in ``optimizer()`` follows ``schedule``
    (``tp.train.tf_optimizers.scheduled_hyperparam``, tensorpack's rules)."""

    param: str
    schedule: Any
    interp: str | None = None
    step_based: bool = False

    def build(self, initial: float, steps_per_epoch: int | None, max_epoch: int | None) -> Any:
        """The schedule ``step -> value`` for a variable that starts at ``initial``."""
        from tpflax.train.tf_optimizers import scheduled_hyperparam

        del max_epoch
        return scheduled_hyperparam(
            initial, self.schedule, self.interp, self.step_based, steps_per_epoch
        )


@dataclasses.dataclass(frozen=True)
class HyperParamSetterWithFunc:
    """Tensorpack's ``HyperParamSetterWithFunc(param, func)`` callback (see
    :class:`ScheduledHyperParamSetter`; needs ``steps_per_epoch`` and ``max_epoch``)."""

    param: str
    func: Callable[[int, Any], float]

    def build(self, initial: float, steps_per_epoch: int | None, max_epoch: int | None) -> Any:
        """The schedule ``step -> value`` for a variable that starts at ``initial``."""
        from tpflax.train.tf_optimizers import hyperparam_with_func

        if steps_per_epoch is None or max_epoch is None:
            raise ValueError(
                f"HyperParamSetterWithFunc({self.param!r}): give steps_per_epoch and max_epoch"
            )
        return hyperparam_with_func(initial, self.func, steps_per_epoch, max_epoch)


def schedules_for(
    callbacks: Any, steps_per_epoch: int | None, max_epoch: int | None
) -> dict[str, Callable[[float], Any]]:
    """``{param: initial_value -> schedule}`` for the hyperparameter callbacks given.

    Raises:
        TypeError: a callback tpflax does not run (only the hyperparameter setters
            change the model's training; the others are tp.train.fit's business).
    """
    out: dict[str, Callable[[float], Any]] = {}
    for callback in callbacks:
        if not isinstance(callback, ScheduledHyperParamSetter | HyperParamSetterWithFunc):
            raise TypeError(
                f"ModelDesc.build_optimizer: callbacks= takes ScheduledHyperParamSetter and "
                f"HyperParamSetterWithFunc; got {callback!r} (checkpoints, logs and evaluation "
                "are tp.train.fit's arguments)"
            )
        out[callback.param] = functools.partial(
            _build, callback, steps_per_epoch=steps_per_epoch, max_epoch=max_epoch
        )
    return out


def _build(callback: Any, initial: float, *, steps_per_epoch: Any, max_epoch: Any) -> Any:
    return callback.build(initial, steps_per_epoch, max_epoch)
