"""tp.train over a Mesh of 8 simulated CPU devices equals single-device training on the whole
batch (a subprocess: the device count is fixed when JAX starts)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.xdist_group("data_parallel")


@pytest.fixture(scope="module")
def script_output() -> str:
    script = pathlib.Path(__file__).with_name("data_parallel_script.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout


@pytest.mark.parametrize(
    "check",
    [
        "1 step(s): 8 devices == 1 device",
        "3 step(s): 8 devices == 1 device",
        "8 devices == plain single-device training",
    ],
)
def test_data_parallel(script_output: str, check: str) -> None:
    assert f"OK {check}" in script_output.splitlines()
