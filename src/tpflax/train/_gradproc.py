"""Tensorpack's gradient processors (``tensorpack.tfutils.gradproc``) as optax
transformations, and ``optimizer.apply_grad_processors`` as ``optax.chain``. Re-exported by
``tpflax.train.tf_optimizers``; pinned by ``tests/golden/tf_optimizers/*gradproc*`` (made by
tensorpack on TF 2.21).

Gradients are named by their pytree path (``'conv0/W'``), as tensorpack names them by
``var.op.name``; a regex matches the whole name (``'$'`` appended as tensorpack does).

``SummaryGradient`` records summaries while the optimizer's update is traced; the trainer
collects them with :func:`gradient_summaries` around ``tx.update`` and adds them to the step's
metrics, which ``tp.train.fit`` writes to TensorBoard and ``stats.json``.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Tree = Any


def _path_name(path: Any) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _whole(regex: str) -> str:
    return regex if regex.endswith("$") else regex + "$"


def _stateless(update: Callable[[Tree, Tree], Tree]) -> optax.GradientTransformation:
    def init(params: Tree) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def apply(grads: Tree, state: Any, params: Tree = None) -> tuple[Tree, Any]:
        return update(grads, params), state

    return optax.GradientTransformation(init, apply)  # type: ignore[arg-type]


def GlobalNormClip(global_norm: float) -> optax.GradientTransformation:
    """Tensorpack's ``GlobalNormClip``: ``tf.clip_by_global_norm`` of all the gradients.

    ``norm = sqrt(2 * sum(l2_loss(g)))``; every gradient times
    ``global_norm * min(1 / norm, 1 / global_norm)`` (NaN when ``norm`` is not finite, as TF).

    Args:
        global_norm: the threshold, > 0.

    Returns:
        A stateless ``optax.GradientTransformation``.

    Raises:
        ValueError: ``global_norm`` is not positive.
    """
    if not global_norm > 0:
        raise ValueError(
            f"tp.train.tf_optimizers.GlobalNormClip: global_norm must be > 0; got {global_norm!r}"
        )

    def update(grads: Tree, params: Tree) -> Tree:
        del params
        leaves = jax.tree.leaves(grads)
        if not leaves:
            return grads
        clip = jnp.asarray(np.float32(global_norm), leaves[0].dtype)
        half = jnp.sum(jnp.stack([jnp.sum(jnp.square(g) * 0.5) for g in leaves]))
        norm = jnp.sqrt(half * 2.0)
        scale = clip * jnp.minimum(1.0 / norm, 1.0 / clip)
        scale = scale + (norm - norm)
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)

    return _stateless(update)


def MapGradient(func: Callable[..., Any], regex: str = ".*") -> optax.GradientTransformation:
    """Tensorpack's ``MapGradient``: ``func(grad)`` or ``func(grad, var)`` for the gradients
    whose variable name matches ``regex`` (whole name); the others unchanged.

    Tensorpack discards a gradient when ``func`` returns ``None`` (no update, no slots); an
    optax step cannot, so that raises here: freeze the variable instead
    (``tp.freeze_variables``, or ``optax.multi_transform`` with ``optax.set_to_zero()``).

    Args:
        func: of the gradient, or of the gradient and the variable's current value.
        regex: matched against the variable's name, ``'$'`` appended.

    Returns:
        A stateless ``optax.GradientTransformation``; ``func(grad, var)`` needs ``params``
        passed to ``update`` (``tp.train.Trainer`` does).

    Raises:
        TypeError: ``func`` takes neither 1 nor 2 arguments; at the step, ``func`` returned
            ``None``, or needs ``var`` and no ``params`` were given.
    """
    n_args = len(inspect.signature(func).parameters)
    if n_args not in (1, 2):
        raise TypeError(
            "tp.train.tf_optimizers.MapGradient: func must take 1 argument (grad) or 2 "
            f"(grad, var); it takes {n_args}"
        )
    pattern = re.compile(_whole(regex))

    def update(grads: Tree, params: Tree) -> Tree:
        if n_args == 2 and params is None:
            raise TypeError(
                "tp.train.tf_optimizers.MapGradient: func(grad, var) needs params passed to "
                "update(grads, state, params)"
            )
        values = (
            {_path_name(p): v for p, v in jax.tree_util.tree_leaves_with_path(params)}
            if n_args == 2
            else {}
        )

        def one(path: Any, grad: jax.Array) -> jax.Array:
            name = _path_name(path)
            if not pattern.match(name):
                return grad
            new = func(grad, values[name]) if n_args == 2 else func(grad)
            if new is None:
                raise TypeError(
                    f"tp.train.tf_optimizers.MapGradient: func returned None for '{name}' "
                    "(tensorpack then skips the variable); freeze it instead "
                    "(tp.freeze_variables, or optax.multi_transform with optax.set_to_zero())"
                )
            return new

        return jax.tree_util.tree_map_with_path(one, grads)

    return _stateless(update)


def ScaleGradient(
    multipliers: tuple[str, float] | Sequence[tuple[str, float]], verbose: bool = True
) -> optax.GradientTransformation:
    """Tensorpack's ``ScaleGradient``: the gradient of each variable times the multiplier of
    the first ``(regex, multiplier)`` whose regex matches its whole name.

    Args:
        multipliers: ``(regex, multiplier)`` or a list of them.
        verbose: accepted for tensorpack's signature (tensorpack logs each match).

    Returns:
        A stateless ``optax.GradientTransformation``.

    Raises:
        ValueError: a multiplier is 0 (tensorpack then discards the gradient: no update, no
            slots, which an optax step cannot do; freeze the variables instead).
    """
    del verbose
    pairs = [multipliers] if isinstance(multipliers, tuple) else list(multipliers)
    for regex, value in pairs:
        if value == 0:
            raise ValueError(
                f"tp.train.tf_optimizers.ScaleGradient: multiplier 0 for '{regex}' makes "
                "tensorpack skip those variables (no update, no slots); freeze them instead "
                "(tp.freeze_variables, or optax.multi_transform with optax.set_to_zero())"
            )
    compiled = [(re.compile(_whole(regex)), float(value)) for regex, value in pairs]

    def update(grads: Tree, params: Tree) -> Tree:
        del params

        def one(path: Any, grad: jax.Array) -> jax.Array:
            name = _path_name(path)
            for pattern, value in compiled:
                if pattern.match(name):
                    return grad * jnp.asarray(np.float32(value), grad.dtype)
            return grad

        return jax.tree_util.tree_map_with_path(one, grads)

    return _stateless(update)


_RECORDED: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tpflax_gradient_summaries", default=None
)


@contextlib.contextmanager
def gradient_summaries() -> Iterator[dict[str, Any]]:
    """Collects the summaries the gradient processors record inside the block.

    The trainer opens it around ``tx.update(...)`` (in the traced step) and merges the dict
    into the step's metrics: scalars by their tag (``'SummaryGradient/fc0/W/rms'``),
    histograms as ``'summary:histogram/<tag>'`` with the gradient as value, as
    ``tp.train.fit`` logs the model's own summaries. Outside such a block nothing is
    recorded (the processors' state still updates).

    Yields:
        The dict the summaries are written to.
    """
    recorded: dict[str, Any] = {}
    token = _RECORDED.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDED.reset(token)


def _record(key: str, value: Any) -> None:
    recorded = _RECORDED.get()
    if recorded is not None:
        recorded[key] = value


class SummaryGradientState(NamedTuple):
    """``SummaryGradient``'s moving averages of the gradients' RMS, by variable name: TF's
    zero-debiased ``assign_moving_average`` (tensorpack's ``EMA/<scope>/<var>/rms/biased``
    and ``.../local_step``, local variables it does not checkpoint)."""

    biased: dict[str, jax.Array]
    local_step: dict[str, jax.Array]


def SummaryGradient(regex: str = ".*", collections: Any = None) -> optax.GradientTransformation:
    """Tensorpack's ``SummaryGradient``: for each gradient whose variable name matches
    ``regex`` (whole name), a histogram summary of the gradient and a moving summary of its
    RMS; the gradients pass unchanged.

    Tensorpack creates them in the processor's name scope, and its monitors drop
    ``add_moving_summary``'s ``-summary`` suffix, so TensorBoard and ``stats.json`` show
    (measured with tensorpack 0.11, ``tests/golden/gradproc``):

    * ``SummaryGradient/<var>-grad``: the histogram of the gradient;
    * ``SummaryGradient/<var>/rms``: ``sqrt(mean(grad ** 2))`` averaged as
      ``add_moving_summary`` does (decay 0.95, zero-debiased: the first step's value is the
      RMS itself).

    They reach ``tp.train``'s metrics through :func:`gradient_summaries`. Tensorpack skips
    the ``towerN/`` copies of replicated training; here every gradient is one variable's.

    Args:
        regex: matched against the variable's name, ``'$'`` appended.
        collections: accepted for tensorpack's signature (its summary collections).

    Returns:
        An ``optax.GradientTransformation`` whose state is a :class:`SummaryGradientState`.
    """
    del collections
    pattern = re.compile(_whole(regex))
    one_minus_decay = np.float32(1.0 - 0.95)  # add_moving_summary's decay, as TF takes it

    def names(tree: Tree) -> list[str]:
        paths = jax.tree_util.tree_leaves_with_path(tree)
        return [_path_name(p) for p, _ in paths if pattern.match(_path_name(p))]

    def init(params: Tree) -> SummaryGradientState:
        # one buffer each: the trainer donates the optimizer state
        matched = names(params)
        return SummaryGradientState(
            {n: jnp.zeros((), jnp.float32) for n in matched},
            {n: jnp.zeros((), jnp.float32) for n in matched},
        )

    def update(
        grads: Tree, state: SummaryGradientState, params: Tree = None
    ) -> tuple[Tree, SummaryGradientState]:
        del params
        biased, local_step = dict(state.biased), dict(state.local_step)
        for path, grad in jax.tree_util.tree_leaves_with_path(grads):
            name = _path_name(path)
            if name not in biased:
                continue
            value = jnp.sqrt(jnp.mean(jnp.square(grad))).astype(jnp.float32)
            biased[name] = biased[name] - (biased[name] - value) * one_minus_decay
            local_step[name] = local_step[name] + 1.0
            average = biased[name] / (1.0 - (1.0 - one_minus_decay) ** local_step[name])
            _record(f"summary:histogram/SummaryGradient/{name}-grad", grad)
            _record(f"SummaryGradient/{name}/rms", average)
        return grads, SummaryGradientState(biased, local_step)

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


def apply_grad_processors(
    opt: optax.GradientTransformation, gradprocs: Sequence[optax.GradientTransformation]
) -> optax.GradientTransformation:
    """Tensorpack's ``optimizer.apply_grad_processors(opt, gradprocs)``: the processors in
    order, then ``opt`` (``optax.chain``). The optimizer's state stays findable by
    ``tf_variables``.

    Args:
        opt: the optimizer.
        gradprocs: :func:`GlobalNormClip`, :func:`MapGradient`, :func:`ScaleGradient`,
            :func:`SummaryGradient` or any optax transformation.

    Returns:
        The chained transformation.
    """
    return optax.chain(*gradprocs, opt)
