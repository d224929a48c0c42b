"""tpflax layers inside ``flax.linen`` modules.

Inside a compact method, open ``tp.linen.layers(self, train)`` and call tpflax layers by
name, as in a tensorpack model; or wrap a whole tensorpack-style function in
``tp.linen.Model``. Variables live in the module's collections under tensorpack's full
names: trainable ones in ``'params'`` (``'conv0/W'``), EMA statistics in ``'batch_stats'``
(``'bn/mean/EMA'``), the flat names of a tensorpack ``.npz``, so
``tp.checkpoint.restore(path, variables['params'], variables['batch_stats'])`` loads one.

In training (``train=True``) BatchNorm updates ``'batch_stats'`` when the collection is
mutable (``apply(..., mutable=['batch_stats'])``), and Dropout draws from the ``'dropout'``
rng stream; argscope, variable scopes, LinearWrap and ``capture`` names work as in
``tp.transform``.

Example:
    >>> import flax.linen as nn, jax, jax.numpy as jnp, tpflax as tp
    >>> class Net(nn.Module):
    ...     @nn.compact
    ...     def __call__(self, x, train=False):
    ...         with tp.linen.layers(self, train):
    ...             x = tp.Conv2D('conv0', x, 4, 3, activation=tp.BNReLU)
    ...         return nn.Dense(2)(x.reshape(x.shape[0], -1))
    >>> variables = Net().init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
    >>> sorted(variables['params'])
    ['Dense_0', 'conv0/W', 'conv0/b', 'conv0/bn/beta', 'conv0/bn/gamma']
    >>> sorted(variables['batch_stats'])
    ['conv0/bn/mean/EMA', 'conv0/bn/variance/EMA']
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax

from tpflax._src.frame import Frame, Initializer, use_frame
from tpflax._src.shape_log import ShapeLogger
from tpflax._src.transform import check_training_flag, select_outputs

STATE = "batch_stats"


class _LinenBackend:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def get(
        self, name: str, shape: tuple[int, ...], init: Initializer, dtype: Any, trainable: bool
    ) -> Any:
        if trainable:
            return self.module.param(name, lambda key: init(key, shape, dtype))
        # state initializers (zeros/ones) take a key they do not use
        value = self.module.variable(
            STATE, name, lambda: init(jax.random.key(0), shape, dtype)
        ).value
        # A reused layer reads its state as the apply began, as in tp.transform, even after
        # an earlier call of it updated the collection (the bound module lives one apply).
        start = self.module.__dict__.setdefault("_tpflax_state_at_start", {})
        return start.setdefault(name, value)

    def _updating(self) -> bool:
        module = self.module
        # as tp.transform's init: the first call creates, it does not update
        return not module.is_initializing() and module.is_mutable_collection(STATE)

    def assign(self, name: str, value: Any) -> None:
        if self._updating():
            self.module.put_variable(STATE, name, value)

    def assign_sub(self, name: str, delta: Any) -> Any:
        value = self.module.get_variable(STATE, name) - delta
        self.assign(name, value)
        return value


@contextlib.contextmanager
def layers(module: nn.Module, train: bool = False) -> Iterator[Frame]:
    """Lets tpflax layers called inside this block keep their variables in ``module``.

    Args:
        module: the running ``flax.linen`` module (``self`` in a compact method).
        train: tensorpack's ``is_training`` for the block (BatchNorm statistics, Dropout).

    The layers' shapes are logged while flax initializes the module (``module.init``), as
    tensorpack logs them while it builds the graph; ``apply`` logs nothing.
    """
    train = check_training_flag(train, "tp.linen.layers", "train")
    rng = module.make_rng("dropout") if train and module.has_rng("dropout") else None
    # The shape log (and other once-per-model notes) while flax initializes the module, as
    # tensorpack logs while it builds the graph; an apply is silent. No state outlives the call.
    logger = ShapeLogger(enabled=module.is_initializing())
    frame = Frame(
        mode="linen",
        params={},
        state={},
        new_state={},
        is_training=train,
        rng=rng,
        shape_logger=logger,
        backend=_LinenBackend(module),
    )
    with use_frame(frame):
        yield frame


class Model(nn.Module):
    """A tensorpack-style model function as a ``flax.linen`` module.

    Attributes:
        fn: the model function (what you would pass to ``tp.transform``).

    Call it as ``Model(fn)(*inputs, train=False)``; with ``capture=[...]`` it returns
    ``(outputs, {name: array})`` (``tp.transform``'s ``apply`` returns ``(outputs,
    new_state, captured)``; here the new state is in the mutable collection).
    """

    fn: Callable[..., Any]

    @nn.compact
    def __call__(
        self, *inputs: Any, train: bool = False, capture: list[str] | None = None, **kwargs: Any
    ) -> Any:
        with layers(self, train) as frame:
            outputs = self.fn(*inputs, **kwargs)
        if capture is None:
            return outputs
        return outputs, select_outputs(frame.outputs, capture, "tp.linen.Model")
