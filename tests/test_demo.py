"""`make demo` runs and prints tensorpack's shape log and variable summary."""

from __future__ import annotations

import logging

from tpflax import demo


def test_demo_runs(capsys) -> None:
    assert demo.main(["--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "'conv0': [2, 28, 28, 1] --> [2, 28, 28, 32]" in out
    assert "fc0/W    [6272, 512]        3,211,264" in out
    assert "Number of trainable variables: 12" in out
    assert "training : logits [2, 10]" in out
    assert "inference: logits [2, 10]" in out
    assert "weights via tensorpack .npz: 12 variables" in out
    assert "weights via TF checkpoint: 12 variables" in out
    assert out.count("same logits after reloading: True") == 2
    logger = logging.getLogger("tpflax")
    assert not logger.handlers and logger.propagate and logger.level == logging.NOTSET
