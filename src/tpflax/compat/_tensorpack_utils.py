"""Tensorpack's ``tfutils`` helpers that model code calls, on ``tpflax.compat.tf``:
``remap_variables`` / ``custom_getter_scope`` (tensorpack's ``varreplace``),
``add_param_summary`` / ``add_activation_summary`` / ``add_tensor_summary`` (its
``summary``), and ``LinearWrap`` with its ``.tf`` escape."""

from __future__ import annotations

import contextlib
import logging
import re
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from tpflax._src.frame import current_frame
from tpflax._src.linear_wrap import LinearWrap as _LinearWrap
from tpflax.compat import tf as _tf

log = logging.getLogger("tpflax")

_TYPES = ("scalar", "histogram", "sparsity", "mean", "rms")


class LinearWrap(_LinearWrap):
    """Tensorpack's ``LinearWrap``, with its ``.tf`` escape on ``tpflax.compat.tf``:
    ``LinearWrap(x).Conv2D('c0', 32, 3).tf.nn.relu().tf.multiply(0.5)()`` calls each function
    with the wrapped tensor first, as tensorpack does (``.jnp``, ``.jax`` and ``.lax`` work
    too)."""

    modules: ClassVar[dict[str, types.ModuleType]] = {**_LinearWrap.modules, "tf": _tf}


@contextlib.contextmanager
def custom_getter_scope(custom_getter: Callable[..., Any]) -> Iterator[None]:
    """Tensorpack's ``custom_getter_scope``: the current variable scope with
    ``custom_getter`` (``getter, name, *args, **kwargs``) for every variable created or read
    inside, tensorpack's layers' included; no new name scope."""
    with _tf.variable_scope(
        _tf.get_variable_scope(), custom_getter=custom_getter, auxiliary_name_scope=False
    ):
        yield


def remap_variables(fn: Callable[[Any], Any]) -> contextlib.AbstractContextManager[None]:
    """Tensorpack's ``remap_variables``: inside, every variable a layer gets is ``fn(v)``
    (DoReFa-Net's quantized weights); ``v.op.name`` is the variable's name, as in
    tensorpack::

        def quantized(v):
            return v if 'conv0' in v.op.name else fw(v)
        with remap_variables(quantized):
            logits = Conv2D('conv1', x, 32, 3)
    """
    if not callable(fn):
        raise TypeError(f"remap_variables: fn must map a variable to a tensor; got {fn!r}")

    def getter(next_getter: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(next_getter(*args, **kwargs))

    return custom_getter_scope(getter)


def _rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(x)))


def _zero_fraction(x: jax.Array) -> jax.Array:
    return jnp.mean((x == 0).astype(jnp.float32))


def add_tensor_summary(
    x: Any,
    types: Any,
    name: str | None = None,
    collections: Any = None,
    main_tower_only: bool = True,
) -> None:
    """Tensorpack's ``add_tensor_summary``: summaries of ``x`` in the current name scope,
    ``<name>-summary`` (scalar), ``-histogram``, ``-sparsity`` (fraction of zeros),
    ``-mean``, ``-rms``; only in training (tensorpack's main tower).

    Raises:
        ValueError: an unknown summary type.
        TypeError: ``name`` is not given and ``x`` has no TensorFlow name.
    """
    del collections
    kinds = set(types)
    unknown = kinds - set(_TYPES)
    if unknown:
        raise ValueError(f"add_tensor_summary: unknown types {sorted(unknown)}; known: {_TYPES}")
    if name is None:
        name = _name_of(x, "add_tensor_summary")
    if main_tower_only and not current_frame("add_tensor_summary()").is_training:
        return
    value = jnp.asarray(x)
    makers: dict[str, Callable[[], Any]] = {
        "scalar": lambda: _tf.summary.scalar(name + "-summary", value),
        "histogram": lambda: _tf.summary.histogram(name + "-histogram", value),
        "sparsity": lambda: _tf.summary.scalar(name + "-sparsity", _zero_fraction(value)),
        "mean": lambda: _tf.summary.scalar(name + "-mean", jnp.mean(value)),
        "rms": lambda: _tf.summary.scalar(name + "-rms", _rms(value)),
    }
    for kind in _TYPES:  # a fixed order (tensorpack iterates a set; the tags do not clash)
        if kind in kinds:
            makers[kind]()


def _name_of(x: Any, who: str) -> str:
    from tpflax.compat.tf._naming import name_of

    name = name_of(x)
    if name is None:
        raise TypeError(
            f"{who}: the tensor has no TensorFlow name (tensorpack reads x.op.name): pass "
            "name=, or name it with tf.identity(x, name=...)"
        )
    return name


def add_activation_summary(
    x: Any, types: Any = None, name: str | None = None, collections: Any = None
) -> None:
    """Tensorpack's ``add_activation_summary``: :func:`add_tensor_summary` of ``x``
    (default ``['sparsity', 'rms', 'histogram']``) in the top-level ``activation-summary``
    name scope; a warning and nothing for a tensor of rank < 2, as tensorpack."""
    if jnp.ndim(x) < 2:
        log.warning("Cannot summarize scalar activation %s", name or "(unnamed)")
        return
    types = ["sparsity", "rms", "histogram"] if types is None else types
    if name is None:
        name = _name_of(x, "add_activation_summary")
    with _tf.name_scope("activation-summary/"):
        add_tensor_summary(x, types, name=name, collections=collections)


def add_param_summary(*summary_lists: Any, collections: Any = None) -> None:
    """Tensorpack's ``add_param_summary``: for each ``(regex, types)``, summaries of the
    trainable variables created so far whose name matches ``regex`` entirely
    (``'.*/W'``), tagged ``param-summary/<name>-<type>``; only in training.

    Example: ``add_param_summary(('.*/W', ['histogram', 'rms']), ('.*/gamma', ['scalar']))``.
    """
    pairs = []
    for item in summary_lists:
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"add_param_summary: each argument is (regex, [summary types]); got {item!r}"
            )
        regex, types = item
        pairs.append((regex if regex.endswith("$") else regex + "$", types))
    if not current_frame("add_param_summary()").is_training:
        return
    with _tf.name_scope("param-summary/"):
        for p in _tf.trainable_variables():
            name = _name_of(p, "add_param_summary")
            for regex, types in pairs:
                if re.match(regex, name):
                    add_tensor_summary(p, types, name=name, collections=collections)
