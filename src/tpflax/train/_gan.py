"""``GANTrainer``: tensorpack's ``GANTrainer`` and ``SeparateGANTrainer`` (its
``examples/GAN/GAN.py``) as a jit-compiled step: two costs, two variable lists chosen by
scope, one optimizer (as tensorpack) or two.

What tensorpack does, read from GAN.py and measured with tensorpack 0.11 / TF 2.21
(``tools/golden/tf_training.py``, fixtures ``gan`` and ``gan_separate``):

* ``GANTrainer``: one ``sess.run`` per step. The model runs once; ``g_min =
  opt.minimize(g_loss, var_list=g_vars)``, then, under a control dependency on it, ``d_min =
  opt.minimize(d_loss, var_list=d_vars)``, both from the same forward pass (the
  discriminator's gradients are taken at the step's starting variables). BatchNorm's EMA
  updates (``UPDATE_OPS``) run once, in that same run.
* One optimizer object serves both ``minimize`` calls: each variable gets its own slots
  (``gen/fc0/W/Adam``), but Adam's ``beta1_power``/``beta2_power`` are shared and advance
  twice per ``GANTrainer`` step (after 10 steps of beta1=0.5, ``beta1_power`` is
  ``0.5**21``), the discriminator's update using the powers the generator's left. They are
  created under tensorpack's ``optimize`` name scope: ``optimize/beta1_power``.
* ``SeparateGANTrainer(d_period, g_period)``: ``d_min`` and ``g_min`` in separate
  ``sess.run`` calls, each with its own batch and its own forward pass (the generator's sees
  the updated discriminator), each incrementing ``global_step``; an iteration runs ``d_min``
  when ``global_step % d_period == 0`` and then ``g_min`` when the (possibly incremented)
  ``global_step % g_period == 0``. With ``(1, 2)`` that is ``d, d, g, d, g, ...``.

* BatchNorm in the discriminator, called on real and on generated images, updates its EMA
  twice per forward pass; TensorFlow runs the two updates unordered (``UPDATE_OPS`` in
  ``GANTrainer``, ``ema_update='internal'`` in ``SeparateGANTrainer``), and tensorpack runs
  of the same weights and batches differed there by up to 1.2e-2. tpflax is deterministic:
  each call's delta is computed from the EMA as the step began and the deltas add
  (``tp.BatchNorm``'s rule, TensorFlow's usual result; with one thread per TF pool,
  ``GANTrainer``'s runs gave it 3 of 4 times).

tpflax follows this: ``TrainState.step`` is TensorFlow's ``global_step`` (``sess.run`` calls:
one per ``GANTrainer`` step, one per update with ``separate=True``), and a learning-rate
schedule of ``tp.train.tf_optimizers`` reads it, as tensorpack's hyperparameter callbacks set
the learning rate from it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax
from optax import tree_utils as otu

from tpflax._src.frame import frozen_variables
from tpflax._src.transform import Transformed, transform
from tpflax.train import step_context
from tpflax.train import tf_optimizers as tfo
from tpflax.train._gan_parts import (
    _WHO,
    _at_step,
    _desc_model,
    _flat,
    _merge,
    _named,
    _select,
    _split_costs,
    separate_schedule,
)
from tpflax.train._trainer import TrainState, _init_state, _summary_metrics, training_state

Tree = Any


@dataclasses.dataclass(frozen=True)
class GANTrainer:
    """A compiled GAN train step: tensorpack's ``GANTrainer``, or with ``separate=True`` its
    ``SeparateGANTrainer``.

    The model takes the whole batch and returns ``(g_loss, d_loss)`` or ``(g_loss, d_loss,
    {name: metric})``. The generator's variables are the trainable ones whose names match
    ``g_scope`` at their start (``re.match``, as tensorpack's
    ``tf.get_collection(TRAINABLE_VARIABLES, scope)``), the discriminator's ``d_scope``;
    variables read under ``tp.freeze_variables(stop_gradient=True)`` are left out (no
    gradient, no slots, as in TF). The metrics are ``g_loss``, ``d_loss``, the model's own
    and its summaries (``add_moving_summary``: ``'GAN_loss/gen/loss-summary'``, ...).

    Default (tensorpack's ``GANTrainer``): each :meth:`step` runs the model once, updates
    the generator with ``g_loss``'s gradients, then the discriminator with ``d_loss``'s,
    both taken at the step's starting variables; BatchNorm statistics update once.
    ``separate=True`` (``SeparateGANTrainer``): each step is one update, ``'d'`` or ``'g'``
    as :meth:`schedule` says (``d_period``, ``g_period``), with its own batch and forward
    pass (both costs computed, every BatchNorm updating its statistics, as tensorpack's
    ``add_moving_summary`` of both costs makes TF run the whole model for either update).

    One optimizer ``tx`` (tensorpack's one ``optimizer()``) keeps one state: each variable
    its own slots, the optimizer's scalars (Adam's ``beta1_power``, optax's ``count``)
    shared and advanced by both updates, as TF's one optimizer object. ``d_tx`` gives the
    discriminator its own optimizer and state instead. Either way a ``tf_optimizers``
    schedule reads ``TrainState.step`` (TF's ``global_step``).

    Args:
        model: a ``tp.transform``-ed model returning the two costs.
        tx: the optimizer (both networks', or the generator's with ``d_tx``).
        g_scope: regex matched at the start of the generator's variable names.
        d_scope: the same for the discriminator.
        d_tx: the discriminator's own optimizer, or ``None`` to share ``tx``.
        separate: ``SeparateGANTrainer``: one update per step, by ``d_period``/``g_period``.
        d_period: with ``separate``: a discriminator update when ``global_step % d_period ==
            0`` at the start of an iteration.
        g_period: with ``separate``: a generator update when ``global_step % g_period == 0``
            after it. ``min(d_period, g_period)`` must be 1, as in tensorpack.
        donate: donate the TrainState's buffers to the step.

    Raises:
        TypeError: ``model`` is not a ``tp.transform`` model.
        ValueError: bad periods; (at :meth:`init`) a scope that matches no trainable
            variable.

    Example:
        >>> import jax, jax.numpy as jnp, optax, tpflax as tp
        >>> def gan(x, z):
        ...     with tp.variable_scope('gen'):
        ...         fake = tp.FullyConnected('fc', z, 2)
        ...     with tp.variable_scope('discrim'):
        ...         d = tp.auto_reuse_variable_scope(lambda t: tp.FullyConnected('fc', t, 1))
        ...         real_logit, fake_logit = d(x), d(fake)
        ...     bce = lambda logit, label: optax.sigmoid_binary_cross_entropy(
        ...         logit, jnp.full_like(logit, label)).mean()
        ...     return bce(fake_logit, 1.0), (bce(real_logit, 1.0) + bce(fake_logit, 0.0)) / 2
        >>> model = tp.transform(gan)
        >>> x, z = jnp.ones((4, 2)), jnp.ones((4, 3))
        >>> trainer = tp.train.GANTrainer(model, tp.train.tf_optimizers.AdamOptimizer(1e-3))
        >>> ts = trainer.init(*model.init(jax.random.key(0), x, z), x, z, rng=jax.random.key(1))
        >>> ts, metrics = trainer.step(ts, x, z)
        >>> int(ts.step), sorted(metrics)
        (1, ['d_loss', 'g_loss'])
    """

    model: Any
    tx: optax.GradientTransformation
    g_scope: str = "gen"
    d_scope: str = "discrim"
    d_tx: optax.GradientTransformation | None = None
    separate: bool = False
    d_period: int = 1
    g_period: int = 1
    donate: bool = True
    # the GANModelDesc whose collect_variables() names the scopes (from_model_desc)
    _desc: Any = dataclasses.field(default=None, compare=False, repr=False)
    _compiled: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, Transformed):
            raise TypeError(
                f"{_WHO}: model must be a tp.transform model returning (g_loss, d_loss); got "
                f"{type(self.model).__name__}"
            )
        for name in ("d_period", "g_period"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{_WHO}: {name} must be an int >= 1; got {value!r}")
        if not self.separate and (self.d_period, self.g_period) != (1, 1):
            raise ValueError(
                f"{_WHO}: d_period/g_period need separate=True (tensorpack's "
                "SeparateGANTrainer); GANTrainer updates both networks every step"
            )
        if min(self.d_period, self.g_period) != 1:
            raise ValueError(
                f"{_WHO}: min(d_period, g_period) must be 1, as in tensorpack's "
                f"SeparateGANTrainer; got d_period={self.d_period}, g_period={self.g_period}"
            )

    @classmethod
    def from_model_desc(cls, desc: Any, **kwargs: Any) -> GANTrainer:
        """A trainer for a tensorpack ``GANModelDesc`` as written
        (``tpflax.compat.tensorpack.GANModelDesc``): its ``build_graph(*inputs)`` sets
        ``self.g_loss``/``self.d_loss`` (``build_losses``) and calls
        ``self.collect_variables(g_scope, d_scope)``, which names the scopes; the optimizer
        is ``desc.get_optimizer()`` (or ``optimizer()``).

        Args:
            desc: the model description.
            **kwargs: the other arguments (``separate``, ``d_period``, ``g_period``,
                ``d_tx``, ``donate``).

        Raises:
            TypeError: ``desc`` has no ``build_graph`` or ``optimizer``.
        """
        for method in ("build_graph", "optimizer"):
            if not callable(getattr(desc, method, None)):
                raise TypeError(f"{_WHO}.from_model_desc: {type(desc).__name__} has no {method}()")
        get = getattr(desc, "get_optimizer", None)
        tx = get() if callable(get) else desc.optimizer()
        return cls(transform(_desc_model(desc)), tx, _desc=desc, **kwargs)

    # ---------------------------------------------------------------- variable lists
    def _scopes(self) -> tuple[str, str]:
        if self._desc is None:
            return self.g_scope, self.d_scope
        scopes = getattr(self._desc, "_gan_scopes", None)
        if scopes is None:
            raise TypeError(
                f"{_WHO}.from_model_desc: {type(self._desc).__name__}.build_graph must call "
                "self.collect_variables() (it names the generator's and discriminator's "
                "scopes)"
            )
        return scopes

    def var_lists(self, params: Tree, frozen: frozenset[str] = frozenset()) -> tuple:
        """``(g_vars, d_vars)``: the names each update trains, sorted.

        Raises:
            ValueError: a scope matches no variable, or only frozen ones.
        """
        names = sorted(_flat(params))
        lists = []
        for arg, scope in zip(("g_scope", "d_scope"), self._scopes(), strict=True):
            matched = [n for n in names if re.match(scope, n)]
            if not matched:
                tops = sorted({n.split("/", 1)[0] for n in names})
                raise ValueError(
                    f"{_WHO}: {arg}={scope!r} matches no trainable variable (re.match at the "
                    f"start of the name, as tensorpack's tf.get_collection); the model's "
                    f"top-level scopes are {tops}"
                )
            trained = tuple(n for n in matched if n not in frozen)
            if not trained:
                raise ValueError(
                    f"{_WHO}: every variable {arg}={scope!r} matches is frozen "
                    f"(tp.freeze_variables): nothing to train"
                )
            lists.append(trained)
        return tuple(lists)

    def schedule(self, step: int) -> str:
        """The update the step at TF's ``global_step == step`` makes: ``'g+d'``
        (``GANTrainer``), or ``'d'``/``'g'`` with ``separate=True``."""
        if not self.separate:
            return "g+d"
        prefix, cycle = self._cycle
        if step < len(prefix):
            return prefix[step]
        return cycle[(step - len(prefix)) % len(cycle)]

    @functools.cached_property
    def _cycle(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return separate_schedule(self.d_period, self.g_period)

    # ---------------------------------------------------------------- the costs
    def _outputs(
        self, params: Tree, state: Tree, batch: tuple[Any, ...], rng: Any
    ) -> tuple[jax.Array, jax.Array, dict[str, Any], Tree]:
        out, new_state, summaries = self.model.apply(
            params, state, *batch, is_training=True, rng=rng, capture=["summary:*"]
        )
        g_loss, d_loss, metrics = _split_costs(out)
        metrics = {"g_loss": g_loss, "d_loss": d_loss, **metrics, **_summary_metrics(summaries)}
        return g_loss, d_loss, metrics, new_state

    # ---------------------------------------------------------------- public
    def init(self, params: Tree, state: Tree, *batch: Any, rng: jax.Array) -> TrainState:
        """The TrainState at step 0; ``batch`` is an example batch. Runs the model once on
        abstract values: checks its two costs, finds the frozen variables and (for a
        ``GANModelDesc``) the scopes its ``collect_variables`` names.

        Raises:
            TypeError: the model does not return two floating scalars.
            ValueError: a scope matches no trainable variable.
        """

        if isinstance(self.model, Transformed):  # what only training makes (moving averages)
            init = functools.partial(_init_state, self.model)
            state = training_state(init, state, batch, rng)

        def check(p: Tree, s: Tree, *b: Any) -> None:
            self._outputs(p, s, b, jax.random.key(0))

        frozen = frozenset(frozen_variables(check, params, state, *batch))
        g_vars, d_vars = self.var_lists(params, frozen)
        params, state = jax.tree.map(jnp.array, (params, state))
        if self.d_tx is None:
            opt_state = self.tx.init(_select(params, set(g_vars) | set(d_vars)))
        else:
            opt_state = {
                "g": self.tx.init(_select(params, set(g_vars))),
                "d": self.d_tx.init(_select(params, set(d_vars))),
            }
        self._compiled["initialized"] = True
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            state=state,
            opt_state=opt_state,
            rng=rng,
            frozen=frozen,
        )

    def _update(
        self,
        which: str,
        params: Tree,
        opt_state: Any,
        grads: dict[str, Any],
        step: jax.Array,
        trained_names: set[str],
    ) -> tuple[Tree, Any]:
        """One network's optimizer update; ``grads`` by name, for its variables;
        ``trained_names``: both lists (the shared optimizer state's variables)."""
        names = set(grads)
        if self.d_tx is not None:
            tx = self.tx if which == "g" else self.d_tx
            sub = _select(params, names)
            updates, new = tx.update(
                _named(sub, lambda n, _: grads[n]), _at_step(opt_state[which], step), sub
            )
            return _merge(params, optax.apply_updates(sub, updates)), {**opt_state, which: new}
        # one optimizer for both lists, as tensorpack: zero gradients for the other list's
        # variables, whose slots are then put back; the optimizer's scalars advance
        trained = _select(params, trained_names)
        g_full = _named(trained, lambda n, p: grads[n] if n in names else jnp.zeros_like(p))
        old = _at_step(opt_state, step)
        updates, new = self.tx.update(g_full, old, trained)
        labels = jax.tree.leaves(
            otu.tree_map_params(
                self.tx,
                lambda _, n: n,
                old,
                _named(trained, lambda n, _: n),
                transform_non_params=lambda _: "",
            )
        )
        new_leaves, treedef = jax.tree.flatten(new)
        kept = [
            n if label == "" or label in names else o
            for label, n, o in zip(labels, new_leaves, jax.tree.leaves(old), strict=True)
        ]
        by_name = _flat(updates)
        stepped = _named(
            trained, lambda n, p: optax.apply_updates(p, by_name[n]) if n in names else p
        )
        return _merge(params, stepped), jax.tree.unflatten(treedef, kept)

    def _joint_step(self, ts: TrainState, *batch: Any) -> tuple[TrainState, dict[str, Any]]:
        g_vars, d_vars = self.var_lists(ts.params, ts.frozen)
        rng = jax.random.fold_in(ts.rng, ts.step)
        trained = _select(ts.params, set(g_vars) | set(d_vars))

        def forward(t: Tree) -> tuple[tuple[jax.Array, jax.Array], Any]:
            with step_context.stepping(ts.step):
                g_loss, d_loss, metrics, new_state = self._outputs(
                    _merge(ts.params, t), ts.state, batch, rng
                )
            return (g_loss, d_loss), (metrics, new_state)

        costs, pullback, (metrics, new_state) = jax.vjp(forward, trained, has_aux=True)
        one, zero = jnp.ones_like(costs[0]), jnp.zeros_like(costs[0])
        (g_grads,) = pullback((one, zero))
        (d_grads,) = pullback((zero, one))
        g_flat, d_flat = _flat(g_grads), _flat(d_grads)
        both = set(g_vars) | set(d_vars)
        params, opt_state = self._update(
            "g", ts.params, ts.opt_state, {n: g_flat[n] for n in g_vars}, ts.step, both
        )
        params, opt_state = self._update(
            "d", params, opt_state, {n: d_flat[n] for n in d_vars}, ts.step, both
        )
        opt_state = _at_step(opt_state, ts.step + 1)
        new_ts = dataclasses.replace(
            ts, step=ts.step + 1, params=params, state=new_state, opt_state=opt_state
        )
        return new_ts, metrics

    def _separate_step(self, ts: TrainState, *batch: Any) -> tuple[TrainState, dict[str, Any]]:
        g_vars, d_vars = self.var_lists(ts.params, ts.frozen)
        both = set(g_vars) | set(d_vars)
        rng = jax.random.fold_in(ts.rng, ts.step)

        def branch(which: str) -> Callable[[None], tuple[Any, ...]]:
            var_list = g_vars if which == "g" else d_vars

            def run(_: None) -> tuple[Any, ...]:
                def cost(t: Tree) -> tuple[jax.Array, Any]:
                    with step_context.stepping(ts.step):
                        g_loss, d_loss, metrics, new_state = self._outputs(
                            _merge(ts.params, t), ts.state, batch, rng
                        )
                    return (g_loss if which == "g" else d_loss), (metrics, new_state)

                grads, (metrics, new_state) = jax.grad(cost, has_aux=True)(
                    _select(ts.params, set(var_list))
                )
                params, opt_state = self._update(
                    which, ts.params, ts.opt_state, _flat(grads), ts.step, both
                )
                return params, new_state, _at_step(opt_state, ts.step + 1), metrics

            return run

        prefix, cycle = self._cycle
        table = jnp.array([k == "d" for k in prefix + cycle])
        k = ts.step
        index = jnp.where(k < len(prefix), k, len(prefix) + (k - len(prefix)) % len(cycle))
        params, new_state, opt_state, metrics = lax.cond(
            table[jnp.minimum(index, len(table) - 1)], branch("d"), branch("g"), None
        )
        new_ts = dataclasses.replace(
            ts, step=ts.step + 1, params=params, state=new_state, opt_state=opt_state
        )
        return new_ts, metrics

    def step(self, ts: TrainState, *batch: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One ``sess.run`` of tensorpack's trainer: ``(new TrainState, metrics)``. With
        ``donate=True``, ``ts`` is consumed.

        Raises:
            RuntimeError: this trainer's ``init`` never ran.
        """
        if "initialized" not in self._compiled:
            raise RuntimeError(f"{_WHO}: call trainer.init(...) before step()")
        key = f"step{len(batch)}"
        if key not in self._compiled:
            fn = self._separate_step if self.separate else self._joint_step
            self._compiled[key] = jax.jit(fn, donate_argnums=(0,) if self.donate else ())
        return self._compiled[key](ts, *batch)

    # ---------------------------------------------------------------- TF's names
    def _non_slot(self) -> dict[str, tuple[str, int]]:
        """Each optimizer state's ``(scope, index)`` for its non-slot variables: tensorpack
        builds the trainers' ``minimize`` calls under ``tf.name_scope('optimize')``,
        ``GANTrainer`` the generator's first, ``SeparateGANTrainer`` the discriminator's;
        a second optimizer's ``beta1_power`` is TF's uniquified ``beta1_power_1``."""
        first = "d" if self.separate else "g"
        return {which: ("optimize", 0 if which == first else 1) for which in ("g", "d")}

    def tf_variables(self, ts: TrainState) -> dict[str, jax.Array]:
        """The optimizer variables under the names tensorpack's checkpoint gives them
        (``gen/fc0/W/Adam``, ``optimize/beta1_power``; with ``d_tx``, the second optimizer's
        ``optimize/beta1_power_1``). The model's variables are
        ``tp.checkpoint.flatten(ts.params, ts.state)``."""
        if self.d_tx is None:
            return tfo.tf_variables(ts.opt_state, non_slot_scope="optimize")
        out: dict[str, jax.Array] = {}
        for which, (scope, index) in self._non_slot().items():
            out.update(
                tfo.tf_variables(ts.opt_state[which], non_slot_scope=scope, non_slot_index=index)
            )
        return out

    def load_tf_variables(
        self, ts: TrainState, variables: Mapping[str, Any], step: int | None = None
    ) -> TrainState:
        """``ts`` with its optimizer state read from TF-named ``variables`` (a tensorpack GAN
        checkpoint's), the inverse of :meth:`tf_variables`; ``step`` (the checkpoint's
        ``global_step``) becomes ``ts.step``. Load the model's variables with
        ``tp.checkpoint.unflatten`` first."""
        kwargs: dict[str, Any] = {} if step is None else {"step": step}
        if self.d_tx is None:
            opt_state = tfo.load_tf_variables(
                ts.opt_state, variables, non_slot_scope="optimize", **kwargs
            )
        else:
            opt_state = {
                which: tfo.load_tf_variables(
                    ts.opt_state[which],
                    variables,
                    non_slot_scope=scope,
                    non_slot_index=index,
                    **kwargs,
                )
                for which, (scope, index) in self._non_slot().items()
            }
        new_step = ts.step if step is None else jnp.asarray(step, jnp.int32)
        return dataclasses.replace(ts, step=new_step, opt_state=opt_state)
