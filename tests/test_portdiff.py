"""tools/portdiff.py counts the lines a port changes."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tools"))
import portdiff


def test_counts_replaced_added_and_removed_lines(tmp_path) -> None:
    original = tmp_path / "a.py"
    original.write_text(
        'def model_x(x):\n    """Doc."""\n    import tensorflow as tf\n\n    y = tf.nn.relu(x)\n'
        "    z = y * 2\n    return z\n"
    )
    port = tmp_path / "b.py"
    port.write_text(
        "def model_x(x):\n    from tpflax.compat import tf\n    y = tf.nn.relu(x)\n"
        "    w = 1\n    z = y * 2\n    return z\n"
    )
    a, b = portdiff.functions(original)["model_x"], portdiff.functions(port)["model_x"]
    assert len(a) == 5  # the docstring and the blank line are not counted
    assert portdiff.changed(a, b) == 2  # one import replaced, one line added


def test_the_compat_ports_are_found() -> None:
    names = {name for name, *_ in portdiff.pairs(compat_only=True)}
    assert {"model_compat_scopes", "model_compat_summaries"} <= names
