"""Learning-rate schedules as TF 1.x and tensorpack compute them, as functions of the step
(optax's schedule convention): ``tf.train.exponential_decay`` and tensorpack's
``ScheduledHyperParamSetter`` / ``HyperParamSetterWithFunc`` callbacks. Re-exported by
``tpflax.train.tf_optimizers``; pinned by ``tests/golden/tf_optimizers`` (exponential decay)
and ``tests/golden/tf_training/schedules.npz`` (tensorpack's callbacks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Schedule = Callable[[Any], jax.Array]


def _f32(value: float) -> jax.Array:
    return jnp.asarray(np.float32(value))


def exponential_decay(
    learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False
) -> Schedule:
    """``tf.train.exponential_decay`` as a schedule ``step -> lr``, in float32 as TF:
    ``learning_rate * decay_rate ** (step / decay_steps)``, the exponent floored when
    ``staircase``. TF's ``global_step`` argument is the step the optimizer passes.

    Args:
        learning_rate: the initial learning rate.
        decay_steps: steps per decay period, > 0.
        decay_rate: the decay per period.
        staircase: decay in discrete intervals.

    Returns:
        A function of the step, usable as ``learning_rate`` here or in optax.

    Raises:
        ValueError: ``decay_steps`` is not positive.

    Example:
        >>> import tpflax as tp
        >>> lr = tp.train.tf_optimizers.exponential_decay(0.1, 2, 0.5, staircase=True)
        >>> [round(float(lr(s)), 6) for s in range(4)]
        [0.1, 0.1, 0.05, 0.05]
    """
    if not decay_steps > 0:
        raise ValueError(
            "tp.train.tf_optimizers.exponential_decay: decay_steps must be > 0; got "
            f"{decay_steps!r}"
        )

    def schedule(step: Any) -> jax.Array:
        p = jnp.asarray(step).astype(jnp.float32) / _f32(decay_steps)
        if staircase:
            p = jnp.floor(p)
        return _f32(learning_rate) * jnp.power(_f32(decay_rate), p)

    return schedule


def _table(values: Sequence[float], point: Callable[[Any], jax.Array]) -> Schedule:
    """``step -> values[point(step)]``, the last value past the end; float32, as the
    tensorpack variable holding the hyperparameter stores it."""
    table = np.asarray(values, np.float32)

    def schedule(step: Any) -> jax.Array:
        index = jnp.clip(point(jnp.asarray(step)), 0, len(table) - 1)
        return jnp.asarray(table)[index]

    return schedule


def _point(who: str, step_based: bool, steps_per_epoch: int | None) -> Callable:
    if step_based:
        return lambda step: step
    if steps_per_epoch is None or not steps_per_epoch > 0:
        raise ValueError(
            f"tp.train.tf_optimizers.{who}: an epoch-based schedule needs steps_per_epoch "
            f"> 0 (the step is what the optimizer sees); got {steps_per_epoch!r}"
        )
    return lambda step: step // steps_per_epoch


def scheduled_hyperparam(
    initial_value: float,
    schedule: Sequence[tuple[int, float]],
    interp: str | None = None,
    step_based: bool = False,
    steps_per_epoch: int | None = None,
) -> Schedule:
    """Tensorpack's ``ScheduledHyperParamSetter(param, schedule, interp, step_based)`` as a
    schedule ``step -> value`` for the variable that starts at ``initial_value``.

    As tensorpack: ``(epoch, value)`` sets ``value`` after epoch ``epoch`` completes (epoch 0:
    before the first step), so steps ``epoch * steps_per_epoch`` on use it; with
    ``step_based``, ``(step, value)`` applies from step ``step`` on. Before the first point
    the variable keeps ``initial_value``; after the last one, the last value. With
    ``interp='linear'`` the value between two points is interpolated at each epoch (or step)
    end, no extrapolation. Values are stored in float32, as tensorpack's variable.

    Args:
        initial_value: the hyperparameter variable's initial value (tensorpack's
            ``tf.get_variable('learning_rate', initializer=...)``).
        schedule: ``[(epoch or step, value), ...]``; sorted as tensorpack does.
        interp: ``None`` or ``'linear'``.
        step_based: the points are steps, not epochs.
        steps_per_epoch: required unless ``step_based``: the optimizer counts steps.

    Returns:
        A function of the step (int32 array or int), usable as ``learning_rate``.

    Raises:
        ValueError: ``interp`` is not ``None``/``'linear'``, or ``steps_per_epoch`` is
            missing for an epoch-based schedule.

    Example:
        >>> import tpflax as tp
        >>> lr = tp.train.tf_optimizers.scheduled_hyperparam(
        ...     0.1, [(2, 0.01)], steps_per_epoch=3)
        >>> [round(float(lr(s)), 6) for s in (0, 5, 6, 100)]
        [0.1, 0.1, 0.01, 0.01]
    """
    if interp not in (None, "linear"):
        raise ValueError(
            "tp.train.tf_optimizers.scheduled_hyperparam: interp must be None or 'linear'; "
            f"got {interp!r}"
        )
    point = _point("scheduled_hyperparam", step_based, steps_per_epoch)
    points = sorted(((int(p), float(v)) for p, v in schedule), key=lambda pv: pv[0])

    def at(p: int) -> float | None:  # tensorpack's _get_value_to_set_at_point
        laste, lastv = None, None
        e, v = None, None
        for e, v in points:
            if e == p:
                return v
            if e > p:
                break
            laste, lastv = e, v
        if laste is None or laste == e or interp is None:
            return None
        assert e is not None and v is not None and lastv is not None
        return (p - laste) * 1.0 / (e - laste) * (v - lastv) + lastv

    values, current = [], float(np.float32(initial_value))
    for p in range(points[-1][0] + 1 if points else 1):
        value = at(p)
        if value is not None:
            current = float(np.float32(value))
        values.append(current)
    return _table(values, point)


def hyperparam_with_func(
    initial_value: float,
    func: Callable[[int, Any], float],
    steps_per_epoch: int,
    max_epoch: int,
) -> Schedule:
    """Tensorpack's ``HyperParamSetterWithFunc(param, func)`` as a schedule: before training
    and after each epoch ``e`` (0, 1, ...), the value becomes ``func(e, value)``, ``value`` as
    the float32 variable holds it. Evaluated here in Python for epochs ``0 .. max_epoch``.

    Args:
        initial_value: the variable's initial value.
        func: ``func(epoch_num, old_value) -> new_value``, tensorpack's.
        steps_per_epoch: steps per epoch, > 0.
        max_epoch: the last epoch the schedule covers; later steps keep its value.

    Returns:
        A function of the step, usable as ``learning_rate``.

    Raises:
        ValueError: ``steps_per_epoch`` is not positive.

    Example:
        >>> import tpflax as tp
        >>> lr = tp.train.tf_optimizers.hyperparam_with_func(
        ...     0.1, lambda e, x: x * 0.5 if e % 2 == 0 else x, steps_per_epoch=1, max_epoch=4)
        >>> [round(float(lr(s)), 6) for s in range(4)]
        [0.05, 0.05, 0.025, 0.025]
    """
    point = _point("hyperparam_with_func", False, steps_per_epoch)
    values, current = [], np.float32(initial_value)
    for epoch in range(max_epoch + 1):
        current = np.float32(func(epoch, current))
        values.append(float(current))
    return _table(values, point)
