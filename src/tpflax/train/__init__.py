"""``tp.train``: train tpflax models with optax, small and explicit.

* :class:`Trainer`: a jit-compiled train step and eval step (BatchNorm state threaded,
  regularizers added on request, buffers donated, Dropout keys from the step, frozen
  variables masked, data parallel over a ``Mesh``).
* :class:`GANTrainer`: tensorpack's ``GANTrainer`` / ``SeparateGANTrainer``: two costs,
  two variable lists by scope, one optimizer (shared as TF's) or two.
* :class:`TrainState`: step, params, state, optimizer state and rng, one pytree.
* :class:`Checkpoints`: orbax ``CheckpointManager``: the last N steps and the best one.
* :func:`fit`: the loop, resumable exactly; :func:`epoch_batches`: data as a function of
  the step.
"""

from tpflax.train import step_context, tf_optimizers
from tpflax.train._checkpoints import Checkpoints
from tpflax.train._data import epoch_batches
from tpflax.train._fit import fit
from tpflax.train._gan import GANTrainer
from tpflax.train._trainer import Trainer, TrainState

__all__ = [
    "Checkpoints",
    "GANTrainer",
    "TrainState",
    "Trainer",
    "epoch_batches",
    "fit",
    "step_context",
    "tf_optimizers",
]
