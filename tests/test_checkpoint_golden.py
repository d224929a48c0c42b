"""Weight files from real tensorpack (tools/golden/weights.py): a TF checkpoint written by
tensorpack's trainer and ModelSaver, its dump-model-params .npz, and tensorpack restoring the
files tpflax wrote back."""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from weights_model import SHAPE, net

import tpflax as tp

WEIGHTS = pathlib.Path(__file__).parent / "golden" / "weights"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint as TensorFlow's own reader returned it."""
    with np.load(WEIGHTS / "reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize(
    "where",
    ["model-3", "model-3.index", "model-3.data-00000-of-00001", ".", "checkpoint"],
)
def test_tf_checkpoint_reads_like_tensorflow(reference, where) -> None:
    flat = tp.checkpoint.load(str(WEIGHTS / where))
    assert sorted(flat) == sorted(reference)
    assert "conv0/W/Momentum" in flat and "global_step" in flat
    for name, want in reference.items():
        assert flat[name].dtype == want.dtype and flat[name].shape == want.shape, name
        np.testing.assert_array_equal(flat[name], want, err_msg=name)


def test_dumped_npz_equals_the_checkpoint(reference) -> None:
    npz = tp.checkpoint.load(str(WEIGHTS / "model-3.npz"))
    assert sorted(npz) == sorted(n for n in reference if not tp.checkpoint.is_training_name(n))
    for name, value in npz.items():
        np.testing.assert_array_equal(value, reference[name], err_msg=name)


def test_restore_from_the_training_checkpoint_skips_slots(reference) -> None:
    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.zeros(SHAPE))
    params, state, report = tp.checkpoint.restore(str(WEIGHTS / "model-3"), params, state)
    assert sorted(report.skipped) == sorted(
        n for n in reference if n.endswith("/Momentum") or n == "global_step"
    )
    assert report.unexpected == [] and report.missing == []
    np.testing.assert_array_equal(state["bn"]["mean"]["EMA"], reference["bn/mean/EMA"])


def test_tensorpack_restores_tpflax_files_and_agrees() -> None:
    """tensorpack's SmartInit loaded tpflax's .npz and TF checkpoint with no warning, and its
    inference logits equal tpflax's with the same weights."""
    with np.load(WEIGHTS / "roundtrip.npz") as data:
        record = {k: data[k] for k in data.files}
    assert json.loads(str(record["warnings"])) == []
    assert bool(record["tf_reader_matches_npz"])
    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.zeros(SHAPE))
    params, state, _ = tp.checkpoint.restore(str(WEIGHTS / "tpflax-export.npz"), params, state)
    logits, _ = model.apply(params, state, jnp.asarray(record["image"]))
    scale = float(np.max(np.abs(record["logits_npz"])))
    np.testing.assert_allclose(logits, record["logits_npz"], atol=1e-5 * scale)
    np.testing.assert_allclose(logits, record["logits_tf"], atol=1e-5 * scale)


def test_many_variables_written_by_tensorflows_saver() -> None:
    """241 variables saved by TensorFlow's own Saver: prefix-compressed keys, restarts."""
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tools" / "golden"))
    from weights_values import many_values

    want = many_values()
    flat = tp.checkpoint.load(str(WEIGHTS / "many"))
    assert sorted(flat) == sorted(want)
    for name, value in want.items():
        assert flat[name].dtype == value.dtype
        np.testing.assert_array_equal(flat[name], value, err_msg=name)
