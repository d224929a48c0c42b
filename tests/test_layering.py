"""The layer core (tpflax/_src) stands below file formats, the zoo and training: it imports
none of them, so the core can be read, tested and reused without them (STYLE.md)."""

from __future__ import annotations

import ast
import pathlib

SRC = pathlib.Path(__file__).parents[1] / "src" / "tpflax"
ABOVE_THE_CORE = ("tpflax.checkpoint", "tpflax.zoo", "tpflax.train", "tpflax.cli", "tpflax.demo")


def imports_above_the_core(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [n for n in names if n.startswith(ABOVE_THE_CORE) or n == "tpflax"]
    return found


def test_the_core_imports_nothing_above_it() -> None:
    offenders = {
        str(p.relative_to(SRC)): imports_above_the_core(p) for p in sorted(SRC.glob("_src/*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_can_fail(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from tpflax.checkpoint._tree import flatten\nimport tpflax.zoo\n")
    assert imports_above_the_core(bad) == [
        "tpflax.checkpoint._tree",
        "tpflax.checkpoint._tree.flatten",
        "tpflax.zoo",
    ]
