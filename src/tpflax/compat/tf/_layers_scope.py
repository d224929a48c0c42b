"""How a ``tf.layers`` layer names itself: its variable scope and its name scope, by
TensorFlow 1.x's rules (measured with TF 2.21's ``tf.compat.v1.layers`` in graph mode).

* An unnamed call (``tf.layers.conv2d(x, 4, 3)``) opens ``variable_scope(None,
  default_name='conv2d')``: its variables go to the first of ``conv2d``, ``conv2d_1``, ...
  not yet opened as a variable scope in the enclosing scope since it was entered (a scope
  opened again, ``reuse=True`` included, starts counting afresh: a discriminator of unnamed
  layers shares its variables). Its tensors go to the name scope ``unique_name('conv2d')``,
  which may differ (``tf.identity(x, name='conv2d')`` before it: variables ``conv2d/``,
  tensors ``conv2d_1/``).
* A named functional call (``name='c'``) opens ``variable_scope('c', reuse=reuse)`` as it
  is: the same name twice without ``reuse`` is an error, as in TF.
* A layer object (``tf.layers.Conv2D(4, 3)``) takes its scope at its first call, as an
  unnamed call does (a ``name=`` is the base of the default name, so two objects named
  ``'c'`` are ``c`` and ``c_1``); every later call reuses it, in the same name scope.

Every scope opened in the enclosing scope counts, as in TensorFlow: ``tf.variable_scope``
(even left empty), tensorpack's layers, other ``tf.layers`` (``Frame.scope_counts``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from tpflax._src.frame import current_frame
from tpflax.compat.tf import _scopes

_LAYERS = "tpflax.compat.tf.layers/objects"


@dataclasses.dataclass
class _Opened:
    """A layer object's scope in one model call: reopened by its later calls."""

    layer: Any  # kept alive, so its id stays unique in this call
    scope: _scopes.VariableScope
    name_scope: str


@contextlib.contextmanager
def layer_scope(layer: Any, base: str, scope: str | None, reuse: Any) -> Iterator[None]:
    """Opens ``layer``'s variable scope (and name scope) for one call.

    Args:
        layer: the layer object (its first call in this model call picks the scope).
        base: the default name, ``'conv2d'`` (or the object's ``name=``).
        scope: a functional call's ``name=``: that exact scope.
        reuse: the call's ``reuse=``.
    """
    who = f"tf.layers.{type(layer).__name__}"
    frame = current_frame(who)
    opened: dict[int, _Opened] = frame.extensions.setdefault(_LAYERS, {})
    known = opened.get(id(layer))
    if known is not None:  # a later call of one layer object shares its variables
        with (
            _scopes.variable_scope(known.scope, reuse=True, auxiliary_name_scope=False),
            frame.opened_name_scope(known.name_scope, exact=True),
        ):
            yield
        return
    if scope is not None or reuse:
        name = scope if scope is not None else base
        with _scopes.variable_scope(name, reuse=reuse) as entered:
            opened[id(layer)] = _Opened(layer, entered, frame.name_scope[-1])
            yield
        return
    with frame.opened_name_scope(base) as name_scope:
        name = frame.unique_variable_scope(base)
        with _scopes.variable_scope(name, auxiliary_name_scope=False) as entered:
            opened[id(layer)] = _Opened(layer, entered, name_scope)
            yield
