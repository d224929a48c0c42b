"""TensorFlow's tensor names inside a running model: an op given ``name=`` (``tf.identity(x,
name='viz')``) is recorded under its full name (name scopes and ``_1`` suffixes as
TensorFlow makes them), so ``capture=['viz']`` returns it, and :func:`name_of` finds the name
of a value again (tensorpack's ``add_moving_summary(cost)`` reads ``cost.op.name``)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from tpflax._src.frame import maybe_frame

# Frame.extensions: id(value) -> (its full tensor name, the value, kept alive so that its id
# cannot be reused by another value during the call)
_NAMES = "tpflax.compat.names"


def named(value: Any, name: str | None) -> Any:
    """Records ``value`` as ``name`` in the running model (nothing outside one, or without a
    name) and returns it."""
    if name is None:
        return value
    if not isinstance(name, str) or not name:
        raise TypeError(f"tf: name must be a non-empty string or None; got {name!r}")
    frame = maybe_frame()
    if frame is not None:
        names = frame.extensions.setdefault(_NAMES, {})
        if id(value) in names:  # an op that returned its input: its input keeps its name
            value = jnp.array(value, copy=True)
        full = frame.unique_name(name)
        frame.outputs[full] = value
        names[id(value)] = (full, value)
    return value


def remember(value: Any, full: str) -> Any:
    """Records that ``value`` is the tensor (or variable) ``full`` in the running model, for
    :func:`name_of`, without making it capturable; returns ``value``."""
    frame = maybe_frame()
    if frame is not None:
        frame.extensions.setdefault(_NAMES, {})[id(value)] = (full, value)
    return value


def name_of(value: Any) -> str | None:
    """The TensorFlow name of ``value`` in the running model, else ``None``: given with
    ``name=`` (or a variable's), or one tpflax's core recorded (a tensorpack layer's
    ``conv0/output``, ``regularize_cost``'s ``regularize_cost``)."""
    frame = maybe_frame()
    if frame is None:
        return None
    entry = frame.extensions.get(_NAMES, {}).get(id(value))
    if entry is not None and entry[1] is value:
        return str(entry[0])
    for key, output in frame.outputs.items():
        if output is value and not key.startswith("summary:"):
            return key
    return None
