"""How many lines a port changes: each model function in tools/golden (run by real
TensorFlow/tensorpack) against its twins in tests/ (run by tpflax), as a line diff of the
function bodies.

    python tools/portdiff.py            # every twin pair, compat ports and hand ports apart
    python tools/portdiff.py --compat   # only the tpflax.compat ports (tests/test_compat_*.py)
    python tools/portdiff.py --hand     # only the hand ports (the other tests/test_*.py)
    python tools/portdiff.py --show model_dcgan   # and the diffs of these functions

A pair is two top-level functions of the same name (``model_dcgan``) in ``tools/golden/*.py``
and ``tests/test_*.py``. One original may have two ports: a **compat port** (in a
``tests/test_compat_*.py`` file), the original run through ``tpflax.compat`` with its imports
changed, and a **hand port** (any other test file), rewritten in ``jax.numpy`` and ``tp.*``.

Lines changed = lines of the original that the port replaced or removed, plus lines it added
(difflib), over the original's line count. Docstrings and blank lines are not counted (a port
need not repeat them), and an import statement counts as one line however the formatter wraps
it (``from tpflax.compat.tensorpack import (...)`` is one line, as the
``from tensorpack import ...`` it replaces). ``imports`` and ``other`` split the changed lines
into those in import statements and the rest, the code itself.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
KINDS = {"compat": "tpflax.compat ports", "hand": "hand ports"}
TITLES = {
    "compat": "tpflax.compat ports: the TensorFlow original with its imports changed",
    "hand": "hand ports: rewritten in jax.numpy and tp.* (no tpflax.compat)",
}
IMPORT_PREFIXES = ("import ", "from ")


def functions(path: pathlib.Path) -> dict[str, list[str]]:
    """``{name: source lines}`` of the top-level functions of ``path``: docstrings and blank
    lines left out, each import statement inside a function as one line."""
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        skip: set[int] = set()
        if ast.get_docstring(node) is not None:
            doc = node.body[0]
            skip.update(range(doc.lineno, (doc.end_lineno or doc.lineno) + 1))
        imports = {}  # first line -> the statement on one line
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                imports[sub.lineno] = " " * sub.col_offset + ast.unparse(sub)
                skip.update(range(sub.lineno + 1, (sub.end_lineno or sub.lineno) + 1))
        body = []
        for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            if n in imports:
                body.append(imports[n])
            elif n not in skip and lines[n - 1].strip():
                body.append(lines[n - 1].rstrip())
        out[node.name] = body
    return out


def changed(original: list[str], port: list[str]) -> int:
    """Lines the port replaced, removed or added relative to ``original``."""
    count = 0
    matcher = difflib.SequenceMatcher(a=original, b=port, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            count += max(i2 - i1, j2 - j1)
    return count


def is_import(line: str) -> bool:
    """Whether ``line`` (from :func:`functions`) is an import statement."""
    return line.lstrip().startswith(IMPORT_PREFIXES)


def changed_code(original: list[str], port: list[str]) -> int:
    """Lines the port changed apart from import statements."""
    return changed([s for s in original if not is_import(s)], [s for s in port if not is_import(s)])


def kind_of(test_file: pathlib.Path) -> str:
    """``'compat'`` for a port in ``tests/test_compat_*.py``, else ``'hand'``."""
    return "compat" if test_file.name.startswith("test_compat_") else "hand"


@dataclasses.dataclass(frozen=True)
class Pair:
    """A model function in tools/golden and one port of it in tests/."""

    name: str
    kind: str  # 'compat' or 'hand'
    original_file: str
    original: list[str]
    port_file: str
    port: list[str]

    @property
    def lines(self) -> int:
        return len(self.original)

    @property
    def changed(self) -> int:
        return changed(self.original, self.port)

    @property
    def other(self) -> int:
        return changed_code(self.original, self.port)

    def diff(self) -> list[str]:
        """The unified diff, original to port."""
        return list(
            difflib.unified_diff(
                self.original,
                self.port,
                f"tools/golden/{self.original_file}",
                f"tests/{self.port_file}",
                lineterm="",
            )
        )


def originals(root: pathlib.Path = ROOT) -> dict[str, tuple[str, list[str]]]:
    """``{name: (file, lines)}`` of the ``model_*`` functions in ``tools/golden/*.py``.

    Raises:
        ValueError: two golden files define the same ``model_*`` name (a port could not say
            which it twins).
    """
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sorted((root / "tools" / "golden").glob("*.py")):
        for name, lines in functions(path).items():
            if not name.startswith("model_"):
                continue
            if name in found:
                raise ValueError(
                    f"portdiff: {name} is defined in tools/golden/{found[name][0]} and "
                    f"tools/golden/{path.name}; model function names must be unique"
                )
            found[name] = (path.name, lines)
    return found


def pairs(kind: str | None = None, root: pathlib.Path = ROOT) -> list[Pair]:
    """Every (original, port) pair, compat ports first; only ``kind``'s if given."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"portdiff: kind must be one of {sorted(KINDS)}, got {kind!r}")
    golden = originals(root)
    found = []
    for path in sorted((root / "tests").glob("test_*.py")):
        k = kind_of(path)
        if kind is not None and k != kind:
            continue
        for name, port in functions(path).items():
            if name in golden:
                source, original = golden[name]
                found.append(Pair(name, k, source, original, path.name, port))
    return sorted(found, key=lambda p: list(KINDS).index(p.kind))


def table(rows: list[Pair]) -> list[str]:
    """The report: per kind, one row per pair and the kind's total."""
    head = (
        f"{'model function':26} {'original':20} {'port':24} "
        f"{'lines':>5} {'changed':>7} {'share':>6} {'imports':>7} {'other':>5}"
    )
    out: list[str] = []
    for kind, title in TITLES.items():
        these = [p for p in rows if p.kind == kind]
        if not these:
            continue
        out += [""] if out else []
        out += [title, head]
        n = c = o = 0
        for p in these:
            pn, pc, po = p.lines, p.changed, p.other
            n, c, o = n + pn, c + pc, o + po
            out.append(
                f"{p.name:26} {p.original_file:20} {p.port_file:24} "
                f"{pn:5d} {pc:7d} {pc / pn:6.0%} {pc - po:7d} {po:5d}"
            )
        label = f"all {KINDS[kind]} ({len(these)})"
        out.append(f"{label:72} {n:5d} {c:7d} {c / n:6.0%} {c - o:7d} {o:5d}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--compat", action="store_true", help="only tpflax.compat ports")
    only.add_argument("--hand", action="store_true", help="only hand ports")
    parser.add_argument("--show", nargs="+", default=[], help="print these functions' diffs")
    args = parser.parse_args(argv)
    rows = pairs("compat" if args.compat else "hand" if args.hand else None)
    if not rows:
        print("no twin pairs found", file=sys.stderr)
        return 1
    print("\n".join(table(rows)))
    for p in rows:
        if p.name in args.show:
            print(f"\n{p.name} ({KINDS[p.kind]})")
            print("\n".join(p.diff()) or "(identical)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
