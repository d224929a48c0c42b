"""tpflax/_src/host_memory.py and csrc/host_blocks.cc: XLA:CPU's large freed host buffers are
kept for the next call, so repeated calls stop faulting their pages in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tpflax._src import host_memory

# A jitted op with two 64 MB outputs, called repeatedly with the cache on, then switched off:
# for each, the minor page faults per call, the cache's counters, and a checksum of every
# result.
SCRIPT = """
import json, resource
import tpflax
import jax, jax.numpy as jnp
import numpy as np
from tpflax._src import host_memory
x = jnp.arange(16 * 2**20, dtype=jnp.float32)
f = jax.jit(lambda x, i: (x * i + 1, x - i))
out = {"status": host_memory.describe()}
for on in (True, False):
    host_memory.set_enabled(on)
    for i in range(3):
        jax.block_until_ready(f(x, i))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    sums = []
    for i in range(10):
        a, b = jax.block_until_ready(f(x, i))
        sums.append([float(jnp.sum(a[::4096])), float(jnp.sum(b[::4096]))])
        del a, b
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    out[on] = {"faults": faults, "sums": sums, **host_memory.stats()}
print(json.dumps(out))
"""


@pytest.mark.skipif(not host_memory.installed(), reason=host_memory.describe())
def test_the_cache_stops_the_page_faults_and_keeps_every_value():
    env = {k: v for k, v in os.environ.items() if k != "TPFLAX_HOST_CACHE_MB"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    got = json.loads(done.stdout.splitlines()[-1])
    on, off = got["true"], got["false"]
    assert got["status"].startswith("XLA's freed blocks from 1 MiB kept for reuse"), got
    # 64 MB is 16,384 pages of 4 KiB: without the cache glibc maps both outputs afresh
    assert off["faults"] > 30_000 and off["kept"] == 0, off
    assert on["faults"] < 4_000 and on["hits"] >= 20, on
    assert off["hits"] == on["hits"]  # switched off, it serves nothing
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
