"""tpflax/_src/host_memory.py and csrc/host_blocks.cc: XLA:CPU's large freed host buffers are
kept for the next call, so repeated calls stop faulting their pages in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tpflax._src import host_memory

# A jitted op with two 64 MB outputs, called repeatedly: the minor page faults of the last
# calls, the cache's counters, and a checksum of every result.
SCRIPT = """
import json, resource
import tpflax
import jax, jax.numpy as jnp
import numpy as np
from tpflax._src import host_memory
x = jnp.arange(16 * 2**20, dtype=jnp.float32)
f = jax.jit(lambda x, i: (x * i + 1, x - i))
for i in range(5):
    jax.block_until_ready(f(x, i))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
sums = []
for i in range(10):
    a, b = jax.block_until_ready(f(x, i))
    sums.append([float(np.asarray(a, np.float64).sum()), float(np.asarray(b, np.float64).sum())])
    del a, b
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"status": host_memory.describe(), "faults": faults, "sums": sums,
                  **host_memory.stats()}))
"""


def _run(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "TPFLAX_HOST_CACHE_MB"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**base, **env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(
    not host_memory.describe().startswith("XLA's freed blocks"), reason=host_memory.describe()
)
def test_the_cache_stops_the_page_faults_and_keeps_every_value():
    on, off = _run(), _run(TPFLAX_HOST_CACHE_MB="0")
    assert off["status"] == "glibc's (TPFLAX_HOST_CACHE_MB=0)" and off["hits"] == 0
    # 64 MB is 16,384 pages of 4 KiB: glibc maps both outputs afresh each call
    assert off["faults"] > 30_000, off
    assert on["faults"] < 4_000 and on["hits"] >= 20 and on["kept"] > 0, on
    # reused blocks give the same results as glibc's fresh pages
    assert on["sums"] == off["sums"]


def test_capacity_setting():
    assert host_memory.capacity_bytes(None, 8 << 30) == 1 << 30
    assert host_memory.capacity_bytes("", 8 << 30) == 1 << 30
    assert host_memory.capacity_bytes("512", 8 << 30) == 512 << 20
    assert host_memory.capacity_bytes("0", 8 << 30) == 0
    for bad in ("-1", "1.5", "lots"):
        with pytest.raises(ValueError, match="TPFLAX_HOST_CACHE_MB: expected a whole number"):
            host_memory.capacity_bytes(bad, 8 << 30)
