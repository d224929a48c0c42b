"""Training checkpoints with orbax's ``CheckpointManager``: the last N steps, and the best by
a metric. Each is a whole :class:`TrainState` (params, state, optimizer state, step, rng),
written atomically by orbax, so a killed run resumes from the last finished one exactly."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from tpflax.train._trainer import TrainState


def _ocp() -> Any:
    import orbax.checkpoint as ocp  # imported on use: it is slow to import

    return ocp


def _to_disk(ts: TrainState) -> dict[str, Any]:
    rng = ts.rng
    if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)  # orbax stores plain arrays
    return {
        "step": ts.step,
        "params": ts.params,
        "state": ts.state,
        "opt_state": ts.opt_state,
        "rng": rng,
    }


def _from_disk(tree: dict[str, Any], like: TrainState) -> TrainState:
    rng = tree["rng"]
    if jax.dtypes.issubdtype(like.rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.wrap_key_data(rng, impl=jax.random.key_impl(like.rng))
    restored = TrainState(tree["step"], tree["params"], tree["state"], tree["opt_state"], rng)
    # orbax gives back the tree it saved; keep the optimizer's own containers (NamedTuples)
    return jax.tree.unflatten(jax.tree.structure(like), jax.tree.leaves(restored))


class Checkpoints:
    """The checkpoints of one training run, in ``directory``.

    Steps live in ``directory/<step>`` (the last ``keep``); with ``best=`` the step with the
    best value of that metric is also kept in ``directory/best/<step>``.

    Args:
        directory: created if missing.
        keep: how many of the latest steps to keep.
        best: a metric name (e.g. ``'accuracy'``) to keep the best step by, or ``None``.
        best_mode: ``'max'`` or ``'min'``.
        async_save: let orbax write in the background (the next save, ``wait()`` and
            ``close()`` wait for it).

    Example:
        >>> import tempfile, jax, jax.numpy as jnp, optax, tpflax as tp
        >>> model = tp.transform(lambda x: jnp.mean(tp.FullyConnected('fc', x, 1) ** 2))
        >>> x = jnp.ones((2, 3))
        >>> trainer = tp.train.Trainer(model, optax.sgd(0.1))
        >>> ts = trainer.init(*model.init(jax.random.key(0), x), x, rng=jax.random.key(0))
        >>> ckpt = tp.train.Checkpoints(tempfile.mkdtemp(), keep=2)
        >>> ckpt.save(ts)
        >>> int(ckpt.restore(ts).step), ckpt.latest_step()
        (0, 0)
        >>> ckpt.close()
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        keep: int = 3,
        best: str | None = None,
        best_mode: str = "max",
        async_save: bool = True,
    ) -> None:
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"tp.train.Checkpoints: keep must be an int >= 1; got {keep!r}")
        if best_mode not in ("max", "min"):
            raise ValueError(
                f"tp.train.Checkpoints: best_mode must be 'max' or 'min'; got {best_mode!r}"
            )
        ocp = _ocp()
        self.directory = os.path.abspath(os.fspath(directory))
        self.best = best
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self._latest = ocp.CheckpointManager(self.directory, options=options)
        self._best = None
        if best is not None:
            best_options = ocp.CheckpointManagerOptions(
                max_to_keep=1,
                create=True,
                best_fn=lambda metrics: float(metrics[best]),
                best_mode=best_mode,
                enable_async_checkpointing=async_save,
            )
            self._best = ocp.CheckpointManager(
                os.path.join(self.directory, "best"), options=best_options
            )

    def save(self, ts: TrainState, metrics: dict[str, Any] | None = None) -> None:
        """Saves ``ts`` under its step (and as the best, when ``metrics[best]`` is)."""
        ocp = _ocp()
        step = int(ts.step)
        tree = _to_disk(ts)
        self._latest.save(step, args=ocp.args.StandardSave(tree))
        if self._best is not None:
            if metrics is None or self.best not in metrics:
                raise ValueError(
                    f"tp.train.Checkpoints.save: best={self.best!r} needs metrics with that key;"
                    f" got {sorted(metrics or {})}"
                )
            clean = {k: float(np.asarray(v)) for k, v in metrics.items()}
            self._best.save(step, args=ocp.args.StandardSave(tree), metrics=clean)

    def latest_step(self) -> int | None:
        """The last step saved completely, or ``None``."""
        return self._latest.latest_step()

    def best_step(self) -> int | None:
        """The step with the best metric, or ``None``."""
        return None if self._best is None else self._best.best_step()

    def restore(
        self, like: TrainState, step: int | None = None, *, best: bool = False
    ) -> TrainState:
        """The saved TrainState of ``step`` (default: the latest, or the best with
        ``best=True``), with the structure, shapes and dtypes of ``like``."""
        ocp = _ocp()
        manager = self._latest
        if best:
            if self._best is None:
                raise ValueError("tp.train.Checkpoints.restore: best=True needs best=<metric>")
            manager = self._best
        if step is None:
            step = manager.best_step() if best else manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"tp.train.Checkpoints: no checkpoint in {manager.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _to_disk(like))
        tree = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return _from_disk(tree, like)

    def wait(self) -> None:
        """Waits for background saves to finish."""
        self._latest.wait_until_finished()
        if self._best is not None:
            self._best.wait_until_finished()

    def close(self) -> None:
        """Waits for background saves, then closes orbax's checkpoint managers; no save
        after this."""
        self.wait()
        self._latest.close()
        if self._best is not None:
            self._best.close()
