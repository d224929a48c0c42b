"""``fit``: the training loop, about twenty lines a user could write; resumable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from tpflax._src.progress import make_bar
from tpflax.train._checkpoints import Checkpoints
from tpflax.train._events import EventWriter, StatsWriter
from tpflax.train._gan import GANTrainer
from tpflax.train._trainer import Trainer, TrainState

Batch = tuple[Any, ...]
log = logging.getLogger("tpflax")


class _Throughput:
    """Images per second since the loop started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.images = 0

    def add(self, images: int) -> None:
        self.images += images

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.images / elapsed if elapsed > 0 else 0.0


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics as floats (images and histograms left out)."""
    return {k: float(np.asarray(v)) for k, v in metrics.items() if np.ndim(v) == 0}


class _Logs:
    """TensorBoard events and tensorpack's ``stats.json`` in ``logdir``, every ``every``
    steps: the scalar metrics, and the summaries' images and histograms."""

    def __init__(self, logdir: str, every: int) -> None:
        self.events, self.stats, self.every = EventWriter(logdir), StatsWriter(logdir), every

    def step(self, done: int, steps: int, metrics: dict[str, Any]) -> None:
        if done % self.every and done != steps:
            return
        scalars = _floats(metrics)
        others = {k: np.asarray(v) for k, v in metrics.items() if k not in scalars}
        self.events.write(done, {**scalars, **others})
        self.stats.write(done, scalars)

    def close(self) -> None:
        self.events.close()


def fit(
    trainer: Trainer | GANTrainer,
    ts: TrainState,
    data: Callable[[int], Batch],
    steps: int,
    *,
    checkpoints: Checkpoints | None = None,
    save_every: int = 100,
    evaluate: Callable[[TrainState], dict[str, Any]] | None = None,
    progress: bool | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    logdir: str | None = None,
    log_every: int = 100,
) -> tuple[TrainState, list[dict[str, float]]]:
    """Trains until ``ts.step == steps``, resuming from ``checkpoints`` when they hold a
    later step than ``ts`` (logged once: "resumed from step N").

    Args:
        trainer: the compiled steps (a :class:`Trainer` or a :class:`GANTrainer`, whose
            steps are TF's ``global_step``: one per update with ``separate=True``).
        ts: the starting state (from ``trainer.init``); also the template to restore into.
        data: ``data(step) -> batch``, e.g. :func:`tp.train.epoch_batches`. A function of
            the step, so a resumed run gets the same batches.
        steps: the total number of steps (not the number still to do).
        checkpoints: save every ``save_every`` steps and at the end; resume from the latest.
        save_every: steps between checkpoints.
        evaluate: ``evaluate(ts) -> metrics`` at each checkpoint (the best is kept by one).
        progress: show a bar (tqdm): cost (a GAN's ``d_loss`` and ``g_loss``), accuracy when
            the metrics have it, images/s.
            ``None``: only on a terminal.
        on_step: called as ``on_step(step, metrics)`` after every step.
        logdir: write the metrics every ``log_every`` steps (and at the end) as TensorBoard
            events (``events.out.tfevents.*``: scalars, the model's image and histogram
            summaries) and as tensorpack's ``stats.json``, keyed by the step count. No
            TensorFlow or TensorBoard package is needed to write them.
        log_every: steps between logs.

    Returns:
        ``(final TrainState, history)``: one ``{metric: float}`` per step run in this call
        (``'step'`` included).
    """
    if checkpoints is not None:
        latest = checkpoints.latest_step()
        if latest is not None and latest > int(ts.step):
            ts = checkpoints.restore(ts)
            log.info("resumed from step %d (%s)", int(ts.step), checkpoints.directory)
    start = int(ts.step)
    history: list[dict[str, float]] = []
    bar = make_bar(steps, desc="train", initial=start, enabled=progress)
    logs = None if logdir is None else _Logs(logdir, log_every)
    speed = _Throughput()
    try:
        for step in range(start, steps):
            batch = data(step)
            ts, metrics = trainer.step(ts, *batch)
            values = {"step": float(step), **_floats(metrics)}
            history.append(values)
            speed.add(int(jax.tree.leaves(batch)[0].shape[0]))
            if on_step is not None:
                on_step(step, values)
            postfix: dict[str, str] = {
                name: f"{values[name]:.4f}"
                for name in ("cost", "d_loss", "g_loss")
                if name in values
            }
            for name in ("accuracy", "acc"):
                if name in values:
                    postfix[name] = f"{values[name]:.3f}"
            postfix["img/s"] = f"{speed.rate():.0f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            done = step + 1
            if logs is not None:
                logs.step(done, steps, metrics)
            if checkpoints is not None and (done % save_every == 0 or done == steps):
                checkpoints.save(ts, None if evaluate is None else _floats(evaluate(ts)))
    finally:
        bar.close()
        if logs is not None:
            logs.close()
        if checkpoints is not None:
            checkpoints.wait()
    return ts, history
