"""Tensorpack-named weights: flat dicts of ``'conv0/W'``-style names <-> ``(params, state)``."""

from tpflax.checkpoint._restore import RestoreReport, restore
from tpflax.checkpoint._tree import flatten, is_state_name, unflatten

__all__ = ["RestoreReport", "flatten", "is_state_name", "restore", "unflatten"]
