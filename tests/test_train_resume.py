"""Killed (SIGKILL, a real subprocess) and restarted, tp.train.fit resumes from the last
checkpoint and the cost curve after the resume equals the uninterrupted run's bit for bit,
and so do the final params and state."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).with_name("train_resume_script.py")


def _run(ckpt: pathlib.Path, log: pathlib.Path) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(ckpt), str(log)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def _lines(log: pathlib.Path) -> list[str]:
    return log.read_text().splitlines()


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_killed_run_resumes_bit_for_bit(tmp_path: pathlib.Path, monkeypatch) -> None:
    # the uninterrupted reference runs in this process (the same script, the same XLA)
    import train_resume_script

    monkeypatch.setattr(sys, "argv", ["", str(tmp_path / "ref_ckpt"), str(tmp_path / "ref.log")])
    train_resume_script.main()
    reference = _lines(tmp_path / "ref.log")
    assert len(reference) == 30

    ckpt, log = tmp_path / "ckpt", tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(ckpt), str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill it mid-run, past a checkpoint or two
        if log.exists() and len(_lines(log)) >= 17:
            break
        if proc.poll() is not None:
            pytest.fail("the training script ended before it could be killed")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(_lines(log))
    assert 17 <= killed_at < 30, killed_at

    stderr = _run(ckpt, log)
    lines = _lines(log)
    before, after = lines[:killed_at], lines[killed_at:]
    assert before == reference[:killed_at]
    resumed_from = int(after[0].split()[0])
    assert resumed_from % 5 == 0 and resumed_from < killed_at  # the last checkpoint
    # said once, on tpflax's own log handler (as a user's run prints it)
    assert stderr.count("resumed from step") == 1, stderr[-3000:]
    assert f"[tpflax] resumed from step {resumed_from} ({ckpt})" in stderr, stderr[-3000:]
    assert after == reference[resumed_from:]  # the same costs, to the last bit
    with (
        np.load(str(tmp_path / "ref.log") + ".final.npz") as want,
        np.load(str(log) + ".final.npz") as got,
    ):
        assert sorted(want.files) == sorted(got.files)
        for name in want.files:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_fit_says_once_that_it_resumed(tmp_path: pathlib.Path, caplog) -> None:
    """Issue 18: fit resumed from an existing checkpoint directory without a word."""
    import logging

    import jax
    import jax.numpy as jnp
    import optax

    import tpflax as tp

    model = tp.transform(lambda x, y: jnp.mean((tp.FullyConnected("fc", x, 1) - y) ** 2))
    x, y = jnp.ones((4, 3)), jnp.zeros((4, 1))
    trainer = tp.train.Trainer(model, optax.sgd(0.1))

    def fresh() -> tp.train.TrainState:  # fit donates the state it is given
        return trainer.init(*model.init(jax.random.key(0), x, y), x, y, rng=jax.random.key(1))

    ckpt = tp.train.Checkpoints(tmp_path, keep=1, async_save=False)

    def resumed() -> list[str]:
        return [r.getMessage() for r in caplog.records if "resumed" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="tpflax"):
        tp.train.fit(trainer, fresh(), lambda step: (x, y), 4, checkpoints=ckpt, save_every=2)
        assert resumed() == []  # an empty directory: a fresh start, nothing to say
        ts, history = tp.train.fit(trainer, fresh(), lambda step: (x, y), 6, checkpoints=ckpt)
        assert resumed() == [f"resumed from step 4 ({tmp_path})"]
        assert [h["step"] for h in history] == [4.0, 5.0] and int(ts.step) == 6
        caplog.clear()
        tp.train.fit(trainer, ts, lambda step: (x, y), 6, checkpoints=ckpt)
        assert resumed() == []  # ts is already at the latest step: nothing was restored
    ckpt.close()
