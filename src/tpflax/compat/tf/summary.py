"""``tf.summary``: ``scalar``, ``image`` and ``histogram`` record their values in the running
model, under ``summary:<kind>/<tag>`` with TensorFlow's tag (the name in its name scope,
``_1`` when taken): ``capture=['summary:*']`` returns them all, and ``tp.train`` logs them.
Nothing is written here: a summary is a value, not an op. In a ``ModelDesc.optimizer()``
(outside any model) a summary of a hyperparameter (``tf.summary.scalar('lr', lr)``) is kept
for ``tp.train`` to log at each step."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from tpflax._src.frame import current_frame, maybe_frame
from tpflax.compat import _optimizer_scope

__all__ = ["histogram", "image", "scalar"]


def _record(kind: str, name: str, value: Any, who: str) -> Any:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{who}: name must be a non-empty string; got {name!r}")
    in_optimizer = _optimizer_scope.active()
    if maybe_frame() is None and in_optimizer is not None:  # in a ModelDesc.optimizer()
        in_optimizer.summaries[f"summary:{kind}/{name}"] = value
        return value
    frame = current_frame(who)
    tag = frame.unique_name(name)
    frame.outputs[f"summary:{kind}/{tag}"] = value
    return value


def scalar(name: str, tensor: Any, collections: Any = None, family: Any = None) -> Any:
    """``tf.summary.scalar``: records ``tensor`` (a scalar) as ``summary:scalar/<tag>``.

    Raises:
        ValueError: ``tensor`` is not a scalar.
    """
    del collections, family
    if callable(tensor) and _optimizer_scope.active() is not None and maybe_frame() is None:
        return _record("scalar", name, tensor, "tf.summary.scalar")  # a schedule
    value = jnp.asarray(tensor)
    if value.ndim != 0:
        raise ValueError(f"tf.summary.scalar({name!r}): expected a scalar; got shape {value.shape}")
    return _record("scalar", name, value, "tf.summary.scalar")


def image(
    name: str, tensor: Any, max_outputs: int = 3, collections: Any = None, family: Any = None
) -> Any:
    """``tf.summary.image``: records the first ``max_outputs`` images of ``tensor``
    (``[N, H, W, C]``, C in 1, 3, 4) as ``summary:image/<tag>``.

    Raises:
        ValueError: ``tensor`` is not ``[N, H, W, 1|3|4]``.
    """
    del collections, family
    value = jnp.asarray(tensor)
    if value.ndim != 4 or value.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"tf.summary.image({name!r}): expected [N, H, W, C] with C = 1, 3 or 4; got shape "
            f"{value.shape}"
        )
    return _record("image", name, value[: int(max_outputs)], "tf.summary.image")


def histogram(name: str, values: Any, collections: Any = None, family: Any = None) -> Any:
    """``tf.summary.histogram``: records ``values`` as ``summary:histogram/<tag>`` (the values;
    a writer bins them)."""
    del collections, family
    return _record("histogram", name, jnp.asarray(values), "tf.summary.histogram")
