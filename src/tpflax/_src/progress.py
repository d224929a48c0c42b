"""Progress bars (tqdm) for training and for loading large checkpoints: on stderr, and only
when that stream is a terminal."""

from __future__ import annotations

import sys
from typing import Any


def make_bar(
    total: int,
    *,
    desc: str,
    initial: int = 0,
    unit: str = "step",
    enabled: bool | None = None,
    stream: Any = None,
    bytes_: bool = False,
) -> Any:
    """A ``tqdm`` bar; ``enabled=None`` shows it only when ``stream`` (stderr) is a
    terminal. ``bytes_=True`` counts bytes (shown as MB/GB)."""
    from tqdm.auto import tqdm  # imported on use

    stream = stream if stream is not None else sys.stderr
    if enabled is None:
        enabled = bool(getattr(stream, "isatty", lambda: False)())
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B" if bytes_ else unit,
        unit_scale=bytes_,
        unit_divisor=1024 if bytes_ else 1000,
        file=stream,
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
    )
