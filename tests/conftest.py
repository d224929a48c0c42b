"""Test settings: rank promotion raises, warnings are errors (pyproject), fixtures paths."""

from __future__ import annotations

import pathlib

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


# Run only in a subprocess (it sets XLA_FLAGS before importing jax).
collect_ignore = ["sync_bn_script.py", "data_parallel_script.py", "train_resume_script.py"]
