"""Writes docs/compat-names.md: every name tpflax.compat supports, with the first line of its
docstring, generated from the modules themselves (tests/test_compat_names.py fails when the
page is stale: run `.venv/bin/python tools/compat_names.py`)."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "compat-names.md"
MODULES = [
    ("tf", "tpflax.compat.tf"),
    ("tf.nn", "tpflax.compat.tf.nn"),
    ("tf.layers", "tpflax.compat.tf.layers"),
    ("tf.image", "tpflax.compat.tf.image"),
    ("tf.distributions", "tpflax.compat.tf.distributions"),
    ("tf.losses", "tpflax.compat.tf.losses"),
    ("tf.math", "tpflax.compat.tf.math"),
    ("tf.summary", "tpflax.compat.tf.summary"),
    ("tf.train", "tpflax.compat.tf.train"),
    ("tensorpack", "tpflax.compat.tensorpack"),
]


def _summary(value: object) -> str:
    if isinstance(value, types.ModuleType):
        return "(module, below)"
    if isinstance(value, types.SimpleNamespace):
        return "namespace: " + ", ".join(f"`{n}`" for n in sorted(vars(value)))
    doc = inspect.getdoc(value) if callable(value) or inspect.isclass(value) else None
    if not doc or (not inspect.isclass(value) and doc == inspect.getdoc(type(value))):
        return f"`{value!r}`" if not callable(value) else ""
    return doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


def render() -> str:
    lines = [
        "# Supported TensorFlow names",
        "",
        "Generated from `tpflax.compat` by `tools/compat_names.py` (the tests fail when this",
        "page is stale). Each name has TensorFlow's signature and defaults; the first line of",
        "its docstring says where it differs. See [Tensorpack code as written](compat.md).",
    ]
    for title, module_name in MODULES:
        module = importlib.import_module(module_name)
        names = sorted(getattr(module, "__all__", []), key=str.lower)
        lines += ["", f"## `{title}` ({len(names)} names)", "", "| name | |", "|---|---|"]
        for name in names:
            lines.append(f"| `{name}` | {_summary(getattr(module, name))} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")
