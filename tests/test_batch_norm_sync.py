"""BatchNorm(sync_statistics=<axis>) over 4 simulated CPU devices (a subprocess, since the
device count is fixed when JAX starts): under shard_map and pmap it equals single-device
BatchNorm on the whole batch (outputs, EMA, gradients), and data-parallel training with it
gives the single-device gradients."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

# One test, so the 4-device subprocess runs once (xdist_group is not honoured by
# pytest-xdist 3.8 under pytest 9: parametrized cases would each start it).
CHECKS = ["shard_map layer", "pmap layer", "data-parallel gradients"]


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_sync_bn() -> None:
    script = pathlib.Path(__file__).with_name("sync_bn_script.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [c for c in CHECKS if f"OK {c}" not in lines] == []
