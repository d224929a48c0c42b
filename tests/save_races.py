"""Races between a save running in a subprocess (a script that saves over one checkpoint again
and again, printing a line after each save) and this process: SIGKILL at random moments, and
reads looping beside the writer. Shared by the TF and orbax atomicity tests."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def writer(script: pathlib.Path, path: str, *extra: str) -> subprocess.Popen:
    """Starts ``script path *extra`` with its output piped (stderr too: library noise)."""
    return subprocess.Popen(
        [sys.executable, str(script), path, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_mid_save(
    script: pathlib.Path, path: str, check: Callable[[], bool], rounds: int, max_delay: float
) -> None:
    """``rounds`` times: start the writer, wait for its first save (the next ones are then in
    flight), SIGKILL it after a random delay up to ``max_delay`` seconds; ``check()`` must then
    hold."""
    rng = random.Random(0)
    for _ in range(rounds):
        proc = writer(script, path)
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, max_delay))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert check(), f"{path} after a SIGKILL mid-save"


def read_beside_writer(
    script: pathlib.Path, path: str, read: Callable[[], T], seconds: float
) -> list[T]:
    """Every result of ``read()`` called in a loop for ``seconds`` while the writer saves."""
    proc = writer(script, path)
    results = []
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the writer is saving from here on
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            results.append(read())
    finally:
        proc.kill()
        proc.communicate()
    return results
