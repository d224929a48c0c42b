"""``from tpflax.compat.tensorpack import *``: tensorpack's model-building names for code
that runs on ``tpflax.compat.tf``.

The layers, ``argscope``, ``LinearWrap``, ``layer_register``, ``auto_reuse_variable_scope``,
``freeze_variables``, ``regularize_cost`` (with ``name=``) and the regularizers are tpflax's
own (tensorpack's semantics, pinned by tensorpack's fixtures). Added here: ``under_name_scope``,
``get_current_tower_context`` and ``tfv1`` (tensorpack's alias of ``tf.compat.v1``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

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
    LinearWrap,
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
from tpflax._src.frame import current_frame
from tpflax.compat import tf as _tf
from tpflax.compat.tf._scopes import name_scope as _name_scope

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
    "GlobalAvgPooling",
    "InstanceNorm",
    "LayerNorm",
    "LinearWrap",
    "MaxPooling",
    "Maxout",
    "PReLU",
    "TowerContextInfo",
    "argscope",
    "auto_reuse_variable_scope",
    "enable_argscope_for_function",
    "enable_argscope_for_module",
    "freeze_variables",
    "get_arg_scope",
    "get_current_tower_context",
    "l1_regularizer",
    "l2_regularizer",
    "layer_register",
    "regularize_cost",
    "regularize_cost_from_collection",
    "tfv1",
    "under_name_scope",
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
