"""tp.train over a Mesh of 8 simulated CPU devices equals single-device training on the whole
batch (a subprocess: the device count is fixed when JAX starts)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

CHECKS = [
    "2 step(s): 8 devices == 1 device",
    "8 devices == plain single-device training",
]


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_data_parallel() -> None:
    """One test, so the 8-device subprocess runs once."""
    script = pathlib.Path(__file__).with_name("data_parallel_script.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert [c for c in CHECKS if f"OK {c}" not in lines] == []
