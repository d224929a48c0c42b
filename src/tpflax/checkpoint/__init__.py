"""Tensorpack-named weights: ``.npz``, TensorFlow checkpoints and orbax <-> ``(params, state)``.

>>> import tpflax as tp
>>> flat = tp.checkpoint.flatten({'conv0': {'W': 1.0}}, {'bn': {'mean': {'EMA': 0.0}}})
>>> sorted(flat)
['bn/mean/EMA', 'conv0/W']
"""

from tpflax._src.tree import flatten, is_state_name, is_training_name, unflatten
from tpflax.checkpoint._load import detect_format, load
from tpflax.checkpoint._npz import save_npz
from tpflax.checkpoint._orbax import restore_orbax, save_orbax
from tpflax.checkpoint._restore import RestoreReport, restore
from tpflax.checkpoint._tf_checkpoint import write_tf_checkpoint as save_tf_checkpoint
from tpflax.checkpoint.errors import FormatError

__all__ = [
    "FormatError",
    "RestoreReport",
    "detect_format",
    "flatten",
    "is_state_name",
    "is_training_name",
    "load",
    "restore",
    "restore_orbax",
    "save_npz",
    "save_orbax",
    "save_tf_checkpoint",
    "unflatten",
]
