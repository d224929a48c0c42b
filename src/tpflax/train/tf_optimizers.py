"""TensorFlow 1.x's optimizers with TensorFlow's update rules, as optax transformations.

``tf.compat.v1.train.GradientDescentOptimizer``, ``MomentumOptimizer``, ``AdamOptimizer``,
``RMSPropOptimizer`` and ``AdagradOptimizer`` with TF's signatures and defaults, computing what
TF's CPU kernels compute (``ApplyAdam``, ``ApplyRMSProp``, ...) in the same order, in the
variable's dtype. Each returns an ``optax.GradientTransformation`` whose state holds TF's slots
under TF's slot names (``m``, ``v``, ``beta1_power``, ``beta2_power``, ``momentum``, ``rms``,
``mg``, ``accumulator``); :func:`tf_variables` names them as a TF checkpoint does
(``conv0/W/Adam``, ``conv0/W/Adam_1``, ``beta1_power``) and :func:`load_tf_variables` reads
them back, so a tensorpack run's checkpoint resumes here with its slots.

Where they differ from optax's look-alikes (pinned by ``tests/golden/tf_optimizers``, made by
real TensorFlow: ``tools/golden/tf_optimizers.py``):

* Adam: ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`` and
  ``var -= lr_t * m / (sqrt(v) + epsilon)``: epsilon is added to the *uncorrected*
  ``sqrt(v)`` (optax adds it to the bias-corrected one), and ``beta1^t``, ``beta2^t`` are
  float32 variables multiplied by ``beta`` each step, as TF keeps them.
* RMSProp: epsilon inside the square root (``lr * g / sqrt(ms + epsilon)``), the mean square
  ``ms`` starts at ONES (optax: zeros), default ``epsilon=1e-10``; ``centered`` subtracts
  the mean gradient ``mg``; ``momentum`` accumulates the step.
* Momentum: ``accum = momentum * accum + g``, ``var -= lr * accum`` (Nesterov:
  ``var -= lr * g + lr * momentum * accum``).
* Adagrad: the accumulator starts at ``initial_accumulator_value`` (0.1), no epsilon.

``learning_rate`` is a number or a schedule ``step -> lr`` (an optax schedule,
:func:`exponential_decay`, or tensorpack's callbacks as schedules: :func:`scheduled_hyperparam`
for ``ScheduledHyperParamSetter``, :func:`hyperparam_with_func` for
``HyperParamSetterWithFunc``); the step is the number of updates applied so far, as TF's
``global_step`` when ``minimize(global_step=...)`` increments it.

Tensorpack's gradient processors are optax transformations too: :func:`GlobalNormClip`,
:func:`MapGradient`, :func:`ScaleGradient`, :func:`SummaryGradient` (its summaries join
the step's metrics: ``tp.train`` opens :func:`gradient_summaries` around the update), chained
before the optimizer by :func:`apply_grad_processors` (tensorpack's
``optimizer.apply_grad_processors``). :func:`AccumGradOptimizer` is tensorpack's optimizer
of the same name: gradients summed over ``niter`` steps, applied together.

Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import tpflax as tp
    >>> tx = tp.train.tf_optimizers.AdamOptimizer(0.1)
    >>> params = {'fc': {'W': jnp.ones(2)}}
    >>> opt_state = tx.init(params)
    >>> updates, opt_state = tx.update({'fc': {'W': jnp.array([1.0, -2.0])}}, opt_state)
    >>> [round(float(w), 5) for w in optax.apply_updates(params, updates)['fc']['W']]
    [0.9, 1.1]
    >>> sorted(tp.train.tf_optimizers.tf_variables(opt_state))
    ['beta1_power', 'beta2_power', 'fc/W/Adam', 'fc/W/Adam_1']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tpflax.train._accum_grad import AccumGradOptimizer, AccumGradState
from tpflax.train._gradproc import (
    GlobalNormClip,
    MapGradient,
    ScaleGradient,
    SummaryGradient,
    SummaryGradientState,
    apply_grad_processors,
    gradient_summaries,
)
from tpflax.train._tf_schedules import (
    exponential_decay,
    hyperparam_with_func,
    scheduled_hyperparam,
)

Tree = Any
LearningRate = float | Callable[[jax.Array], Any]

__all__ = [
    "AccumGradOptimizer",
    "AccumGradState",
    "AdagradOptimizer",
    "AdagradState",
    "AdamOptimizer",
    "AdamState",
    "GlobalNormClip",
    "GradientDescentOptimizer",
    "GradientDescentState",
    "MapGradient",
    "MomentumOptimizer",
    "MomentumState",
    "RMSPropOptimizer",
    "RMSPropState",
    "ScaleGradient",
    "SummaryGradient",
    "SummaryGradientState",
    "apply_grad_processors",
    "exponential_decay",
    "gradient_summaries",
    "hyperparam_with_func",
    "load_tf_variables",
    "scheduled_hyperparam",
    "tf_variables",
]


# ---------------------------------------------------------------- states
def _name_field(default: str) -> Any:
    """The optimizer's ``name=`` (TF's slot suffix): static, not a leaf."""
    return flax.struct.field(pytree_node=False, default=default)


@flax.struct.dataclass
class GradientDescentState:
    """``step``: the updates applied (the schedule's step; TF's ``global_step``)."""

    step: jax.Array
    name: str = _name_field("GradientDescent")


@flax.struct.dataclass
class MomentumState:
    """``momentum``: the accumulator, TF's slot ``<var>/Momentum``."""

    step: jax.Array
    momentum: Tree
    name: str = _name_field("Momentum")


@flax.struct.dataclass
class AdamState:
    """``m`` (``<var>/Adam``), ``v`` (``<var>/Adam_1``), and the float32 scalars
    ``beta1_power``, ``beta2_power`` (``beta^(t+1)`` before update ``t``, as TF keeps them)."""

    step: jax.Array
    beta1_power: jax.Array
    beta2_power: jax.Array
    m: Tree
    v: Tree
    name: str = _name_field("Adam")


@flax.struct.dataclass
class RMSPropState:
    """``rms`` (the mean square, ``<var>/RMSProp``, starts at ones), ``mg`` (the mean
    gradient when ``centered``, ``<var>/RMSProp_1``; else ``None``), ``momentum``
    (``<var>/RMSProp_1``, or ``_2`` when centered)."""

    step: jax.Array
    rms: Tree
    mg: Tree | None
    momentum: Tree
    name: str = _name_field("RMSProp")


@flax.struct.dataclass
class AdagradState:
    """``accumulator``: the sum of squared gradients, ``<var>/Adagrad``."""

    step: jax.Array
    accumulator: Tree
    name: str = _name_field("Adagrad")


# state -> (TF's default optimizer name, its slots in TF's creation order)
_TF_NAMES: dict[type, tuple[str, tuple[str, ...]]] = {
    GradientDescentState: ("GradientDescent", ()),
    MomentumState: ("Momentum", ("momentum",)),
    AdamState: ("Adam", ("m", "v")),
    RMSPropState: ("RMSProp", ("rms", "mg", "momentum")),
    AdagradState: ("Adagrad", ("accumulator",)),
}
_STATES = tuple(_TF_NAMES)


# ---------------------------------------------------------------- helpers
def _f32(value: float) -> jax.Array:
    """A Python number as TF converts it: a float32 tensor."""
    return jnp.asarray(np.float32(value))


def _learning_rate(learning_rate: LearningRate, count: jax.Array) -> jax.Array:
    value = learning_rate(count) if callable(learning_rate) else learning_rate
    return jnp.asarray(value, jnp.float32)


def _check(who: str, **values: Any) -> None:
    for name, value in values.items():
        if not callable(value) and not float(value) >= 0:
            raise ValueError(f"tp.train.tf_optimizers.{who}: {name} must be >= 0; got {value!r}")


def _map(fn: Callable[..., tuple[Any, ...]], n_out: int, grads: Tree, *trees: Tree) -> tuple:
    """``fn`` on each leaf of ``grads`` and the matching leaves of ``trees``; ``n_out`` trees
    of ``grads``' structure back."""
    g_leaves, treedef = jax.tree_util.tree_flatten(grads)
    leaves = [jax.tree_util.tree_leaves(t) for t in trees]
    out = [fn(g, *rest) for g, *rest in zip(g_leaves, *leaves, strict=True)]
    return tuple(jax.tree_util.tree_unflatten(treedef, [o[i] for o in out]) for i in range(n_out))


def _full(params: Tree, value: float) -> Tree:
    return jax.tree.map(lambda p: jnp.full_like(p, value), params)


def _count() -> jax.Array:
    return jnp.zeros((), jnp.int32)


# ---------------------------------------------------------------- optimizers
def GradientDescentOptimizer(
    learning_rate: LearningRate, use_locking: bool = False, name: str = "GradientDescent"
) -> optax.GradientTransformation:
    """``tf.train.GradientDescentOptimizer``: ``var -= grad * lr``.

    Args:
        learning_rate: a number or a schedule ``step -> lr``.
        use_locking: accepted for TF's signature; no effect (a jitted step has no
            concurrent writers).
        name: TF's ``name=``: the slots' suffix in :func:`tf_variables` (``<var>/<name>``,
            ``<var>/<name>_1``), kept in the state.

    Returns:
        An ``optax.GradientTransformation`` with :class:`GradientDescentState`.
    """
    _check("GradientDescentOptimizer", learning_rate=learning_rate)

    def init(params: Tree) -> GradientDescentState:
        del params
        return GradientDescentState(_count(), name=name)

    def update(grads: Tree, state: GradientDescentState, params: Tree = None) -> tuple:
        del params
        lr = _learning_rate(learning_rate, state.step)
        updates = jax.tree.map(lambda g: -(g * lr.astype(g.dtype)), grads)
        return updates, dataclasses.replace(state, step=state.step + 1)

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


def MomentumOptimizer(
    learning_rate: LearningRate,
    momentum: float,
    use_locking: bool = False,
    name: str = "Momentum",
    use_nesterov: bool = False,
) -> optax.GradientTransformation:
    """``tf.train.MomentumOptimizer`` (TF's ``ApplyMomentum``).

    ``accum = accum * momentum + grad``; ``var -= accum * lr``, or with ``use_nesterov``
    ``var -= grad * lr + accum * momentum * lr``. The accumulator starts at zeros.

    Args:
        learning_rate: a number or a schedule ``step -> lr``.
        momentum: the momentum (no default, as in TF).
        use_nesterov: Nesterov momentum, TF's formulation.
        use_locking: accepted for TF's signature; no effect (a jitted step has no
            concurrent writers).
        name: TF's ``name=``: the slots' suffix in :func:`tf_variables` (``<var>/<name>``,
            ``<var>/<name>_1``), kept in the state.

    Returns:
        An ``optax.GradientTransformation`` with :class:`MomentumState`.
    """
    _check("MomentumOptimizer", learning_rate=learning_rate, momentum=momentum)

    def init(params: Tree) -> MomentumState:
        return MomentumState(_count(), _full(params, 0.0), name=name)

    def update(grads: Tree, state: MomentumState, params: Tree = None) -> tuple:
        del params
        lr32 = _learning_rate(learning_rate, state.step)

        def leaf(g: jax.Array, accum: jax.Array) -> tuple[jax.Array, jax.Array]:
            lr, mu = lr32.astype(g.dtype), _f32(momentum).astype(g.dtype)
            accum = accum * mu + g
            step = g * lr + accum * mu * lr if use_nesterov else accum * lr
            return -step, accum

        updates, accum = _map(leaf, 2, grads, state.momentum)
        return updates, dataclasses.replace(state, step=state.step + 1, momentum=accum)

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


def AdamOptimizer(
    learning_rate: LearningRate = 0.001,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    use_locking: bool = False,
    name: str = "Adam",
    use_own_namescope_for_non_slot_vars: bool = False,
) -> optax.GradientTransformation:
    """``tf.train.AdamOptimizer`` (TF 1.x, ``ApplyAdam``), not optax's Adam.

    ``lr_t = lr * sqrt(1 - beta2_power) / (1 - beta1_power)``;
    ``m += (g - m) * (1 - beta1)``; ``v += (g^2 - v) * (1 - beta2)``;
    ``var -= m * lr_t / (sqrt(v) + epsilon)``; then ``beta1_power *= beta1`` and
    ``beta2_power *= beta2`` (float32 scalars starting at ``beta1``, ``beta2``). Epsilon is
    added to ``sqrt(v)`` before the bias correction: with a large epsilon (DCGAN's 1e-3)
    optax's ``adam`` trains differently.

    Args:
        learning_rate: a number or a schedule ``step -> lr``.
        beta1: decay of the first moment.
        beta2: decay of the second moment.
        epsilon: TF's "epsilon hat".
        use_locking: accepted for TF's signature; no effect (a jitted step has no
            concurrent writers).
        name: TF's ``name=``: the slots' suffix in :func:`tf_variables` (``<var>/<name>``,
            ``<var>/<name>_1``), kept in the state.
        use_own_namescope_for_non_slot_vars: TF 2's flag; only ``False`` (TF 1.x's names).

    Returns:
        An ``optax.GradientTransformation`` with :class:`AdamState`.

    Raises:
        ValueError: ``use_own_namescope_for_non_slot_vars=True``.
    """
    _check("AdamOptimizer", learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon)
    if use_own_namescope_for_non_slot_vars:
        raise ValueError(
            "tp.train.tf_optimizers.AdamOptimizer: use_own_namescope_for_non_slot_vars=True "
            "is not supported (tf_variables names beta1_power/beta2_power at the root, as TF "
            "1.x and tensorpack do); rename those two keys of its dict instead"
        )

    def init(params: Tree) -> AdamState:
        zeros = _full(params, 0.0)
        return AdamState(_count(), _f32(beta1), _f32(beta2), zeros, _full(params, 0.0), name=name)

    def update(grads: Tree, state: AdamState, params: Tree = None) -> tuple:
        del params
        lr32 = _learning_rate(learning_rate, state.step)

        def leaf(g: jax.Array, m: jax.Array, v: jax.Array) -> tuple[jax.Array, ...]:
            dt = g.dtype
            b1, b2, eps = (_f32(x).astype(dt) for x in (beta1, beta2, epsilon))
            b1p, b2p = state.beta1_power.astype(dt), state.beta2_power.astype(dt)
            alpha = lr32.astype(dt) * jnp.sqrt(1 - b2p) / (1 - b1p)
            m = m + (g - m) * (1 - b1)
            v = v + (jnp.square(g) - v) * (1 - b2)
            return -((m * alpha) / (jnp.sqrt(v) + eps)), m, v

        updates, m, v = _map(leaf, 3, grads, state.m, state.v)
        new = dataclasses.replace(
            state,
            step=state.step + 1,
            beta1_power=state.beta1_power * _f32(beta1),
            beta2_power=state.beta2_power * _f32(beta2),
            m=m,
            v=v,
        )
        return updates, new

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


def RMSPropOptimizer(
    learning_rate: LearningRate,
    decay: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-10,
    use_locking: bool = False,
    centered: bool = False,
    name: str = "RMSProp",
) -> optax.GradientTransformation:
    """``tf.train.RMSPropOptimizer`` (``ApplyRMSProp`` / ``ApplyCenteredRMSProp``).

    ``ms += (g^2 - ms) * (1 - decay)``; centered: ``mg += (g - mg) * (1 - decay)`` and
    ``denom = ms - mg^2 + epsilon``, else ``denom = ms + epsilon``;
    ``mom = mom * momentum + g * lr / sqrt(denom)``; ``var -= mom``. ``ms`` starts at ONES,
    ``mg`` and ``mom`` at zeros. Epsilon sits inside the square root.

    Args:
        learning_rate: a number or a schedule ``step -> lr``.
        decay: TF's ``decay`` (Keras/optax ``rho``/``decay``).
        momentum: momentum of the step.
        epsilon: added to the mean square, inside the square root.
        centered: normalize by the estimated variance instead of the second moment.
        use_locking: accepted for TF's signature; no effect (a jitted step has no
            concurrent writers).
        name: TF's ``name=``: the slots' suffix in :func:`tf_variables` (``<var>/<name>``,
            ``<var>/<name>_1``), kept in the state.

    Returns:
        An ``optax.GradientTransformation`` with :class:`RMSPropState`.
    """
    _check(
        "RMSPropOptimizer",
        learning_rate=learning_rate,
        decay=decay,
        momentum=momentum,
        epsilon=epsilon,
    )

    def init(params: Tree) -> RMSPropState:
        mg = _full(params, 0.0) if centered else None
        return RMSPropState(_count(), _full(params, 1.0), mg, _full(params, 0.0), name=name)

    def update(grads: Tree, state: RMSPropState, params: Tree = None) -> tuple:
        del params
        lr32 = _learning_rate(learning_rate, state.step)

        def leaf(g: jax.Array, ms: jax.Array, mom: jax.Array, *mg: jax.Array) -> tuple:
            dt = g.dtype
            lr, rho, mu, eps = (
                x.astype(dt) for x in (lr32, _f32(decay), _f32(momentum), _f32(epsilon))
            )
            ms = ms + (jnp.square(g) - ms) * (1 - rho)
            if centered:
                mean_g = mg[0] + (g - mg[0]) * (1 - rho)
                denom = (ms - jnp.square(mean_g)) + eps
            else:
                mean_g, denom = None, ms + eps
            mom = mom * mu + (g * lr) / jnp.sqrt(denom)
            return -mom, ms, mom, mean_g

        trees = (state.rms, state.momentum) + ((state.mg,) if centered else ())
        updates, ms, mom, mg = _map(leaf, 4, grads, *trees)
        new = dataclasses.replace(
            state, step=state.step + 1, rms=ms, mg=mg if centered else None, momentum=mom
        )
        return updates, new

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


def AdagradOptimizer(
    learning_rate: LearningRate,
    initial_accumulator_value: float = 0.1,
    use_locking: bool = False,
    name: str = "Adagrad",
) -> optax.GradientTransformation:
    """``tf.train.AdagradOptimizer`` (``ApplyAdagrad``): ``accum += g^2``;
    ``var -= g * lr * rsqrt(accum)``; the accumulator starts at
    ``initial_accumulator_value``, and there is no epsilon.

    Args:
        learning_rate: a number or a schedule ``step -> lr``.
        initial_accumulator_value: the accumulator's start, > 0.
        use_locking: accepted for TF's signature; no effect (a jitted step has no
            concurrent writers).
        name: TF's ``name=``: the slots' suffix in :func:`tf_variables` (``<var>/<name>``,
            ``<var>/<name>_1``), kept in the state.

    Returns:
        An ``optax.GradientTransformation`` with :class:`AdagradState`.

    Raises:
        ValueError: ``initial_accumulator_value`` is not positive (TF's message).
    """
    _check("AdagradOptimizer", learning_rate=learning_rate)
    if not initial_accumulator_value > 0.0:
        raise ValueError(
            "tp.train.tf_optimizers.AdagradOptimizer: initial_accumulator_value must be "
            f"positive; got {initial_accumulator_value!r}"
        )

    def init(params: Tree) -> AdagradState:
        return AdagradState(_count(), _full(params, initial_accumulator_value), name=name)

    def update(grads: Tree, state: AdagradState, params: Tree = None) -> tuple:
        del params
        lr32 = _learning_rate(learning_rate, state.step)

        def leaf(g: jax.Array, accum: jax.Array) -> tuple[jax.Array, jax.Array]:
            accum = accum + jnp.square(g)
            return -(g * lr32.astype(g.dtype) * jax.lax.rsqrt(accum)), accum

        updates, accum = _map(leaf, 2, grads, state.accumulator)
        return updates, dataclasses.replace(state, step=state.step + 1, accumulator=accum)

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


# ---------------------------------------------------------------- TF's names
def _path_name(path: Any) -> str:
    """``'conv0/W'`` from a pytree path of dict keys."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _named_leaves(tree: Tree) -> dict[str, jax.Array]:
    return {_path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def tf_variables(
    opt_state: Any,
    name: str | None = None,
    *,
    non_slot_scope: str = "",
    non_slot_index: int = 0,
) -> dict[str, jax.Array]:
    """The optimizer's variables under the names a TF checkpoint gives them.

    Finds the states of this module's optimizers anywhere in ``opt_state`` (a ``TrainState``'s
    ``opt_state``, inside ``optax.chain`` or ``multi_transform``). Slot ``k`` (0-based, in TF's
    creation order, skipping absent ones) of variable ``conv0/W`` is ``conv0/W/<name>`` for
    ``k == 0``, else ``conv0/W/<name>_<k>``; Adam's ``beta1_power`` and ``beta2_power`` keep
    their names. ``step`` is TF's ``global_step``, not the optimizer's: it is not listed.

    TF creates Adam's ``beta1_power``/``beta2_power`` in the name scope ``minimize`` is called
    in (tensorpack's ``SimpleTrainer``: none; its GAN trainers: ``optimize``), and a second
    Adam in the same graph gets TF's uniquified ``beta1_power_1`` (measured with TF 2.21):
    ``non_slot_scope`` and ``non_slot_index`` say which (``'optimize'`` and 1 give
    ``optimize/beta1_power_1``).

    Args:
        opt_state: an optax state holding one of this module's states.
        name: the optimizer's ``name=`` in TF; its default (``'Adam'``, ...) when ``None``.
        non_slot_scope: the name scope of Adam's ``beta1_power``/``beta2_power``.
        non_slot_index: how many Adam optimizers the graph created before this one.

    Returns:
        ``{'conv0/W/Adam': array, 'beta1_power': array, ...}``.

    Raises:
        ValueError: ``opt_state`` holds none of this module's states, or more than one.
    """
    state = _the_state(opt_state, "tf_variables")
    out: dict[str, jax.Array] = {}
    for slot, suffix in _slot_suffixes(state, name):
        for var, value in _named_leaves(getattr(state, slot)).items():
            out[f"{var}/{suffix}"] = value
    if isinstance(state, AdamState):
        for power in ("beta1_power", "beta2_power"):
            out[_non_slot_name(power, non_slot_scope, non_slot_index)] = getattr(state, power)
    accum = _the_accum_state(opt_state)
    if accum is not None:
        for var, value in _named_leaves(accum.accum).items():
            out[f"{var}/AccumGrad"] = value
        out["AccumGrad/counter"] = accum.counter
    return out


def _is_accum(x: Any) -> bool:
    return isinstance(x, AccumGradState)


def _the_accum_state(opt_state: Any) -> AccumGradState | None:
    """The :func:`AccumGradOptimizer` state around the optimizer's, if any."""
    found = [s for s in jax.tree_util.tree_leaves(opt_state, is_leaf=_is_accum) if _is_accum(s)]
    return found[0] if found else None


def _non_slot_name(base: str, scope: str, index: int) -> str:
    """``optimize/beta1_power_1`` from ``('beta1_power', 'optimize', 1)``."""
    if not isinstance(index, int) or index < 0:
        raise ValueError(
            f"tp.train.tf_optimizers: non_slot_index must be an int >= 0; got {index!r}"
        )
    name = base if index == 0 else f"{base}_{index}"
    return f"{scope.rstrip('/')}/{name}" if scope else name


def _the_state(opt_state: Any, who: str) -> Any:
    found = jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, _STATES))
    states = [s for s in found if isinstance(s, _STATES)]
    if len(states) != 1:
        raise ValueError(
            f"tp.train.tf_optimizers.{who}: expected one TF optimizer state in opt_state; "
            f"found {len(states)}"
        )
    return states[0]


def _slot_suffixes(state: Any, name: str | None) -> list[tuple[str, str]]:
    """``[('m', 'Adam'), ('v', 'Adam_1')]``: each present slot and its TF suffix."""
    _, slots = _TF_NAMES[type(state)]
    prefix = name or state.name
    present = [s for s in slots if getattr(state, s) is not None]
    return [(slot, prefix if k == 0 else f"{prefix}_{k}") for k, slot in enumerate(present)]


def load_tf_variables(
    opt_state: Any,
    variables: Mapping[str, Any],
    name: str | None = None,
    step: int | None = None,
    *,
    non_slot_scope: str = "",
    non_slot_index: int = 0,
) -> Any:
    """``opt_state`` with its slots read from TF-named ``variables``: the inverse of
    :func:`tf_variables`, to resume a TF/tensorpack run (its checkpoint's ``conv0/W/Adam``,
    ``beta1_power``, ...) with this module's optimizer.

    Args:
        opt_state: the state to fill (from ``tx.init(params)``, or a ``TrainState``'s), holding
            one of this module's states; its structure, shapes and dtypes are kept.
        variables: ``{TF name: array}``, e.g. a checkpoint's variables; names may end in
            ``:0``, extra names (the model's variables, ``global_step``) are ignored.
        name: the optimizer's ``name=`` in TF; its default (``'Adam'``, ...) when ``None``.
        step: the checkpoint's ``global_step``, the step a learning-rate schedule continues
            from; ``None`` keeps ``opt_state``'s.
        non_slot_scope: the name scope of Adam's ``beta1_power``/``beta2_power`` (see
            :func:`tf_variables`).
        non_slot_index: how many Adam optimizers the graph created before this one.

    Returns:
        The new optax state.

    Raises:
        ValueError: a slot is missing from ``variables`` or has another shape.
    """
    values = {k[:-2] if k.endswith(":0") else k: v for k, v in variables.items()}
    state = _the_state(opt_state, "load_tf_variables")

    def read(tf_name: str, like: jax.Array) -> jax.Array:
        if tf_name not in values:
            raise ValueError(
                f"tp.train.tf_optimizers.load_tf_variables: '{tf_name}' is not in variables"
            )
        value = jnp.asarray(values[tf_name], like.dtype)
        if value.shape != like.shape:
            raise ValueError(
                f"tp.train.tf_optimizers.load_tf_variables: '{tf_name}' has shape "
                f"{value.shape}; the optimizer's slot has {like.shape}"
            )
        return value

    updates: dict[str, Any] = {}
    for slot, suffix in _slot_suffixes(state, name):
        updates[slot] = jax.tree_util.tree_map_with_path(
            lambda path, leaf, suffix=suffix: read(f"{_path_name(path)}/{suffix}", leaf),
            getattr(state, slot),
        )
    if isinstance(state, AdamState):
        for power in ("beta1_power", "beta2_power"):
            tf_name = _non_slot_name(power, non_slot_scope, non_slot_index)
            updates[power] = read(tf_name, getattr(state, power))
    if step is not None:
        updates["step"] = jnp.asarray(step, state.step.dtype)
    new = dataclasses.replace(state, **updates)
    opt_state = jax.tree.map(
        lambda x: new if x is state else x,
        opt_state,
        is_leaf=lambda x: isinstance(x, _STATES),
    )
    accum = _the_accum_state(opt_state)
    if accum is None:
        return opt_state
    loaded = dataclasses.replace(
        accum,
        accum=jax.tree_util.tree_map_with_path(
            lambda path, leaf: read(f"{_path_name(path)}/AccumGrad", leaf), accum.accum
        ),
        counter=read("AccumGrad/counter", accum.counter),
    )
    return jax.tree.map(lambda x: loaded if x is accum else x, opt_state, is_leaf=_is_accum)
