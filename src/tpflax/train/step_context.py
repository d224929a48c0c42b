"""The training step a running model may read (``tf.train.get_or_create_global_step()`` in
``tpflax.compat``): ``tp.train`` sets it while it traces a step, as a context variable."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

_STEP: contextvars.ContextVar[Any] = contextvars.ContextVar("tpflax_global_step", default=None)


def current() -> Any:
    """The step being traced (an int32 scalar, possibly traced), or ``None`` outside one."""
    return _STEP.get()


@contextlib.contextmanager
def stepping(step: Any) -> Iterator[None]:
    """Makes ``step`` the current training step inside the block."""
    token = _STEP.set(step)
    try:
        yield
    finally:
        _STEP.reset(token)
