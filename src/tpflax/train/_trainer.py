"""``Trainer``: a jit-compiled train step and eval step for a tpflax model and an optax
optimizer. The pieces a tensorpack ``ModelDesc`` + ``SimpleTrainer`` gave, as pure functions."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tpflax._src.frame import frozen_variables
from tpflax._src.regularize import regularize_cost, regularize_cost_from_collection
from tpflax._src.transform import Transformed, transform
from tpflax._src.tree import flatten, nest
from tpflax.train import step_context
from tpflax.train._gradproc import gradient_summaries

log = logging.getLogger("tpflax")

Tree = Any
Batch = tuple[Any, ...]
LossFn = Callable[..., Any]


def _init_state(model: Transformed, key: jax.Array, *inputs: Any) -> Tree:
    with step_context.stepping(jnp.zeros((), jnp.int32)):
        return model.init(key, *inputs, is_training=True)[1]


def training_state(
    init: Callable[..., Tree], state: Tree, inputs: Sequence[Any], rng: jax.Array
) -> Tree:
    """``state`` with the entries ``init(key, *inputs)`` (the model's state, built in
    training mode) makes and it lacks, at their initial values: what only training makes
    (tensorpack's ``add_moving_summary`` averages) when ``state`` came from an ``init`` in
    inference mode. ``init`` runs only when something is missing."""
    key = jax.random.fold_in(rng, 0x7F4A)
    have = flatten(state)
    missing = [n for n in flatten(jax.eval_shape(init, key, *inputs)) if n not in have]
    if not missing:
        return state
    made = flatten(init(key, *inputs))
    log.info("tp.train: state made in training only, initialized: %s", ", ".join(missing))
    return nest({**have, **{n: made[n] for n in missing}})


@flax.struct.dataclass
class TrainState:
    """Everything a training run needs to continue exactly: a pytree, so it can be jitted,
    donated, sharded and checkpointed.

    Attributes:
        step: the number of steps taken (an int32 scalar array).
        params: the trainable variables, by tensorpack names.
        state: the non-trainable ones (BatchNorm's ``mean/EMA``, ``variance/EMA``).
        opt_state: the optax state.
        rng: the base random key; step ``i`` uses ``fold_in(rng, i)`` (Dropout), so a
            resumed run draws the same numbers as an uninterrupted one.
        frozen: the names of the params the optimizer leaves untouched (read under
            ``tp.freeze_variables``), fixed by ``Trainer.init``: static, not a leaf, so each
            run keeps the optimizer it started with.
    """

    step: jax.Array
    params: Tree
    state: Tree
    opt_state: Any
    rng: jax.Array
    frozen: frozenset[str] = flax.struct.field(pytree_node=False, default=frozenset())


class _Linen:
    """A flax.linen module seen as ``apply(params, state, *inputs, is_training, rng)``; its
    ``'params'`` / ``'batch_stats'`` collections are the trainer's params / state."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def apply(
        self, params: Tree, state: Tree, *inputs: Any, is_training: bool, rng: Any
    ) -> tuple[Any, Tree]:
        variables = {"params": params, "batch_stats": state}
        rngs = {"dropout": rng} if rng is not None else {}
        if is_training:
            out, updates = self.module.apply(
                variables, *inputs, train=True, mutable=["batch_stats"], rngs=rngs
            )
            return out, updates.get("batch_stats", state)
        return self.module.apply(variables, *inputs, train=False, rngs=rngs), state


def _summary_metrics(summaries: Mapping[str, Any]) -> dict[str, Any]:
    """The model's summaries as metrics: a scalar by its tag (``'cost-summary'``), an image
    or histogram by its full key (``'summary:image/viz'``), which ``fit`` logs."""
    return {
        key.split("/", 1)[1] if key.startswith("summary:scalar/") else key: value
        for key, value in summaries.items()
    }


def _name(path: Any) -> str:
    """``'conv0/W'`` from a pytree path of dict keys."""
    return "/".join(str(k.key) for k in path)


def _split_loss(value: Any, who: str) -> tuple[jax.Array, dict[str, Any]]:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping):
        loss, metrics = value
    else:
        loss, metrics = value, {}
    if not (
        hasattr(loss, "shape") and loss.shape == () and jnp.issubdtype(loss.dtype, jnp.floating)
    ):
        raise TypeError(
            f"{who}: the cost must be a floating scalar, or (cost, {{name: metric}}); got "
            f"{type(loss).__name__} {getattr(loss, 'shape', '')}"
        )
    return loss, dict(metrics)


@dataclasses.dataclass(frozen=True)
class Trainer:
    """A compiled train step and eval step for ``model`` and the optax optimizer ``tx``.

    The cost comes the tensorpack way: the model function takes the whole batch (images and
    labels, like ``ModelDesc.build_graph``) and returns the cost, or ``(cost, {name:
    metric})``. Or pass ``loss_fn(outputs, *batch)``: the model then gets ``batch[0]`` only.
    The model's summaries (``tpflax.compat``'s ``tf.summary.*``, ``add_moving_summary``) join
    the metrics: a scalar by its tag (``'cost-summary'``), an image or histogram by its key
    (``'summary:image/viz'``).

    Args:
        model: a ``tp.transform``-ed model, or a flax.linen module taking ``train=`` (such as
            ``tp.linen.Model``); its params and ``'batch_stats'`` are the trainer's.
        tx: an optax optimizer.
        loss_fn: optional ``loss_fn(outputs, *batch) -> cost | (cost, metrics)``.
        regularize: ``(regex, func)`` pairs added to the cost, as tensorpack's
            ``regularize_cost(regex, func)``: e.g. ``[('.*/W', tp.l2_regularizer(1e-4))]``.
        regularize_collection: add the layers' ``kernel_regularizer``/``bias_regularizer``/
            ``activity_regularizer`` losses (``tp.regularize_cost_from_collection()``).
            ``tp.transform`` models only.
        donate: donate the TrainState's buffers to the step (in-place update).
        mesh: data parallel: a ``jax.sharding.Mesh``; the batch is split along
            ``data_axis``, params and optimizer state are replicated, gradients averaged. A
            BatchNorm with ``sync_statistics=data_axis`` sees the whole batch's statistics.
        data_axis: the mesh axis the batch is split over.

    Example:
        >>> import jax, jax.numpy as jnp, optax, tpflax as tp
        >>> def net(x, y):
        ...     logits = tp.FullyConnected('fc', x, 3)
        ...     return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        >>> model = tp.transform(net)
        >>> x, y = jnp.ones((4, 5)), jnp.array([0, 1, 2, 0])
        >>> params, state = model.init(jax.random.key(0), x, y)
        >>> trainer = tp.train.Trainer(model, optax.sgd(0.1))
        >>> ts = trainer.init(params, state, x, y, rng=jax.random.key(1))
        >>> ts, metrics = trainer.step(ts, x, y)
        >>> int(ts.step), sorted(metrics)
        (1, ['cost'])
    """

    model: Any
    tx: optax.GradientTransformation
    loss_fn: LossFn | None = None
    regularize: Sequence[tuple[str, Callable[[jax.Array], jax.Array]]] = ()
    regularize_collection: bool = False
    donate: bool = True
    mesh: Mesh | None = None
    data_axis: str = "batch"
    # Hyperparameters to log at each step by name: a schedule (step -> value) or a value
    # (a ModelDesc.optimizer()'s tf.summary.scalar('lr', lr)).
    log_hyperparameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Bookkeeping, not configuration: the jit-compiled steps by kind and batch arity, and
    # whether init ran. The optimizer a step uses comes from its TrainState.
    _compiled: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_model_desc(
        cls,
        desc: Any,
        *,
        callbacks: Sequence[Any] = (),
        steps_per_epoch: int | None = None,
        max_epoch: int | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """A trainer for a tensorpack ``ModelDesc`` as written
        (``tpflax.compat.tensorpack.ModelDesc``): the model is ``desc.build_graph(*batch)``
        (the batch in ``desc.inputs()``'s order), its cost what that returns, the optimizer
        ``desc.optimizer()`` (e.g. ``tf.train.AdamOptimizer``, TF's update rule).

        A ``tf.get_variable('learning_rate', initializer=..., trainable=False)`` in
        ``optimizer()`` is a hyperparameter that tensorpack's ``ScheduledHyperParamSetter`` /
        ``HyperParamSetterWithFunc`` in ``callbacks`` schedule, as in a tensorpack
        ``TrainConfig``; what ``optimizer()`` summarizes (``tf.summary.scalar('lr', lr)``) is
        logged with each step's metrics.

        Args:
            desc: an object with ``build_graph(*inputs)`` and ``optimizer()``.
            callbacks: tensorpack's hyperparameter setters (from
                ``tpflax.compat.tensorpack``).
            steps_per_epoch: what epoch-based schedules count in.
            max_epoch: the last epoch ``HyperParamSetterWithFunc`` covers.
            **kwargs: the other ``Trainer`` arguments (``regularize``, ``mesh``, ...).
        """
        for method in ("build_graph", "optimizer"):
            if not callable(getattr(desc, method, None)):
                raise TypeError(
                    f"tp.train.Trainer.from_model_desc: {type(desc).__name__} has no {method}()"
                )
        model = transform(desc.build_graph)
        if callable(getattr(desc, "build_optimizer", None)):
            tx, summaries = desc.build_optimizer(callbacks, steps_per_epoch, max_epoch)
        elif callbacks:
            raise TypeError(
                "tp.train.Trainer.from_model_desc: callbacks= needs a "
                "tpflax.compat.tensorpack.ModelDesc (its build_optimizer)"
            )
        else:
            tx, summaries = desc.optimizer(), {}
        others = sorted(k for k in summaries if not k.startswith("summary:scalar/"))
        if others:
            raise ValueError(
                f"tp.train.Trainer.from_model_desc: optimizer() may summarize scalars only; got "
                f"{others}"
            )
        logged = {key.removeprefix("summary:scalar/"): v for key, v in summaries.items()}
        return cls(model, tx, log_hyperparameters=logged, **kwargs)

    def __post_init__(self) -> None:
        if isinstance(self.model, nn.Module):
            if self.regularize_collection:
                raise ValueError(
                    "tp.train.Trainer: regularize_collection needs a tp.transform model; for a "
                    "linen module add tp.regularize_cost_from_collection() to its cost"
                )
        elif not isinstance(self.model, Transformed):
            raise TypeError(
                "tp.train.Trainer: model must be a tp.transform model or a flax.linen module; "
                f"got {type(self.model).__name__}"
            )

    @functools.cached_property
    def _net(self) -> Any:
        """The model as ``apply(params, state, *inputs, is_training, rng)``."""
        if isinstance(self.model, nn.Module):
            return _Linen(self.model)
        if self.regularize_collection:
            fn = self.model.fn
            return transform(lambda *a, **k: (fn(*a, **k), regularize_cost_from_collection()))
        return self.model

    # ---------------------------------------------------------------- the cost
    def _outputs(self, params: Tree, state: Tree, batch: Batch, training: bool, rng: Any) -> Any:
        inputs = batch if self.loss_fn is None else batch[:1]
        summaries: dict[str, Any] = {}
        if isinstance(self._net, Transformed):
            out, new_state, summaries = self._net.apply(
                params, state, *inputs, is_training=training, rng=rng, capture=["summary:*"]
            )
        else:
            out, new_state = self._net.apply(params, state, *inputs, is_training=training, rng=rng)
        if self.regularize_collection:
            out, collected = out
        else:
            collected = None
        loss, metrics = _split_loss(
            out if self.loss_fn is None else self.loss_fn(out, *batch), "tp.train"
        )
        metrics = {"cost": loss, **metrics, **_summary_metrics(summaries)}
        if collected is not None:
            metrics["regularize_cost_from_collection"] = collected
            loss = loss + collected
        for regex, func in self.regularize:
            reg = regularize_cost(regex, func, params=params)
            metrics[f"regularize_cost({regex})"] = reg
            loss = loss + reg
        return loss, (metrics, new_state)

    # ---------------------------------------------------------------- public
    def frozen_mask(self, params: Tree, state: Tree, *batch: Any) -> Tree:
        """``params``-shaped booleans: ``True`` for the variables the model reads under
        ``tp.freeze_variables(stop_gradient=True)`` (the optimizer leaves them untouched)."""
        frozen = self._frozen_names(params, state, *batch)
        return jax.tree_util.tree_map_with_path(lambda path, _: _name(path) in frozen, params)

    def _training_state(self, state: Tree, batch: tuple[Any, ...], rng: jax.Array) -> Tree:
        """``state`` with the entries an ``init`` in training mode makes and it lacks."""
        if not isinstance(self.model, Transformed):
            return state
        inputs = batch if self.loss_fn is None else batch[:1]
        # synced BatchNorm needs the mesh
        init = self._parallel(functools.partial(_init_state, self.model), len(inputs))
        return training_state(init, state, self.shard(*inputs), rng)

    def _frozen_names(self, params: Tree, state: Tree, *batch: Any) -> frozenset[str]:
        if not isinstance(self.model, Transformed):
            return frozenset()
        inputs = batch if self.loss_fn is None else batch[:1]
        with step_context.stepping(jnp.zeros((), jnp.int32)):
            return frozenset(frozen_variables(self.model.apply, params, state, *inputs))

    def _optimizer(self, ts: TrainState) -> optax.GradientTransformation:
        """``tx`` for the params ``ts`` trains, ``set_to_zero`` for those it keeps frozen."""
        if not ts.frozen:
            return self.tx
        labels = jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if _name(path) in ts.frozen else "train", ts.params
        )
        return optax.multi_transform({"train": self.tx, "frozen": optax.set_to_zero()}, labels)

    def init(self, params: Tree, state: Tree, *batch: Any, rng: jax.Array) -> TrainState:
        """The TrainState at step 0. ``batch`` is an example batch (shapes matter), used to
        find the variables under ``tp.freeze_variables``; the TrainState keeps their names,
        so its optimizer is fixed here, whatever a later ``init`` finds.

        State that only training makes (tensorpack's ``add_moving_summary`` averages, made
        in its training tower alone) is added with its initial values when ``state`` came
        from an ``init`` in inference mode."""
        state = self._training_state(state, batch, rng)
        frozen = self._frozen_names(params, state, *batch)
        # own copies: the step donates the TrainState's buffers, not the caller's arrays
        params, state = jax.tree.map(jnp.array, (params, state))
        ts = TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            state=state,
            opt_state=None,
            rng=rng,
            frozen=frozen,
        )
        self._compiled["initialized"] = True
        return dataclasses.replace(ts, opt_state=self._optimizer(ts).init(params))

    def _local_step(self, ts: TrainState, *batch: Any) -> tuple[TrainState, dict[str, Any]]:
        tx = self._optimizer(ts)
        rng = jax.random.fold_in(ts.rng, ts.step)
        if self.mesh is not None:  # each device's shard draws its own Dropout masks
            rng = jax.random.fold_in(rng, lax.axis_index(self.data_axis))

        def cost(params: Tree) -> tuple[jax.Array, Any]:
            with step_context.stepping(ts.step):
                loss, aux = self._outputs(params, ts.state, batch, True, rng)
            if self.mesh is not None:  # the whole batch's mean cost, differentiated
                loss, aux = lax.pmean((loss, aux), self.data_axis)
            return loss, aux

        grads, (metrics, new_state) = jax.grad(cost, has_aux=True)(ts.params)
        with gradient_summaries() as recorded:  # SummaryGradient's, by its tags
            updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        metrics = {**metrics, **recorded, **self._hyperparameter_metrics(ts.step)}
        params = optax.apply_updates(ts.params, updates)
        new_ts = dataclasses.replace(
            ts, step=ts.step + 1, params=params, state=new_state, opt_state=opt_state
        )
        return new_ts, metrics

    def _hyperparameter_metrics(self, step: jax.Array) -> dict[str, Any]:
        return {
            name: jnp.asarray(value(step) if callable(value) else value, jnp.float32)
            for name, value in self.log_hyperparameters.items()
        }

    def _local_eval(self, ts: TrainState, *batch: Any) -> dict[str, Any]:
        with step_context.stepping(ts.step):
            _, (metrics, _) = self._outputs(ts.params, ts.state, batch, False, None)
        if self.mesh is not None:
            metrics = lax.pmean(metrics, self.data_axis)
        return metrics

    def _parallel(self, fn: Callable[..., Any], n_batch: int) -> Callable[..., Any]:
        if self.mesh is None:
            return fn
        data = PartitionSpec(self.data_axis)
        specs = (PartitionSpec(), *([data] * n_batch))
        return jax.shard_map(fn, mesh=self.mesh, in_specs=specs, out_specs=PartitionSpec())

    def _get(self, kind: str, n_batch: int) -> Callable[..., Any]:
        key = f"{kind}{n_batch}"
        if key not in self._compiled:
            if kind == "step":
                fn = self._parallel(self._local_step, n_batch)
                donate = (0,) if self.donate else ()
                self._compiled[key] = jax.jit(fn, donate_argnums=donate)
            else:
                self._compiled[key] = jax.jit(self._parallel(self._local_eval, n_batch))
        return self._compiled[key]

    def step(self, ts: TrainState, *batch: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One training step: ``(new TrainState, metrics)``; ``metrics['cost']`` is the
        model's cost before regularization. With ``donate=True``, ``ts`` is consumed.

        Raises:
            RuntimeError: this trainer's ``init`` never ran.
        """
        if "initialized" not in self._compiled:
            raise RuntimeError("tp.train.Trainer: call trainer.init(...) before step()")
        return self._get("step", len(batch))(ts, *self.shard(*batch))

    def evaluate(self, ts: TrainState, *batch: Any) -> dict[str, jax.Array]:
        """The metrics in inference mode (``is_training=False``: EMA statistics, no
        Dropout)."""
        return self._get("eval", len(batch))(ts, *self.shard(*batch))

    def shard(self, *batch: Any) -> Batch:
        """The batch placed on the mesh, split along ``data_axis`` (as is without a mesh)."""
        if self.mesh is None:
            return batch
        sharding = NamedSharding(self.mesh, PartitionSpec(self.data_axis))
        return tuple(jax.device_put(b, sharding) for b in batch)
