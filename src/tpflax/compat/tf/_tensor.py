"""TensorFlow's tensor methods on JAX arrays, for model code written against ``tf.Tensor``.

Importing ``tpflax.compat.tf`` gives JAX arrays and tracers (what a model sees under ``jit``)
the static-shape idioms of TensorFlow's tensors, so ``x.get_shape().as_list()``,
``x.shape.as_list()``, ``x.shape.ndims`` and ``x.set_shape(...)`` run unchanged:

- ``x.shape`` is a :class:`TensorShape`: a tuple of ints (everything a tuple does still works,
  ``x.shape == (2, 3)``, ``x.shape[1:]``) with TensorFlow's ``as_list()``, ``ndims``,
  ``rank``, ``dims``, ``is_fully_defined()``, ``num_elements()``, ``concatenate()``,
  ``is_compatible_with()`` and ``assert_is_compatible_with()``. Every dimension is known
  under XLA, the batch one included (TensorFlow says ``None`` for a placeholder's batch axis).
- ``x.get_shape()`` is ``x.shape``; ``x.set_shape(shape)`` checks that ``shape`` is
  compatible (it cannot refine anything: XLA's shapes are all static).
- ``x.name`` and ``x.op.name``: the TensorFlow name of a tensor made with ``name=`` or of a
  variable from ``tf.get_variable`` / ``tf.trainable_variables()`` / a custom getter
  (``'discrim/fc/W:0'`` and ``'discrim/fc/W'``); an unnamed tensor has no name
  (``AttributeError``, so ``hasattr`` is ``False``: TensorFlow's automatic names, ``add_3``,
  depend on graph-building order that JAX does not have).
- ``v.assign(value)``, ``v.assign_add(value)``, ``v.assign_sub(value)``: ``tf.assign`` and
  its kin on a non-trainable variable (the new value goes to ``new_state``).

The change is global to the process and additive: nothing JAX defines is removed or
changes meaning (``TensorShape`` is a tuple, and a pytree node like one).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable
from typing import Any, SupportsIndex, cast, overload

import jax
from jax._src import core

from tpflax._src.frame import maybe_frame

__all__ = ["TensorShape"]


class TensorShape(tuple):  # type: ignore[type-arg]
    """TensorFlow's ``tf.TensorShape`` for a static shape: a tuple of ints with
    TensorFlow's methods. ``tf.TensorShape([2, None])`` keeps ``None`` for an unknown
    dimension (what ``set_shape`` and ``is_compatible_with`` accept)."""

    def __new__(cls, dims: Iterable[Any] | None = ()) -> TensorShape:
        if dims is None:
            raise ValueError(
                "tf.TensorShape(None): a shape of unknown rank does not exist under XLA; "
                "give the dimensions"
            )
        if isinstance(dims, int):
            dims = (dims,)
        return super().__new__(cls, (_dimension(d) for d in dims))

    @overload  # type: ignore[override]
    def __getitem__(self, index: SupportsIndex) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> TensorShape: ...
    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return TensorShape(item) if isinstance(index, slice) else item

    def as_list(self) -> list[Any]:
        """The dimensions as a list (``x.get_shape().as_list()``)."""
        return list(self)

    @property
    def ndims(self) -> int:
        """The rank."""
        return len(self)

    @property
    def rank(self) -> int:
        """The rank (TF 2's name for ``ndims``)."""
        return len(self)

    @property
    def dims(self) -> list[Any]:
        """The dimensions (ints, as TensorFlow 2's ``TensorShape.dims``)."""
        return list(self)

    def is_fully_defined(self) -> bool:
        """Whether every dimension is known (always, for a tensor's shape)."""
        return all(d is not None for d in self)

    def num_elements(self) -> int | None:
        """The number of elements, ``None`` when a dimension is unknown."""
        if not self.is_fully_defined():
            return None
        total = 1
        for d in self:
            total *= d
        return total

    def concatenate(self, other: Iterable[Any]) -> TensorShape:
        """This shape followed by ``other``."""
        return TensorShape((*self, *TensorShape(other)))

    def is_compatible_with(self, other: Iterable[Any]) -> bool:
        """Same rank, and equal wherever both dimensions are known."""
        other = TensorShape(other)
        return len(self) == len(other) and all(
            a is None or b is None or a == b for a, b in zip(self, other, strict=True)
        )

    def assert_is_compatible_with(self, other: Iterable[Any]) -> None:
        """Raises ``ValueError`` unless :meth:`is_compatible_with`."""
        if not self.is_compatible_with(other):
            raise ValueError(f"Shapes {list(self)} and {list(TensorShape(other))} are incompatible")

    def __add__(self, other: Any) -> Any:
        result = tuple.__add__(self, tuple(other))
        return TensorShape(result) if isinstance(other, TensorShape | list) else result


def _dimension(d: Any) -> Any:
    """An int (or ``None``); a symbolic dimension (``jax.export``'s shape polymorphism) stays
    as it is."""
    if d is None or isinstance(d, int):
        return d
    try:
        return operator.index(d)
    except TypeError:
        return d


jax.tree_util.register_pytree_node(
    TensorShape, lambda s: (tuple(s), None), lambda _, dims: TensorShape(dims)
)


@dataclasses.dataclass(frozen=True)
class _Op:
    """What ``x.op`` gives: the op's ``name`` (the tensor's name without ``:0``)."""

    name: str


def tensor_name(value: Any) -> str | None:
    """The TensorFlow name of ``value`` in the running model (``name=`` ops, variables)."""
    from tpflax.compat.tf._naming import name_of

    return name_of(value)


def _op(self: Any) -> _Op:
    name = tensor_name(self)
    if name is None:
        raise AttributeError(_unnamed("op"))
    return _Op(name)


def _name(self: Any) -> str:
    name = tensor_name(self)
    if name is None:
        raise AttributeError(_unnamed("name"))
    return f"{name}:0"


def _unnamed(attribute: str) -> str:
    where = "in a running model" if maybe_frame() is not None else "outside a model"
    return (
        f"tensor.{attribute}: this tensor has no TensorFlow name ({where}). tpflax.compat "
        "names the tensors made with name= (tf.identity(x, name='cost')) and the variables "
        "from tf.get_variable or tf.trainable_variables(); TensorFlow's automatic names "
        "(add_3, ...) depend on graph order and do not exist here"
    )


def _set_shape(self: Any, shape: Any) -> None:
    given = TensorShape(shape)
    if not TensorShape(self.shape).is_compatible_with(given):
        raise ValueError(
            f"tensor.set_shape({list(given)}): the tensor's shape is {list(self.shape)}; "
            "under XLA every shape is static, so set_shape can only check, not change it"
        )


def _assign(kind: str) -> Any:
    def method(self: Any, value: Any, use_locking: Any = None, name: Any = None, **_: Any) -> Any:
        from tpflax.compat.tf import _scopes

        return cast(Any, getattr(_scopes, kind))(self, value, name=name)

    method.__name__ = kind
    return method


def _shape_property(original: Any) -> property:
    def shape(self: Any) -> TensorShape:
        return TensorShape(original.__get__(self, type(self)))

    return property(shape)


def _install() -> None:
    array_type = type(jax.numpy.zeros(()))
    methods = {
        "get_shape": lambda self: self.shape,
        "set_shape": _set_shape,
        "op": property(_op),
        "name": property(_name),
        "assign": _assign("assign"),
        "assign_add": _assign("assign_add"),
        "assign_sub": _assign("assign_sub"),
    }
    classes: list[Any] = [array_type, core.Tracer]
    for cls in classes:
        if getattr(cls, "_tpflax_tf_methods", False):
            continue
        cls.shape = _shape_property(cls.__dict__["shape"])
        for attribute, value in methods.items():
            setattr(cls, attribute, value)
        cls._tpflax_tf_methods = True
    # A property that raises AttributeError falls back to __getattr__, where JAX's tracers
    # answer "has no attribute op": under jit, the unnamed tensor's message is ours too.
    jax_getattr = core.Tracer.__getattr__

    def __getattr__(self: Any, name: str) -> Any:
        if name in ("op", "name"):
            raise AttributeError(_unnamed(name))
        return jax_getattr(self, name)

    core.Tracer.__getattr__ = __getattr__  # type: ignore[method-assign]


_install()
