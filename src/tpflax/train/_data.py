"""Batches as a pure function of the step, so a resumed run sees the same data."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np


def epoch_batches(
    *arrays: Any, batch_size: int, seed: int = 0
) -> Callable[[int], tuple[np.ndarray, ...]]:
    """``batch(step)``: the ``step``-th batch of passes over ``arrays``, reshuffled every
    epoch from ``(seed, epoch)``. It depends on nothing but ``step``, so training that is
    killed and resumed at step ``k`` sees exactly the batches an uninterrupted run does.
    The last incomplete batch of an epoch is dropped (tensorpack's ``BatchData`` default).

    Example:
        >>> import numpy as np, tpflax as tp
        >>> batch = tp.train.epoch_batches(np.arange(10), batch_size=4, seed=0)
        >>> [len(batch(i)[0]) for i in range(3)]
        [4, 4, 4]
    """
    if not arrays:
        raise ValueError("tp.train.epoch_batches: pass at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        lengths = [len(a) for a in arrays]
        raise ValueError(f"tp.train.epoch_batches: arrays differ in length: {lengths}")
    if not isinstance(batch_size, int) or not 0 < batch_size <= n:
        raise ValueError(
            f"tp.train.epoch_batches: batch_size must be an int in [1, {n}]; got {batch_size!r}"
        )
    per_epoch = n // batch_size

    @functools.lru_cache(maxsize=2)
    def order(epoch: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(n)

    def batch(step: int) -> tuple[np.ndarray, ...]:
        epoch, i = divmod(int(step), per_epoch)
        idx = order(epoch)[i * batch_size : (i + 1) * batch_size]
        return tuple(np.asarray(a)[idx] for a in arrays)

    return batch
