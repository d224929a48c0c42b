"""docs/compat-names.md is generated from tpflax.compat (tools/compat_names.py), and every
name it lists has a docstring."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tools"))
import compat_names


def test_the_names_page_is_up_to_date() -> None:
    assert compat_names.PAGE.read_text() == compat_names.render(), (
        "docs/compat-names.md is stale: run .venv/bin/python tools/compat_names.py"
    )


def test_every_compat_function_and_class_has_a_docstring() -> None:
    missing = []
    for _, module_name in compat_names.MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if (inspect.isfunction(value) or inspect.isclass(value)) and not inspect.getdoc(value):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"no docstring: {', '.join(missing)}"
