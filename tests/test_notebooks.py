"""The notebooks' code cells run as they are (no Jupyter needed), and the notebooks are
committed as a reader should see them: executed, with their outputs (the training plot
included), and with figures left to Jupyter's inline display (no ``matplotlib.use``)."""

from __future__ import annotations

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def _code_cells(path: pathlib.Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


# The training notebook trains 150 steps; it runs in make test-slow (the 5-minute budget of
# make test), where its training, checkpoints and event files are also covered by
# docs/training.md's blocks and tests/test_train*.py.
RUNS = [
    pytest.param(p, marks=pytest.mark.slow) if p.name == "training.ipynb" else p for p in NOTEBOOKS
]


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_notebook_runs(path: pathlib.Path, tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # no display here; Jupyter shows figures inline
    namespace: dict = {}
    ran = 0
    try:
        for cell in _code_cells(path):
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
            ran += 1
    finally:
        import sys

        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    assert ran >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_outputs(path: pathlib.Path) -> None:
    cells = _code_cells(path)
    source = "\n".join("".join(c["source"]) for c in cells)
    assert "matplotlib.use" not in source, "let Jupyter show the figures inline"
    unexecuted = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not unexecuted, (
        f"{path.name}: code cells {unexecuted} were not executed; run "
        "`jupyter nbconvert --to notebook --execute --inplace` (docs/contributing.md)"
    )
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: executed out of order"
    assert sum(len(c["outputs"]) for c in cells) >= len(cells) // 2
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name}: committed with an error output"
    if "plt." in source:
        images = [o for c in cells for o in c["outputs"] if "image/png" in o.get("data", {})]
        assert images, f"{path.name}: the figure is not in the committed outputs"
