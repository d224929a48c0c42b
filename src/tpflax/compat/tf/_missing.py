"""What ``tf.<name>`` says when ``tpflax.compat.tf`` lacks ``name``: an ``AttributeError``
that names it, says why when the name belongs to a family XLA or a pure function cannot
have, and points to the list of supported names."""

from __future__ import annotations

import types
from collections.abc import Callable

_PAGE = "docs/compat-names.md"

# First part of a missing name -> why it is missing and what to write instead.
_FAMILIES = {
    "contrib": "tf.contrib is gone from TensorFlow 2 and from tpflax; tensorpack's layers "
    "(tpflax.compat.tensorpack) and jax.numpy cover what model code used it for",
    "data": "input pipelines are not model code: tp.train takes any iterable of NumPy batches",
    "rnn": "recurrent cells are not in tpflax.compat; run a flax.linen RNN inside the model "
    "with tp.module(name, module)",
    "rnn_cell": "recurrent cells are not in tpflax.compat; run a flax.linen RNN inside the "
    "model with tp.module(name, module)",
    "dynamic_rnn": "recurrent cells are not in tpflax.compat; run a flax.linen RNN inside "
    "the model with tp.module(name, module)",
    "keras": "Keras models are not tensorpack model code; use tf.layers or tensorpack's layers",
    "estimator": "estimators are not model code; train with tp.train",
    "saved_model": "tpflax saves weights with tp.checkpoint (npz, TF checkpoints, orbax)",
    "io": "file reading is not model code; load data outside the model",
    "gfile": "file reading is not model code; load data outside the model",
}


def install(module: types.ModuleType, prefix: str) -> None:
    """Gives ``module`` a ``__getattr__`` that raises the explained ``AttributeError``."""
    setattr(module, "__getattr__", _getattr(module, prefix))  # noqa: B010 (PEP 562 hook)


def _getattr(module: types.ModuleType, prefix: str) -> Callable[[str], object]:
    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        why = _FAMILIES.get(name)
        text = f"{prefix}.{name} is not in tpflax.compat"
        if why:
            text += f": {why}"
        else:
            text += (
                f" (the supported names are listed in {_PAGE}); write it with jax.numpy / "
                "jax.lax, which take and return the same arrays"
            )
        raise AttributeError(text)

    return __getattr__
