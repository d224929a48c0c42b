"""Replacing a TensorFlow checkpoint never loses it: SIGKILL at random moments of a save
leaves the old or the new checkpoint, whole; a reader running beside a writer gets one or the
other, never a corrupt one; leftovers of killed saves go with the next save; TensorFlow's own reader
reads both shard layouts (`make test-tf`, needs .venv-golden)."""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np
import pytest
from save_races import kill_mid_save, read_beside_writer

import tpflax as tp
from tpflax.checkpoint import save_tf_checkpoint

SCRIPT = pathlib.Path(__file__).with_name("tf_save_script.py")
NAMES = [f"layer{i}/W" for i in range(6)]


def _whole(prefix: str) -> float:
    """The checkpoint's one value; fails unless it is complete and consistent."""
    flat = tp.checkpoint.load(prefix)
    assert sorted(flat) == NAMES
    values = {float(v.flat[0]) for v in flat.values()}
    assert len(values) == 1 and all(np.all(v == v.flat[0]) for v in flat.values())
    return values.pop()


def test_repeated_saves_alternate_shards_and_clean_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    prefix = "model-1"  # a relative prefix, as users write them
    for n in range(3):
        save_tf_checkpoint(prefix, {"w": np.full(3, float(n), np.float32)})
        names = sorted(os.listdir(tmp_path))
        shards = [f for f in names if ".data-" in f]
        assert shards == (
            ["model-1.data-00000-of-00001"]
            if n % 2 == 0
            else ["model-1.data-00000-of-00002", "model-1.data-00001-of-00002"]
        )
        np.testing.assert_array_equal(tp.checkpoint.load(prefix)["w"], float(n))
    (tmp_path / ".model-1.index.abc.tmp").write_bytes(b"left by a killed save")
    save_tf_checkpoint(prefix, {"w": np.zeros(3, np.float32)})
    assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path))


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_sigkill_during_saves_never_loses_the_checkpoint(tmp_path) -> None:
    prefix = str(tmp_path / "model-7")
    save_tf_checkpoint(prefix, {n: np.full((1000, 1000), 1.0, np.float32) for n in NAMES})
    kill_mid_save(SCRIPT, prefix, lambda: _whole(prefix) in (0.0, 1.0), rounds=4, max_delay=0.25)


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_a_reader_beside_a_writer_sees_whole_checkpoints(tmp_path) -> None:
    prefix = str(tmp_path / "model-3")
    save_tf_checkpoint(prefix, {n: np.full((1000, 1000), 1.0, np.float32) for n in NAMES})
    values = read_beside_writer(SCRIPT, prefix, lambda: _whole(prefix), seconds=3)
    assert set(values) <= {0.0, 1.0}
    assert len(values) >= 5


GOLDEN_PYTHON = pathlib.Path(__file__).parents[1] / ".venv-golden" / "bin" / "python"


@pytest.mark.tensorflow
def test_tensorflow_reads_both_shard_layouts(tmp_path) -> None:
    """TensorFlow's own reader (tf.train.load_checkpoint, in .venv-golden) reads what the
    first save writes (one shard) and what the second writes over it (two, one empty)."""
    if not GOLDEN_PYTHON.exists():
        pytest.skip(".venv-golden is absent (make golden creates it)")
    prefix = str(tmp_path / "model-1")
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "r = tf.train.load_checkpoint(sys.argv[1])\n"
        "print(sorted(r.get_variable_to_shape_map()), float(r.get_tensor('layer0/W').flat[0]))\n"
    )
    for n in range(2):
        save_tf_checkpoint(prefix, {name: np.full((3, 2), float(n), np.float32) for name in NAMES})
        shards = sorted(p.name for p in tmp_path.glob("model-1.data-*"))
        assert len(shards) == n + 1
        done = subprocess.run(
            [str(GOLDEN_PYTHON), "-c", script, prefix],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            check=True,
        )
        assert done.stdout.strip() == f"{NAMES} {float(n)}"
