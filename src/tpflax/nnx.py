"""tpflax models as Flax NNX modules.

``tp.nnx.Model(fn, *example_inputs, rngs=nnx.Rngs(0))`` builds a tensorpack-style model
function (or a single tpflax layer, ``lambda x: tp.Conv2D('conv0', x, 8, 3)``) as an
``nnx.Module``: trainable variables are ``nnx.Param`` in ``model.params``, EMA statistics
``nnx.BatchStat`` in ``model.batch_stats``, both keyed by tensorpack's full names
(``'conv0/W'``, ``'bn/mean/EMA'``), the flat names of a tensorpack ``.npz``. It runs
``tp.transform``'s ``apply``, so outputs, state updates and gradients are the same numbers.
``nnx.jit``, ``nnx.split``/``nnx.merge``, ``nnx.state`` and ``nnx.Optimizer(model, tx,
wrt=nnx.Param)`` work as with any NNX module.

Example:
    >>> import jax.numpy as jnp, optax, tpflax as tp
    >>> from flax import nnx
    >>> def net(x):
    ...     return tp.FullyConnected('fc', tp.BatchNorm('bn', x), 2)
    >>> model = tp.nnx.Model(net, jnp.ones((4, 3)), rngs=nnx.Rngs(0))
    >>> sorted(model.params), sorted(model.batch_stats)
    (['bn/beta', 'bn/gamma', 'fc/W', 'fc/b'], ['bn/mean/EMA', 'bn/variance/EMA'])
    >>> model(jnp.ones((4, 3)), train=True).shape  # updates bn/mean/EMA in place
    (4, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
from flax import nnx

from tpflax._src.transform import transform
from tpflax._src.tree import flatten, nest
from tpflax.checkpoint import RestoreReport, restore


class Model(nnx.Module):
    """A tensorpack-style model function as an NNX module.

    Args:
        fn: the model function (what you would pass to ``tp.transform``).
        *example_inputs: inputs to build the variables from (shapes and dtypes matter).
        rngs: ``nnx.Rngs``; its ``params`` stream initializes the variables, its ``dropout``
            stream (when present) feeds Dropout in training.
        is_training: the mode to build in (as ``init``'s).
        **kwargs: passed to ``fn`` when building.

    Attributes:
        params: ``nnx.Dict`` of ``nnx.Param``, by tensorpack name.
        batch_stats: ``nnx.Dict`` of ``nnx.BatchStat``, by tensorpack name.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *example_inputs: Any,
        rngs: nnx.Rngs,
        is_training: bool = False,
        **kwargs: Any,
    ) -> None:
        self.transformed = transform(fn)
        params, state = self.transformed.init(
            rngs.params(), *example_inputs, is_training=is_training, **kwargs
        )
        self.params = nnx.Dict({k: nnx.Param(v) for k, v in flatten(params).items()})
        self.batch_stats = nnx.Dict({k: nnx.BatchStat(v) for k, v in flatten(state).items()})
        self.rngs = rngs

    def trees(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(params, state)`` as ``tp.transform``'s nested trees (views of the values)."""
        params = nest({k: v.get_value() for k, v in self.params.items()})
        state = nest({k: v.get_value() for k, v in self.batch_stats.items()})
        return params, state

    def __call__(
        self,
        *inputs: Any,
        train: bool = False,
        capture: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Runs the model; in training BatchNorm's EMA is written back to ``batch_stats``.

        Returns:
            The model's outputs, or ``(outputs, {name: array})`` with ``capture``.
        """
        params, state = self.trees()
        rng = None
        if train and "dropout" in self.rngs:
            rng = self.rngs.dropout()
        result = self.transformed.apply(
            params, state, *inputs, is_training=train, rng=rng, capture=capture, **kwargs
        )
        outputs, new_state = result[0], result[1]
        if train:
            for name, value in flatten(new_state).items():
                self.batch_stats[name].set_value(value)
        return outputs if capture is None else (outputs, result[2])

    def restore(self, source: Any, **options: Any) -> RestoreReport:
        """Loads weights by tensorpack name, as ``tp.checkpoint.restore`` (a file path, a
        dict of arrays, or a nested tree; the same options), into this module in place."""
        params, state = self.trees()
        params, state, report = restore(source, params, state, **options)
        for name, value in flatten(params).items():
            self.params[name].set_value(jax.numpy.asarray(value))
        for name, value in flatten(state).items():
            self.batch_stats[name].set_value(jax.numpy.asarray(value))
        return report
