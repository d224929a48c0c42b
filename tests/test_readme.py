"""Every ```python block of README.md runs as it is: each in a fresh namespace and an empty
folder, except a block whose first line says it continues another (it runs after that one,
in its namespace)."""

from __future__ import annotations

import functools
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).parents[1] / "README.md"
CONTINUES = re.compile(r'# \(continues the block "(.+)"\)')


def _blocks() -> list[tuple[str, str, str | None]]:
    """(title of the section, code, title of the block it continues) for each block."""
    out = []
    section = ""
    for part in re.split(r"(```python\n.*?```)", README.read_text(), flags=re.S):
        if part.startswith("```python"):
            code = part[len("```python\n") : -3]
            first = code.splitlines()[0]
            m = CONTINUES.match(first)
            out.append((section, code, m[1] if m else None))
        else:
            headings = re.findall(r"^#+ (.+)$", part, flags=re.M)
            if headings:
                section = headings[-1]
    return out


BLOCKS = _blocks()


@functools.cache
def _namespace_after(title: str) -> dict:
    """The namespace the first block under ``title`` leaves (run once per process)."""
    earlier = [c for s, c, _ in BLOCKS if s == title]
    assert earlier, f"no block under the heading {title!r}"
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(earlier[0], f"README[{title}]", "exec"), namespace)
    return namespace


def test_readme_has_blocks() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"{i}-{BLOCKS[i][0][:30]}")
def test_readme_block_runs(index: int, tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    section, code, continues = BLOCKS[index]
    namespace = {"__name__": "__readme__"}
    if continues is not None:
        namespace = dict(_namespace_after(continues))
    exec(compile(code, f"README[{section}]", "exec"), namespace)
    assert os.getcwd() == str(tmp_path)
