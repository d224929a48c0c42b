"""Tensorpack's GAN framework (its ``examples/GAN/GAN.py``) for code on
``tpflax.compat.tf``: ``GANModelDesc`` (``build_losses``, ``collect_variables``),
``GANTrainer`` and ``SeparateGANTrainer``, over ``tp.train.GANTrainer``.

A ported ``DCGAN.py`` keeps its ``Model(GANModelDesc)`` as written. Its trainer line,
``GANTrainer(input, model).train_with_defaults(steps_per_epoch=..., max_epoch=...)``, takes
the batches as a function of the step or a list of batches (tensorpack's ``QueueInput`` of a
DataFlow has no counterpart here) and ``session_init`` as a dict of variables (what
``SmartInit(dict)`` takes) or ``None``; callbacks and monitors are ``tp.train.fit``'s
``checkpoints=`` and ``logdir=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from tpflax.compat import tf as _tf
from tpflax.train._fit import fit
from tpflax.train._gan import GANTrainer as _GANTrainer
from tpflax.train._trainer import TrainState

__all__ = ["GANModelDesc", "GANTrainer", "SeparateGANTrainer"]


class GANModelDesc:
    """Tensorpack's ``GANModelDesc`` (GAN.py): ``build_graph`` builds one tower and calls
    :meth:`build_losses` (which sets ``self.g_loss``, ``self.d_loss``) and
    :meth:`collect_variables` (which names the two scopes); ``optimizer()`` returns the one
    optimizer both updates share, as in tensorpack. ``inputs()``, ``self.training`` and
    ``get_input_signature()`` as in ``ModelDesc``.

    Train it with ``GANTrainer(input, model)`` below, or
    ``tp.train.GANTrainer.from_model_desc(model)``.
    """

    def inputs(self) -> list[Any]:
        """The model's inputs, in ``build_graph``'s order."""
        raise NotImplementedError("GANModelDesc.inputs(): return a list of tf.TensorSpec")

    def get_input_signature(self) -> list[Any]:
        """Tensorpack's name for :meth:`inputs`."""
        return self.inputs()

    def optimizer(self) -> Any:
        """The optimizer both updates share (e.g. ``tf.train.AdamOptimizer(2e-4, beta1=0.5,
        epsilon=1e-3)``, TF's update rule)."""
        raise NotImplementedError("GANModelDesc.optimizer(): return a tf.train optimizer")

    @property
    def training(self) -> bool:
        """``get_current_tower_context().is_training`` of the running model."""
        from tpflax.compat.tensorpack import get_current_tower_context

        return get_current_tower_context().is_training

    def collect_variables(self, g_scope: str = "gen", d_scope: str = "discrim") -> None:
        """Names the generator's and discriminator's scopes (tensorpack sets ``self.g_vars``
        and ``self.d_vars`` to the trainable variables under them; here the trainer reads
        the scopes, and raises at ``init`` when one matches no variable, as tensorpack
        asserts)."""
        self._gan_scopes = (g_scope, d_scope)

    def build_losses(self, logits_real: Any, logits_fake: Any) -> None:
        """GAN.py's standard GAN loss: sets ``self.d_loss`` (``GAN_loss/discrim/loss``, the
        mean of the two sigmoid cross entropies) and ``self.g_loss``
        (``GAN_loss/gen/loss``), with histograms of the scores and
        ``add_moving_summary`` of the losses and accuracies, as tensorpack's names.

        Args:
            logits_real: the discriminator's logits of real samples.
            logits_fake: its logits of the generator's samples.
        """
        from tpflax.compat.tensorpack import add_moving_summary

        tf: Any = _tf
        with tf.name_scope("GAN_loss"):
            score_real = tf.sigmoid(logits_real)
            score_fake = tf.sigmoid(logits_fake)
            tf.summary.histogram("score-real", score_real)
            tf.summary.histogram("score-fake", score_fake)
            xent = tf.nn.sigmoid_cross_entropy_with_logits
            with tf.name_scope("discrim"):
                d_loss_pos = tf.reduce_mean(
                    xent(logits=logits_real, labels=tf.ones_like(logits_real)), name="loss_real"
                )
                d_loss_neg = tf.reduce_mean(
                    xent(logits=logits_fake, labels=tf.zeros_like(logits_fake)), name="loss_fake"
                )
                d_pos_acc = tf.reduce_mean(
                    tf.cast(score_real > 0.5, tf.float32), name="accuracy_real"
                )
                d_neg_acc = tf.reduce_mean(
                    tf.cast(score_fake < 0.5, tf.float32), name="accuracy_fake"
                )
                d_accuracy = tf.add(0.5 * d_pos_acc, 0.5 * d_neg_acc, name="accuracy")
                self.d_loss = tf.add(0.5 * d_loss_pos, 0.5 * d_loss_neg, name="loss")
            with tf.name_scope("gen"):
                self.g_loss = tf.reduce_mean(
                    xent(logits=logits_fake, labels=tf.ones_like(logits_fake)), name="loss"
                )
                g_accuracy = tf.reduce_mean(tf.cast(score_fake > 0.5, tf.float32), name="accuracy")
            add_moving_summary(self.g_loss, self.d_loss, d_accuracy, g_accuracy)

    def build_graph(self, *inputs: Any) -> None:
        """Builds one tower: sets ``self.g_loss``, ``self.d_loss`` and calls
        ``collect_variables``."""
        raise NotImplementedError(
            "GANModelDesc.build_graph(*inputs): build the model, call self.build_losses(...) "
            "and self.collect_variables()"
        )

    def get_optimizer(self) -> Any:
        """``optimizer()``, created once (tensorpack memoizes it: both updates share it), run
        as ``ModelDesc.optimizer()`` is: DCGAN.py's ``tf.get_variable('learning_rate',
        initializer=2e-4, trainable=False)`` there is a hyperparameter (a constant)."""
        if getattr(self, "_gan_optimizer", None) is None:
            from tpflax.compat._optimizer_scope import active, optimizer_scope

            if active() is not None:
                self._gan_optimizer = self.optimizer()
            else:
                with optimizer_scope({}):
                    self._gan_optimizer = self.optimizer()
        return self._gan_optimizer


Data = Callable[[int], Sequence[Any]] | Sequence[Sequence[Any]]


class GANTrainer:
    """Tensorpack's ``GANTrainer(input, model)``: one forward pass per step, the generator's
    update then the discriminator's, one shared optimizer (``tp.train.GANTrainer``).

    Args:
        input: the batches: ``data(step) -> batch``, or a list of batches (taken in order,
            cycling), each in ``model.inputs()``'s order.
        model: a :class:`GANModelDesc`.
        num_gpu: 1 (tpflax's data parallelism is a ``Mesh``; not for GANs yet).

    Attributes:
        trainer: the ``tp.train.GANTrainer``.

    Raises:
        ValueError: ``num_gpu`` is not 1.
    """

    def __init__(self, input: Data, model: Any, num_gpu: int = 1) -> None:
        if num_gpu != 1:
            raise ValueError(
                f"{type(self).__name__}: num_gpu must be 1; got {num_gpu} (tpflax trains a GAN "
                "on one device)"
            )
        self._init(input, model, {})

    def _init(self, input: Data, model: Any, kwargs: dict[str, Any]) -> None:
        if not isinstance(model, GANModelDesc):
            raise TypeError(
                f"{type(self).__name__}: model must be a GANModelDesc; got {type(model).__name__}"
            )
        if callable(input):
            given = input
            self.data: Callable[[int], tuple[Any, ...]] = lambda step: tuple(given(step))
        elif isinstance(input, Sequence) and len(input) > 0:
            batches = [tuple(b) for b in input]
            self.data = lambda step: batches[step % len(batches)]
        else:
            raise TypeError(
                f"{type(self).__name__}: input must be data(step) -> batch or a non-empty list "
                f"of batches (tensorpack's InputSource has no counterpart); got "
                f"{type(input).__name__}"
            )
        self.model = model
        self.trainer = _GANTrainer.from_model_desc(model, **kwargs)

    def _runs(self, iterations: int) -> int:
        return iterations

    def train_with_defaults(
        self,
        *,
        steps_per_epoch: int,
        max_epoch: int = 1,
        starting_epoch: int = 1,
        session_init: Mapping[str, Any] | None = None,
        rng: jax.Array | None = None,
        callbacks: Any = None,
        monitors: Any = None,
        extra_callbacks: Any = None,
        **fit_kwargs: Any,
    ) -> tuple[TrainState, list[dict[str, float]]]:
        """Trains ``steps_per_epoch`` iterations for each epoch from ``starting_epoch`` to
        ``max_epoch`` with ``tp.train.fit``.

        Args:
            steps_per_epoch: iterations (``run_step`` calls) per epoch.
            max_epoch: the last epoch.
            starting_epoch: the first epoch.
            session_init: ``{tensorpack name: array}`` to start from (as
                ``SmartInit(dict)``); the other variables come from the model's
                initializers with ``rng``.
            rng: the random key for the initializers and Dropout (default ``key(0)``).
            callbacks: not supported (``fit_kwargs``: ``checkpoints=``, ``logdir=``).
            monitors: not supported.
            extra_callbacks: not supported.
            **fit_kwargs: ``tp.train.fit``'s keyword arguments (``checkpoints``,
                ``logdir``, ``progress``, ...).

        Returns:
            ``fit``'s ``(final TrainState, history)``.

        Raises:
            TypeError: tensorpack callbacks or monitors are given.
        """
        for name, value in (
            ("callbacks", callbacks),
            ("monitors", monitors),
            ("extra_callbacks", extra_callbacks),
        ):
            if value:
                raise TypeError(
                    f"{type(self).__name__}.train_with_defaults: {name} are tensorpack "
                    "callbacks, not supported; pass tp.train.fit's checkpoints=, logdir=, "
                    "on_step= instead"
                )
        rng = jax.random.key(0) if rng is None else rng
        first = tuple(jnp.asarray(x) for x in self.data(0))
        params, state = _initial_variables(self.trainer.model, rng, first, session_init or {})
        ts = self.trainer.init(params, state, *first, rng=rng)
        start = self._runs(steps_per_epoch * (starting_epoch - 1))
        total = self._runs(steps_per_epoch * max_epoch)
        ts = dataclasses.replace(ts, step=jnp.asarray(start, jnp.int32))
        return fit(self.trainer, ts, self.data, total, **fit_kwargs)


def _name(path: Any) -> str:
    return "/".join(str(k.key) for k in path)


def _initial_variables(
    model: Any, rng: jax.Array, batch: tuple[Any, ...], values: Mapping[str, Any]
) -> tuple[Any, Any]:
    """The model's ``(params, state)``: the variables ``values`` names from it (``SmartInit``
    of a dict), the others from their initializers, compiled once (without the initializers
    of the variables ``values`` replaces: XLA drops them)."""
    values = {k[:-2] if k.endswith(":0") else k: v for k, v in values.items()}
    shapes = jax.eval_shape(lambda r, *b: model.init(r, *b, is_training=True), rng, *batch)
    known = {_name(p) for t in shapes for p, _ in jax.tree_util.tree_leaves_with_path(t)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"GANTrainer.train_with_defaults: session_init names variables the model does not "
            f"have: {unknown[:5]}"
        )

    @jax.jit
    def initial(r: jax.Array, *b: Any) -> dict[str, Any]:
        trees = model.init(r, *b, is_training=True)
        return {
            _name(p): v
            for t in trees
            for p, v in jax.tree_util.tree_leaves_with_path(t)
            if _name(p) not in values
        }

    computed = initial(rng, *batch)

    def take(path: Any, like: Any) -> Any:
        name = _name(path)
        if name not in values:
            return computed[name]
        new = jnp.asarray(values[name], like.dtype)
        if new.shape != like.shape:
            raise ValueError(
                f"GANTrainer.train_with_defaults: session_init's {name!r} has shape "
                f"{new.shape}; the model's variable has {like.shape}"
            )
        return new

    params, state = shapes
    return (
        jax.tree_util.tree_map_with_path(take, params),
        jax.tree_util.tree_map_with_path(take, state),
    )


class SeparateGANTrainer(GANTrainer):
    """Tensorpack's ``SeparateGANTrainer(input, model, d_period, g_period)``: each update its
    own ``sess.run`` (its own batch and forward pass), the discriminator's when
    ``global_step % d_period == 0``, then the generator's when ``global_step % g_period ==
    0`` (``tp.train.GANTrainer(separate=True)``). ``steps_per_epoch`` counts iterations, as
    tensorpack; ``TrainState.step`` counts updates (TF's ``global_step``).

    Raises:
        ValueError: ``min(d_period, g_period)`` is not 1.
    """

    def __init__(self, input: Data, model: Any, d_period: int = 1, g_period: int = 1) -> None:
        self._init(input, model, {"separate": True, "d_period": d_period, "g_period": g_period})

    def _runs(self, iterations: int) -> int:
        """The ``sess.run`` calls (updates) of ``iterations`` iterations of tensorpack's
        loop."""
        gs = 0
        for _ in range(iterations):
            for check in ("d", "g"):
                period = self.trainer.d_period if check == "d" else self.trainer.g_period
                if gs % period == 0:
                    gs += 1
        return gs
