"""Replacing an orbax checkpoint (``save_orbax(..., overwrite=True)``) never loses it: SIGKILL
at random moments, or a full disk, leaves the old or the new checkpoint, whole; a reader
running beside a writer gets one or the other, never a mix or an error; leftovers of killed
saves go with the next save."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from orbax_save_script import NAMES, params
from save_races import kill_mid_save, read_beside_writer, writer

import tpflax as tp
from tpflax.checkpoint import save_orbax

SCRIPT = pathlib.Path(__file__).with_name("orbax_save_script.py")


def _whole(path: str) -> float:
    """Which of params(0.0) and params(1.0) the checkpoint holds; fails for anything else."""
    flat = tp.checkpoint.load(path)
    for value in (0.0, 1.0):
        want = tp.checkpoint.flatten(params(value))
        if sorted(flat) == sorted(want) and all(np.array_equal(flat[k], want[k]) for k in want):
            return value
    raise AssertionError(f"{path} holds neither checkpoint")


def test_overwrite_switches_atomically_and_cleans_up(tmp_path) -> None:
    path = str(tmp_path / "ckpt")
    save_orbax(path, params(1.0), {})
    (tmp_path / "ckpt.tpflax-tmp-left").mkdir()  # as a killed save leaves it
    save_orbax(path, params(0.0), {}, overwrite=True)
    assert os.listdir(tmp_path) == ["ckpt"]
    assert _whole(path) == 0.0


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_sigkill_during_overwrites_never_loses_the_checkpoint(tmp_path) -> None:
    """One test, not several: each kill must land at a different moment of a save."""
    path = str(tmp_path / "ckpt")
    save_orbax(path, params(1.0), {})
    kill_mid_save(SCRIPT, path, lambda: _whole(path) in (0.0, 1.0), rounds=4, max_delay=0.4)
    save_orbax(path, params(0.0), {}, overwrite=True)
    assert os.listdir(tmp_path) == ["ckpt"]  # the next save removed every leftover


# A read that the exchange interrupts is started again; orbax's abandoned background reads
# then report "Event loop is closed" as unraisable exceptions, which are noise here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_a_reader_beside_a_writer_sees_whole_checkpoints(tmp_path) -> None:
    path = str(tmp_path / "ckpt")
    save_orbax(path, params(1.0), {})
    seen = set(read_beside_writer(SCRIPT, path, lambda: _whole(path), seconds=3))
    assert seen == {0.0, 1.0}  # both seen: the reads really overlapped the saves


@pytest.mark.slow  # a stress run in a subprocess (~6 s): make test-slow
def test_a_file_size_limit_mid_save_keeps_the_old_checkpoint(tmp_path) -> None:
    """RLIMIT_FSIZE makes every write past 100 KB fail (EFBIG), like a full disk."""
    path = str(tmp_path / "ckpt")
    save_orbax(path, params(1.0), {})
    proc = writer(SCRIPT, path, str(100_000))
    proc.communicate(timeout=120)
    assert proc.returncode != 0, "the save should have failed"
    assert _whole(path) == 1.0


def _tmpfs(where: pathlib.Path, size: str) -> bool:
    where.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's
def test_a_full_disk_keeps_the_old_checkpoints(tmp_path) -> None:
    """A real full disk: a small tmpfs (skipped where mounting one is not allowed) holding
    one orbax checkpoint and one TF checkpoint; replacing either cannot fit."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "6m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = str(disk / "ckpt")
        save_orbax(path, params(1.0), {})
        big = np.random.RandomState(0).rand(1000, 1000).astype(np.float32)  # incompressible
        with pytest.raises(Exception, match="No space left on device"):
            save_orbax(path, {n: {"W": big} for n in NAMES}, {}, overwrite=True)
        assert _whole(path) == 1.0
        assert os.listdir(disk) == ["ckpt"]
        shutil.rmtree(path)
        prefix = str(disk / "model")
        tp.checkpoint.save_tf_checkpoint(prefix, {"w": np.ones((500, 500), np.float32)})
        with pytest.raises(OSError):
            tp.checkpoint.save_tf_checkpoint(prefix, {"w": np.zeros((2000, 1000), np.float32)})
        # the failed save's half-written shard is removed; the old files are untouched
        assert sorted(os.listdir(disk)) == [
            "checkpoint",
            "model.data-00000-of-00001",
            "model.index",
        ]
        np.testing.assert_array_equal(tp.checkpoint.load(prefix)["w"], 1.0)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
