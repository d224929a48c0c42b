"""tools/portdiff.py counts the lines a port changes, compat ports and hand ports apart."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tools"))
import portdiff

ORIGINAL = '''\
def model_x(x):
    """Doc."""
    import tensorflow as tf
    from tensorpack import (
        Conv2D,
        FullyConnected,
    )

    y = tf.nn.relu(x)
    z = y * 2
    return z
'''
COMPAT = """\
def model_x(x):
    from tpflax.compat import tf
    from tpflax.compat.tensorpack import Conv2D, FullyConnected
    y = tf.nn.relu(x)
    z = y * 2
    return z
"""
HAND = """\
def model_x(x):
    import jax
    y = jax.nn.relu(x)
    w = 1
    z = y * 2
    return z
"""


def _tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A project with one golden model function, a compat port and a hand port of it."""
    (tmp_path / "tools" / "golden").mkdir(parents=True)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tools" / "golden" / "gen.py").write_text(ORIGINAL)
    (tmp_path / "tests" / "test_compat_x.py").write_text(COMPAT)
    (tmp_path / "tests" / "test_x.py").write_text(HAND)
    return tmp_path


def test_counts_replaced_added_and_removed_lines(tmp_path) -> None:
    root = _tree(tmp_path)
    a = portdiff.functions(root / "tools" / "golden" / "gen.py")["model_x"]
    assert len(a) == 6  # no docstring, no blank line; the wrapped import is one line
    assert a[2] == "    from tensorpack import Conv2D, FullyConnected"
    hand = portdiff.functions(root / "tests" / "test_x.py")["model_x"]
    # two imports and the relu line replaced by one import, the new relu line and w = 1
    assert portdiff.changed(a, hand) == 3
    assert portdiff.changed_code(a, hand) == 2
    compat = portdiff.functions(root / "tests" / "test_compat_x.py")["model_x"]
    assert portdiff.changed(a, compat) == 2 and portdiff.changed_code(a, compat) == 0


def test_compat_and_hand_ports_of_one_original_are_reported_apart(tmp_path, capsys) -> None:
    root = _tree(tmp_path)
    rows = portdiff.pairs(root=root)
    assert [(p.name, p.kind, p.port_file) for p in rows] == [
        ("model_x", "compat", "test_compat_x.py"),
        ("model_x", "hand", "test_x.py"),
    ]
    assert [p.kind for p in portdiff.pairs("hand", root=root)] == ["hand"]
    lines = portdiff.table(rows)
    assert lines[0].startswith("tpflax.compat ports") and "hand ports" in lines[5]
    assert lines[2].split()[-5:] == ["6", "2", "33%", "2", "0"]
    assert lines[-1].split()[-5:] == ["6", "3", "50%", "1", "2"]
    with pytest.raises(ValueError, match="kind must be one of"):
        portdiff.pairs("jax", root=root)


def test_a_name_defined_by_two_golden_files_is_an_error(tmp_path) -> None:
    root = _tree(tmp_path)
    (root / "tools" / "golden" / "other.py").write_text(ORIGINAL)
    with pytest.raises(ValueError, match=r"model_x is defined in tools/golden/gen.py and"):
        portdiff.pairs(root=root)


def test_the_repository_ports_are_found_and_labelled() -> None:
    compat = portdiff.pairs("compat")
    names = {p.name for p in compat}
    assert {"model_compat_scopes", "model_layers_mnist", "model_dcgan", "model_pix2pix"} <= names
    assert all(p.port_file.startswith("test_compat_") for p in compat)
    hand = {p.name for p in portdiff.pairs("hand")}
    assert {"model_dcgan", "model_pix2pix"} <= hand
    assert all(not p.port_file.startswith("test_compat_") for p in portdiff.pairs("hand"))


def test_compat_ports_change_nothing_but_imports() -> None:
    """The point of tpflax.compat: a port is its original with other imports."""
    for p in portdiff.pairs("compat"):
        assert p.other == 0, f"{p.name} ({p.port_file}):\n" + "\n".join(p.diff())


def _imported(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        if portdiff.is_import(line):
            node = ast.parse(line.strip()).body[0]
            assert isinstance(node, ast.Import | ast.ImportFrom)
            names |= {a.asname or a.name for a in node.names}
    return names


def test_compat_ports_import_what_their_originals_import() -> None:
    """Each import statement changed its module only (tensorflow -> tpflax.compat.tf,
    tensorpack... -> tpflax.compat.tensorpack), not the names it brings in."""
    for p in portdiff.pairs("compat"):
        assert _imported(p.port) == _imported(p.original), f"{p.name} ({p.port_file})"


def test_main_prints_one_section_per_kind(capsys) -> None:
    assert portdiff.main(["--compat", "--show", "model_dcgan"]) == 0
    out = capsys.readouterr().out
    assert "tpflax.compat ports" in out and "hand ports" not in out
    assert "+    from tpflax.compat.tensorpack import" in out
    assert portdiff.main([]) == 0
    assert "all hand ports" in capsys.readouterr().out
