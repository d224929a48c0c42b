"""`make demo`'s figures: tensorpack's checkpoint loads, the held-out accuracy equals
tensorpack's stored figure and the logits its stored logits, fine-tuning keeps it high, and
the exported files reload with identical predictions."""

from __future__ import annotations

import json
import re

import numpy as np

from tpflax import demo


def test_demo_figures(tmp_path, capsys) -> None:
    assert demo.main(["--steps", "40", "--out", str(tmp_path), "--show", "3"]) == 0
    out = capsys.readouterr().out
    stored = json.loads((demo.DATA / "tensorpack_digits.json").read_text())["held_out_accuracy"]
    acc = re.search(r"held-out accuracy: tpflax ([\d.]+), tensorpack ([\d.]+)", out)
    assert acc and float(acc[1]) == float(acc[2]) == round(stored, 4) and stored > 0.95
    # tensorpack's own held-out logits (tools/golden/digits.py), within 1e-5 of their scale
    with np.load(demo.DATA / "tensorpack_logits.npz") as f:
        scale = float(np.max(np.abs(f["logits"])))
    gap = re.search(r"largest logit difference ([\d.e+-]+)", out)
    assert gap and float(gap[1]) <= 1e-5 * scale
    assert "loaded tensorpack's checkpoint model-300: 22 variables" in out
    tuned = re.search(r"fine-tuned 40 steps .* held-out accuracy ([\d.]+)", out)
    assert tuned and float(tuned[1]) >= 0.97
    assert "identical predictions: npz True, TF checkpoint True" in out
    assert (tmp_path / "digits-tpflax.npz").exists()
    assert (tmp_path / "tf" / "model-40.index").exists()
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} >= {"40", "best"}
    assert out.count(" (") >= 3  # predictions with their true labels


def test_demo_help_and_bad_flags(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit) as exit_:
        demo.main(["--help"])
    assert exit_.value.code == 0
    assert "--steps" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--batch-size", "0"])
    assert exit_.value.code == 2
