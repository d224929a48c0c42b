"""BatchNorm(sync_statistics=<axis>) under shard_map over 4 simulated CPU devices equals
single-device BatchNorm on the whole batch: outputs, EMA and gradients."""

from __future__ import annotations

import pathlib
import subprocess
import sys


def test_sync_bn_equals_one_big_batch() -> None:
    script = pathlib.Path(__file__).with_name("sync_bn_script.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SYNC-BN-OK" in result.stdout
