"""A training progress bar (tqdm): cost, accuracy, images/s; off when not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


def make_bar(
    total: int,
    *,
    initial: int = 0,
    desc: str = "train",
    enabled: bool | None = None,
    unit: str = "step",
) -> Any:
    """A ``tqdm`` bar on stderr, disabled unless stderr is a terminal (``enabled=None``)."""
    from tqdm.auto import tqdm  # imported on use

    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
    )


class Throughput:
    """Images per second over the last window of steps."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.images = 0

    def add(self, images: int) -> None:
        self.images += images

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.images / elapsed if elapsed > 0 else 0.0
