"""Test settings: rank promotion raises, warnings are errors (pyproject), fixtures paths."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import pathlib

# JAX's "rbg" generator for the suite, and for the scripts tests start (a killed run resumed,
# data parallel): see below.
os.environ["JAX_DEFAULT_PRNG_IMPL"] = "rbg"
# XLA:CPU compiles faster for the suite and the scripts it starts: without LLVM's most
# expensive passes, and with XLA's elemental emitters for fusions instead of its newer MLIR
# ones. Most tests compile small programs and run them once, so compiling is most of their
# time (a conv/BatchNorm gradient: 176-250 ms a compile with XLA's defaults, 112-150 ms so).
# The whole suite ran in 203-213 s against 272 s. No fast-math either way; the emitters may
# sum a reduction in another order (float rounding: test_compat_ops compares sums on the
# scale of their terms), and every test passes both ways. Benchmarks and users keep XLA's
# defaults. `XLA_FLAGS= make test` runs the suite on XLA's defaults: any XLA_FLAGS a caller
# sets, even empty, is used instead. jaxlib 0.11 no longer has the emitter switch (seen with
# 0.11.2) and XLA aborts at start on a flag it does not know, so the switch is set only for the
# jaxlib that has it (read from the installed metadata: JAX is not imported yet).
if "XLA_FLAGS" not in os.environ:
    flags = ["--xla_llvm_disable_expensive_passes=true"]
    jaxlib = importlib.metadata.version("jaxlib").split(".")
    if (int(jaxlib[0]), int(jaxlib[1])) < (0, 11):
        flags.append("--xla_cpu_use_fusion_emitters=false")
    os.environ["XLA_FLAGS"] = " ".join(flags)

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# JAX's "rbg" generator for the suite: a model's init compiles in half the time of the default
# threefry's (ResNet-18: 4 s against 8 s), which keeps make test in its 5 minutes. No test
# depends on the bits drawn (initializers are pinned by their statistics), only on both sides
# of a comparison drawing alike (hence the environment variable above, which the scripts tests
# start inherit); users keep JAX's default.
jax.config.update("jax_default_prng_impl", "rbg")

# Tests read tpflax's records with caplog (a root handler): send them to the root logger, as an
# application does that routes them into its own logging (tests/test_logging.py checks the
# default, printing behaviour in a fresh interpreter).
_tpflax_log = logging.getLogger("tpflax")
import tpflax  # noqa: E402,F401  (installs the default handler, which is then removed)

_tpflax_log.handlers.clear()
_tpflax_log.propagate = True

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


# Run only in a subprocess (it sets XLA_FLAGS before importing jax).
collect_ignore = [
    "sync_bn_script.py",
    "data_parallel_script.py",
    "train_resume_script.py",
    "tf_save_script.py",
    "orbax_save_script.py",
]
