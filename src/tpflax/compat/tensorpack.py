"""``from tpflax.compat.tensorpack import *``: tensorpack's model-building names for code
that runs on ``tpflax.compat.tf``.

The layers, ``argscope``, ``LinearWrap``, ``layer_register``, ``auto_reuse_variable_scope``,
``freeze_variables``, ``regularize_cost`` (with ``name=``) and the regularizers are tpflax's
own (tensorpack's semantics, pinned by tensorpack's fixtures). Added here: ``under_name_scope``,
``get_current_tower_context``, ``tfv1`` (tensorpack's alias of ``tf.compat.v1``),
``ModelDesc``, ``add_moving_summary``, ``add_param_summary`` / ``add_activation_summary`` /
``add_tensor_summary``, ``remap_variables`` and ``custom_getter_scope``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from tpflax import (
    AvgPooling,
    BatchNorm,
    BatchRenorm,
    BNReLU,
    ConcatWith,
    Conv2D,
    Conv2DTranspose,
    Deconv2D,
    Dropout,
    FixedUnPooling,
    FullyConnected,
    GlobalAvgPooling,
    InstanceNorm,
    LayerNorm,
    Maxout,
    MaxPooling,
    PReLU,
    argscope,
    auto_reuse_variable_scope,
    enable_argscope_for_function,
    enable_argscope_for_module,
    freeze_variables,
    get_arg_scope,
    l1_regularizer,
    l2_regularizer,
    layer_register,
    regularize_cost,
    regularize_cost_from_collection,
)
from tpflax._src import initializers
from tpflax._src.frame import assign_state, current_frame, get_variable
from tpflax.compat import tf as _tf
from tpflax.compat._gan import GANModelDesc, GANTrainer, SeparateGANTrainer
from tpflax.compat._optimizer_scope import (
    HyperParamSetterWithFunc,
    ScheduledHyperParamSetter,
    optimizer_scope,
    schedules_for,
)
from tpflax.compat._optimizer_scope import active as _optimizer_scope_active
from tpflax.compat._tensorpack_modules import (
    get_global_step_var,
    get_tf_version_tuple,
    install,
)
from tpflax.compat._tensorpack_utils import (
    LinearWrap,
    add_activation_summary,
    add_param_summary,
    add_tensor_summary,
    custom_getter_scope,
    remap_variables,
)
from tpflax.compat.tf._naming import name_of
from tpflax.compat.tf._scopes import name_scope as _name_scope

log = logging.getLogger("tpflax")

tfv1 = _tf.compat.v1

__all__ = [
    "AvgPooling",
    "BNReLU",
    "BatchNorm",
    "BatchRenorm",
    "ConcatWith",
    "Conv2D",
    "Conv2DTranspose",
    "Deconv2D",
    "Dropout",
    "FixedUnPooling",
    "FullyConnected",
    "GANModelDesc",
    "GANTrainer",
    "GlobalAvgPooling",
    "HyperParamSetterWithFunc",
    "InstanceNorm",
    "LayerNorm",
    "LinearWrap",
    "MaxPooling",
    "Maxout",
    "ModelDesc",
    "ModelDescBase",
    "PReLU",
    "ScheduledHyperParamSetter",
    "SeparateGANTrainer",
    "TowerContextInfo",
    "add_activation_summary",
    "add_moving_summary",
    "add_param_summary",
    "add_tensor_summary",
    "argscope",
    "auto_reuse_variable_scope",
    "custom_getter_scope",
    "enable_argscope_for_function",
    "enable_argscope_for_module",
    "freeze_variables",
    "get_arg_scope",
    "get_current_tower_context",
    "get_global_step_var",
    "get_tf_version_tuple",
    "gradproc",
    "l1_regularizer",
    "l2_regularizer",
    "layer_register",
    "logger",
    "optimizer",
    "regularize_cost",
    "regularize_cost_from_collection",
    "remap_variables",
    "summary",
    "tfv1",
    "tower",
    "under_name_scope",
    "varreplace",
]


def under_name_scope(name_scope: str | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Tensorpack's ``under_name_scope``: the decorated function runs in ``tf.name_scope``
    of ``name_scope`` (by default the function's name; a call may pass ``name_scope=``), so
    the tensors it names are ``fn/x``, ``fn_1/x`` on a second call, as in tensorpack."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = kwargs.pop("name_scope", name_scope) or func.__name__
            with _name_scope(scope):
                return func(*args, **kwargs)

        return wrapper

    return decorator


class ModelDesc:
    """Tensorpack's ``ModelDesc`` as written: subclass it with ``inputs()`` (``tf.TensorSpec``
    or ``tf.placeholder`` from ``tpflax.compat.tf``), ``build_graph(*inputs)`` returning the
    cost (``self.training`` or ``get_current_tower_context().is_training`` for the mode),
    and ``optimizer()`` returning a ``tf.train`` optimizer (TF's update rules); train it with
    ``tp.train.Trainer.from_model_desc(model)``.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> from tpflax.compat import tf
        >>> from tpflax.compat.tensorpack import FullyConnected, ModelDesc
        >>> class Model(ModelDesc):
        ...     def inputs(self):
        ...         return [tf.TensorSpec((None, 3), tf.float32, 'x'),
        ...                 tf.TensorSpec((None,), tf.float32, 'y')]
        ...     def build_graph(self, x, y):
        ...         pred = tf.squeeze(FullyConnected('fc', x, 1), 1)
        ...         return tf.reduce_mean(tf.square(pred - y), name='cost')
        ...     def optimizer(self):
        ...         return tf.train.GradientDescentOptimizer(0.1)
        >>> trainer = tp.train.Trainer.from_model_desc(Model())
        >>> x, y = jnp.ones((4, 3)), jnp.zeros(4)
        >>> params, state = trainer.model.init(jax.random.key(0), x, y)
        >>> ts = trainer.init(params, state, x, y, rng=jax.random.key(1))
        >>> ts, metrics = trainer.step(ts, x, y)
        >>> int(ts.step), sorted(metrics)
        (1, ['cost'])
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's ``optimizer()`` runs as :meth:`build_optimizer` runs it (its
        hyperparameters and summaries understood), also when called directly."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("optimizer")
        if own is None:
            return

        @functools.wraps(own)
        def optimizer(self: Any) -> Any:
            if _optimizer_scope_active() is not None:
                return own(self)
            with optimizer_scope({}):
                return own(self)

        cls.optimizer = optimizer  # type: ignore[method-assign]

    def inputs(self) -> list[Any]:
        """The model's inputs, in ``build_graph``'s order."""
        raise NotImplementedError("ModelDesc.inputs(): return a list of tf.TensorSpec")

    def build_graph(self, *inputs: Any) -> Any:
        """Builds the model on ``inputs`` and returns the cost to minimize."""
        raise NotImplementedError("ModelDesc.build_graph(*inputs): return the cost")

    def optimizer(self) -> Any:
        """The optimizer (an optax transformation, e.g. ``tf.train.AdamOptimizer(1e-3)``)."""
        raise NotImplementedError("ModelDesc.optimizer(): return a tf.train optimizer")

    def build_optimizer(
        self,
        callbacks: Any = (),
        steps_per_epoch: int | None = None,
        max_epoch: int | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Runs :meth:`optimizer` as tensorpack's trainer does, once: a
        ``tf.get_variable('learning_rate', initializer=..., trainable=False)`` inside is a
        hyperparameter that the ``callbacks`` (``ScheduledHyperParamSetter``,
        ``HyperParamSetterWithFunc``) schedule by name, and the summaries it asks for
        (``tf.summary.scalar('lr', lr)``) are returned to be logged at each step.
        ``tp.train.Trainer.from_model_desc`` calls it.

        Returns:
            ``(optimizer, {'summary:scalar/lr': schedule or value, ...})``.
        """
        schedules = schedules_for(callbacks, steps_per_epoch, max_epoch)
        with optimizer_scope(schedules) as scope:
            optimizer = self.optimizer()
        unused = sorted(set(schedules) - set(scope.hyperparams))
        if unused:
            raise ValueError(
                f"ModelDesc.build_optimizer: no hyperparameter named {unused} was made in "
                f"optimizer() (made: {sorted(scope.hyperparams)})"
            )
        return optimizer, dict(scope.summaries)

    def get_input_signature(self) -> list[Any]:
        """Tensorpack's name for :meth:`inputs`."""
        return self.inputs()

    @property
    def training(self) -> bool:
        """``get_current_tower_context().is_training`` of the running model."""
        return get_current_tower_context().is_training


@dataclasses.dataclass(frozen=True)
class TowerContextInfo:
    """What tensorpack's ``get_current_tower_context()`` tells model code.

    Attributes:
        is_training: the model runs with ``is_training=True``.
        is_main_training_tower: the same (tpflax has one tower; data parallelism is SPMD).
        has_own_variables: always ``True`` (variables are the model's params and state).
        name: the tower's name, ``''``.
    """

    is_training: bool
    is_main_training_tower: bool
    has_own_variables: bool = True
    name: str = ""


def get_current_tower_context() -> TowerContextInfo:
    """Tensorpack's ``get_current_tower_context()`` for the running model (``tp.transform``'s
    ``is_training``)."""
    training = current_frame("get_current_tower_context()").is_training
    return TowerContextInfo(is_training=training, is_main_training_tower=training)


def add_moving_summary(*args: Any, **kwargs: Any) -> list[jax.Array]:
    """Tensorpack's ``add_moving_summary``: a zero-debiased moving average (``decay=0.95``)
    of each named scalar, updated in training, recorded as ``summary:scalar/<name>-summary``
    (``capture=['summary:*']``; ``tp.train`` logs it).

    Each tensor needs a TensorFlow name (``tf.reduce_mean(..., name='cost')``,
    ``tf.identity(x, name=...)``): tensorpack reads ``x.op.name``. The state is tensorpack's
    ``EMA/<name>/biased`` and ``EMA/<name>/local_step``; tensorpack also keeps the average
    itself as ``EMA/<name>``, which a nested tree cannot hold beside ``EMA/<name>/...``, so
    tpflax derives it (``biased / (1 - decay ** local_step)``, the same number). They are
    local variables in tensorpack (not in its checkpoints; ``tp.checkpoint.restore`` skips
    ``EMA/`` names and does not require them). As tensorpack, it does nothing outside
    training (the names of the costs may differ there: ``regularize_cost`` is
    ``empty_regularize_cost`` in inference); a model built with ``is_training=False`` gets
    them when ``tp.train.Trainer.init`` completes its state. Under ``reuse=True`` it does
    nothing, as tensorpack.

    Returns:
        The moving averages after this step (in inference, ``[]``).

    Raises:
        TypeError: a tensor has no name, or an unknown keyword is given.
        ValueError: a tensor is not a scalar.
    """
    decay = kwargs.pop("decay", 0.95)
    kwargs.pop("collection", None)
    kwargs.pop("summary_collections", None)
    if kwargs:
        raise TypeError(f"add_moving_summary: unknown arguments {sorted(kwargs)}")
    frame = current_frame("add_moving_summary()")
    if not frame.is_training:
        return []
    if frame.reuse[-1] is True:
        log.warning("add_moving_summary() called under reuse=True scope, ignored.")
        return []
    named = []
    for x in args:
        name = name_of(x)
        if name is None:
            raise TypeError(
                "add_moving_summary: each tensor needs a TensorFlow name, as tensorpack reads "
                "x.op.name: give it one with name= on the op that makes it, or "
                "tf.identity(x, name='cost')"
            )
        if jnp.ndim(x) != 0:
            raise ValueError(f"add_moving_summary: only scalars; {name!r} has shape {jnp.shape(x)}")
        named.append((re.sub(r"tower[0-9]+/", "", name), jnp.asarray(x, jnp.float32)))
    with frame.absolute_scope("EMA"):
        averages = [_moving_average(frame, name, value, float(decay)) for name, value in named]
    with frame.opened_name_scope("", exact=True):
        for (name, _), average in zip(named, averages, strict=True):
            frame.outputs[f"summary:scalar/{frame.unique_name(name + '-summary')}"] = average
    return averages


def _moving_average(frame: Any, name: str, value: jax.Array, decay: float) -> jax.Array:
    """TensorFlow's ``assign_moving_average(..., zero_debias=True)`` in the ``EMA`` scope:
    ``biased -= (biased - value) * (1 - decay)``, ``local_step += 1``, the average is
    ``biased / (1 - decay ** local_step)`` (0 before the first step). Returns the average."""
    who = f"add_moving_summary({name!r})"
    zeros = initializers.zeros
    biased = get_variable(f"{name}/biased", (), zeros, trainable=False, who=who)
    step = get_variable(f"{name}/local_step", (), zeros, trainable=False, who=who)
    decay32 = jnp.asarray(decay, jnp.float32)
    new_biased = biased - (biased - value) * (1.0 - decay32)
    new_step = step + 1.0
    assign_state(f"{name}/biased", new_biased, who=who)
    assign_state(f"{name}/local_step", new_step, who=who)
    return new_biased / (1.0 - decay32**new_step)


ModelDescBase = ModelDesc  # tensorpack's base of ModelDesc (GAN.py's GANModelDesc uses it)

# tensorpack's module paths (tfutils.summary, models, utils.logger, ...) as views of the names
# above, and the modules `from tensorpack import *` gives too
_modules = install(sys.modules[__name__])
summary = _modules["summary"]
optimizer = _modules["optimizer"]
gradproc = _modules["gradproc"]
varreplace = _modules["varreplace"]
tower = _modules["tower"]
logger = _modules["logger"]
tfutils = _modules["tfutils"]
models = sys.modules[f"{__name__}.models"]
utils = sys.modules[f"{__name__}.utils"]
# importable from here too (tensorpack keeps them in tensorpack.utils.argtools)
memoized = sys.modules[f"{__name__}.utils.argtools"].memoized
memoized_method = sys.modules[f"{__name__}.utils.argtools"].memoized_method
