"""A griffe extension for `make docs`: tpflax's docstrings, read as Markdown, render as meant.

tpflax's docstrings title their doctests ``Example:`` (Google style), which griffe's Google
parser reads as an admonition of Markdown text: a doctest line such as
``>>> state['bn']['mean']`` would become a broken reference link. Renamed ``Examples:``, it is
an examples section, rendered as code. A doctest paragraph outside any section (a module's
docstring) is fenced as a ``pycon`` code block. Sphinx roles (``:class:`Trainer```), which
Markdown does not know, become code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", flags=re.M)
_EXAMPLE_TITLED = re.compile(r"^(\s*)Example \((.+)\):\s*$", flags=re.M)  # Example (what):
_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):`~?([^`]+)`")  # Sphinx roles


def _fence_doctests(text: str) -> str:
    out: list[str] = []
    in_doctest = False
    for line in text.splitlines():
        if not in_doctest and line.startswith(">>> ") and (not out or not out[-1].strip()):
            out.append("```pycon")
            in_doctest = True
        elif in_doctest and not line.strip():
            out.append("```")
            in_doctest = False
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class MarkdownDocstrings(griffe.Extension):
    """Reads an ``Example:`` (or ``Example (what):``) docstring section as ``Examples:``;
    fences bare doctests."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            value = _EXAMPLE_TITLED.sub(r"\1Examples:\n\1    \2:", value)
            value = _ROLE.sub(r"`\1`", value)
            obj.docstring.value = _fence_doctests(value)
