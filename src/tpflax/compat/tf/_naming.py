"""TensorFlow's tensor names inside a running model: an op given ``name=`` (``tf.identity(x,
name='viz')``) is recorded under its full name (name scopes and ``_1`` suffixes as
TensorFlow makes them), so ``capture=['viz']`` returns it."""

from __future__ import annotations

from typing import Any

from tpflax._src.frame import maybe_frame


def named(value: Any, name: str | None) -> Any:
    """Records ``value`` as ``name`` in the running model (nothing outside one, or without a
    name) and returns it."""
    if name is None:
        return value
    if not isinstance(name, str) or not name:
        raise TypeError(f"tf: name must be a non-empty string or None; got {name!r}")
    frame = maybe_frame()
    if frame is not None:
        frame.outputs[frame.unique_name(name)] = value
    return value
