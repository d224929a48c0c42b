"""BatchNorm(sync_statistics=<axis>) over 4 simulated CPU devices (a subprocess, since the
device count is fixed when JAX starts): under shard_map and pmap it equals single-device
BatchNorm on the whole batch (outputs, EMA, gradients), and data-parallel training with it
gives the single-device gradients."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

# One worker runs the 4-device subprocess once for all three checks (pytest-xdist).
pytestmark = pytest.mark.xdist_group("sync_bn")


@pytest.fixture(scope="module")
def script_output() -> str:
    script = pathlib.Path(__file__).with_name("sync_bn_script.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("check", ["shard_map layer", "pmap layer", "data-parallel gradients"])
def test_sync_bn(script_output: str, check: str) -> None:
    assert f"OK {check}" in script_output.splitlines()
