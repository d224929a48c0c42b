"""How many lines a port changes: each model function in tools/golden (run by real
TensorFlow/tensorpack) against its twin in tests/ (run by tpflax), as a line diff of the two
function bodies.

    python tools/portdiff.py            # every twin pair found
    python tools/portdiff.py --compat   # only the tpflax.compat ports

A pair is two top-level functions of the same name (``model_dcgan``) in
``tools/golden/*.py`` and ``tests/test_*.py``. Lines changed = lines of the original that the
port replaced or removed, plus lines it added (difflib), over the original's line count.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def functions(path: pathlib.Path) -> dict[str, list[str]]:
    """``{name: source lines}`` of the top-level functions of ``path`` (docstrings and blank
    lines left out: a port need not repeat them)."""
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        skip: range = range(0)
        if ast.get_docstring(node) is not None:
            doc = node.body[0]
            skip = range(doc.lineno, (doc.end_lineno or doc.lineno) + 1)
        numbers = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        out[node.name] = [
            lines[n - 1].rstrip() for n in numbers if n not in skip and lines[n - 1].strip()
        ]
    return out


def changed(original: list[str], port: list[str]) -> int:
    """Lines the port replaced, removed or added relative to ``original``."""
    count = 0
    matcher = difflib.SequenceMatcher(a=original, b=port, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            count += max(i2 - i1, j2 - j1)
    return count


def pairs(compat_only: bool) -> list[tuple[str, list[str], list[str], str]]:
    originals: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tools" / "golden").glob("*.py")):
        originals.update(functions(path))
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if compat_only and "compat" not in path.name:
            continue
        for name, port in functions(path).items():
            if name.startswith("model_") and name in originals:
                found.append((name, originals[name], port, path.name))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compat", action="store_true", help="only tpflax.compat ports")
    args = parser.parse_args(argv)
    rows = pairs(args.compat)
    if not rows:
        print("no twin pairs found", file=sys.stderr)
        return 1
    total_lines = total_changed = 0
    print(f"{'model function':36} {'port':28} {'lines':>5} {'changed':>7} {'share':>6}")
    for name, original, port, where in rows:
        n, c = len(original), changed(original, port)
        total_lines, total_changed = total_lines + n, total_changed + c
        print(f"{name:36} {where:28} {n:5d} {c:7d} {c / n:6.0%}")
    share = total_changed / total_lines
    print(f"{'all':36} {'':28} {total_lines:5d} {total_changed:7d} {share:6.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
