"""Tensorpack-named weights: ``.npz``, TensorFlow checkpoints and orbax <-> ``(params, state)``.

Every format is one entry of ``FORMATS`` (a :class:`Format`: detect, read, write, and how
the ``tpflax`` command guesses it from a path); ``load``, ``save`` and ``detect_format`` go
through that table.

>>> import tpflax as tp
>>> flat = tp.checkpoint.flatten({'conv0': {'W': 1.0}}, {'bn': {'mean': {'EMA': 0.0}}})
>>> sorted(flat)
['bn/mean/EMA', 'conv0/W']
>>> list(tp.checkpoint.FORMATS)
['npz', 'tf', 'orbax']
"""

from tpflax._src.tree import flatten, is_state_name, is_training_name, unflatten
from tpflax.checkpoint._format import Format
from tpflax.checkpoint._load import FORMATS, detect_format, guess_format, load, save
from tpflax.checkpoint._npz import save_npz
from tpflax.checkpoint._orbax import orbax_items, restore_orbax, save_orbax
from tpflax.checkpoint._restore import RestoreReport, restore
from tpflax.checkpoint._tf_checkpoint import save_tf_checkpoint
from tpflax.checkpoint.errors import FormatError, MissingShardError

__all__ = [
    "FORMATS",
    "Format",
    "FormatError",
    "MissingShardError",
    "RestoreReport",
    "detect_format",
    "flatten",
    "guess_format",
    "is_state_name",
    "is_training_name",
    "load",
    "orbax_items",
    "restore",
    "restore_orbax",
    "save",
    "save_npz",
    "save_orbax",
    "save_tf_checkpoint",
    "unflatten",
]
