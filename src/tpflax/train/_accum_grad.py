"""Tensorpack's ``AccumGradOptimizer``: gradients summed over ``niter`` steps, then applied
together by the wrapped optimizer."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

Tree = Any


@flax.struct.dataclass
class AccumGradState:
    """``counter``: the steps taken (TF's ``AccumGrad/counter``, int32); ``accum``: the
    gradients summed since the last update (TF's slot ``<var>/AccumGrad``); ``inner``: the
    wrapped optimizer's state."""

    counter: jax.Array
    accum: Tree
    inner: Any


def _has_step(x: Any) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type) and hasattr(x, "step")


def _set_steps(tree: Any, step: jax.Array) -> Any:
    """``tree`` with every TF optimizer state's ``step`` (its schedule's step) set to ``step``."""
    return jax.tree.map(
        lambda x: dataclasses.replace(x, step=step.astype(x.step.dtype)) if _has_step(x) else x,
        tree,
        is_leaf=_has_step,
    )


def AccumGradOptimizer(
    opt: optax.GradientTransformation, niter: int
) -> optax.GradientTransformation:
    """Tensorpack's ``tfutils.optimizer.AccumGradOptimizer(opt, niter)``.

    Each step adds the gradients to ``accum`` and counts; on every ``niter``-th step (the
    counter after this step's increment divides by ``niter``: steps ``niter``, ``2 niter``, ...,
    as TF 2.21 ran tensorpack's graph in every measured run) ``opt`` updates the variables
    with the *sum* (not the mean) of the accumulated gradients and ``accum`` is zeroed; the
    other steps leave the variables and ``opt``'s slots unchanged. A learning-rate schedule
    of ``opt`` sees the steps taken before this one, as TF's ``global_step``, which
    ``apply_gradients(global_step=...)`` increments every step (pinned by
    ``tests/golden/tf_optimizers``: ``adam_accum_grad``, ``momentum_accum_grad_decay``).

    Tensorpack's graph reads the counter for the decision without ordering the read after
    its increment; TF ran the increment first in every run measured (8 of 8), the rule
    followed here.

    Args:
        opt: the wrapped optimizer (one of ``tf_optimizers``', or any optax transformation).
        niter: the number of steps whose gradients are summed (``>= 1``).

    Returns:
        An optax transformation whose state is :class:`AccumGradState`; ``tf_variables``
        names its variables ``<var>/AccumGrad`` and ``AccumGrad/counter``.

    Raises:
        ValueError: ``niter`` is not a positive integer.
    """
    if isinstance(niter, bool) or not isinstance(niter, int) or niter < 1:
        raise ValueError(
            f"tp.train.tf_optimizers.AccumGradOptimizer: niter must be an int >= 1; got {niter!r}"
        )

    def init(params: Tree) -> AccumGradState:
        return AccumGradState(
            counter=jnp.zeros((), jnp.int32),
            accum=jax.tree.map(jnp.zeros_like, params),
            inner=opt.init(params),
        )

    def update(grads: Tree, state: AccumGradState, params: Tree | None = None) -> tuple:
        accum = jax.tree.map(jnp.add, state.accum, grads)
        counter = state.counter + 1
        apply = counter % niter == 0
        inner = _set_steps(state.inner, state.counter)
        updates, new_inner = opt.update(accum, inner, params)
        updates = jax.tree.map(lambda u: jnp.where(apply, u, jnp.zeros_like(u)), updates)
        new_inner = jax.tree.map(lambda n, o: jnp.where(apply, n, o), new_inner, inner)
        accum = jax.tree.map(lambda a: jnp.where(apply, jnp.zeros_like(a), a), accum)
        new_state = AccumGradState(
            counter=counter, accum=accum, inner=_set_steps(new_inner, counter)
        )
        return updates, new_state

    return optax.GradientTransformation(init, update)


__all__ = ["AccumGradOptimizer", "AccumGradState"]
