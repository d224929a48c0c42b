"""The documentation is tested as code (no mkdocs needed):

- every ```python block of README.md and of every page under docs/ runs as it is: each in a
  fresh namespace and an empty folder, except a block whose first line says it continues
  another (it runs after the first block under that heading of the same page, in its
  namespace);
- every public name has a docstring, and every public method of a public class too;
- every public name has its ``::: module.name`` line in docs/api/, and every such line names
  an object that exists, so the API reference can neither miss a name nor keep a stale one;
- every page is in mkdocs.yml's nav, and the README's relative links point at files.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import pathlib
import re
import types

import pytest

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "notebooks" not in p.parts)]
CONTINUES = re.compile(r'# \(continues the block "(.+)"\)')
FENCE = re.compile(r"^```(\S*)\s*$")

# The modules whose public names the API reference documents.
MODULES = [
    "tpflax",
    "tpflax.checkpoint",
    "tpflax.train",
    "tpflax.zoo",
    "tpflax.linen",
    "tpflax.nnx",
]


def _page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(ROOT))


def _blocks(page: pathlib.Path) -> list[tuple[str, str, str | None]]:
    """(heading above the block, code, heading of the block it continues) per python block."""
    out = []
    heading, language, lines = "", None, []
    for line in page.read_text().splitlines():
        fence = FENCE.match(line)
        if language is None:
            if fence:
                language, lines = fence[1], []
            elif m := re.match(r"^#+ (.+)$", line):
                heading = m[1]
        elif fence and not fence[1]:
            if language == "python":
                code = "\n".join(lines) + "\n"
                m = CONTINUES.match(lines[0]) if lines else None
                out.append((heading, code, m[1] if m else None))
            language = None
        else:
            lines.append(line)
    assert language is None, f"{_page_id(page)}: a code block is not closed"
    return out


BLOCKS = [(page, *block) for page in PAGES for block in _blocks(page)]


def test_pages_have_blocks() -> None:
    assert len(BLOCKS) >= 12
    assert any(p.name == "README.md" for p, *_ in BLOCKS), "the README keeps its example"


def _chains() -> list[list[int]]:
    """The blocks as runs: a block, then (in page order) the blocks that continue it. A
    continued block's run goes on in its namespace, so the two run in one test and the
    first one runs once."""
    chains: dict[tuple[pathlib.Path, str], list[int]] = {}
    runs: list[list[int]] = []
    for i, (page, heading, _, continues) in enumerate(BLOCKS):
        if continues is None:
            runs.append([i])
            chains.setdefault((page, heading), runs[-1])
        else:
            assert (page, continues) in chains, f"{_page_id(page)}: no block {continues!r}"
            chains[page, continues].append(i)
    return runs


@pytest.mark.parametrize(
    "run",
    _chains(),
    ids=lambda run: f"{_page_id(BLOCKS[run[0]][0])}-{run[0]}-{BLOCKS[run[0]][1][:30]}",
)
def test_block_runs(run: list[int], tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for index in run:
        page, heading, code, _ = BLOCKS[index]
        exec(compile(code, f"{_page_id(page)}[{heading}]", "exec"), namespace)
        assert os.getcwd() == str(tmp_path)


def public_names(module_name: str) -> list[str]:
    """``__all__``, or (for a module without one) the names it defines itself."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module_name
    )


def _public_methods(cls: type) -> list[tuple[str, object]]:
    """Methods and properties the class defines itself (inherited ones are documented where
    they are defined); dataclass fields and other plain attributes carry no docstring."""
    fields = getattr(cls, "__dataclass_fields__", {})
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, (property, functools.cached_property)):
            out.append((name, value))
    return out


def _public_classes() -> set[type]:
    return {
        value
        for module_name in MODULES
        for name in public_names(module_name)
        if inspect.isclass(value := getattr(importlib.import_module(module_name), name))
    }


def _has_docstring(value: object, public_classes: set[type]) -> bool:
    doc = getattr(value, "__doc__", None)
    if not doc or not doc.strip():
        return False
    if inspect.isclass(value) or inspect.isroutine(value) or isinstance(value, types.ModuleType):
        return True
    if isinstance(value, (property, functools.cached_property)):
        return True
    # An instance: a registered layer needs its own docstring, not the one of tp.Layer; an
    # object of a private class made for it (tp.conv_impl) is documented by that class.
    return type(value) not in public_classes or doc != type(value).__doc__


def undocumented() -> list[str]:
    public_classes = _public_classes()
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module_name):
            value = getattr(module, name)
            if not (callable(value) or isinstance(value, types.ModuleType)):
                continue  # a constant (a dict, a string) cannot carry a docstring
            if not _has_docstring(value, public_classes):
                missing.append(f"{module_name}.{name}")
            if inspect.isclass(value):
                owner = value
            elif not isinstance(value, types.ModuleType) and type(value) not in public_classes:
                owner = type(value)  # tp.conv_impl's methods (tp.conv_impl.active)
            else:
                continue
            for method, function in _public_methods(owner):
                if not _has_docstring(function, public_classes):
                    missing.append(f"{module_name}.{name}.{method}")
    return missing


def test_public_names_have_docstrings() -> None:
    missing = undocumented()
    assert not missing, f"public names without a docstring: {', '.join(missing)}"


def _api_directives() -> dict[str, str]:
    """``{'tpflax.Conv2D': 'docs/api/tpflax.md', ...}`` from the ``::: name`` lines."""
    out = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for m in re.finditer(r"^::: ([\w.]+)\s*$", page.read_text(), flags=re.M):
            out[m[1]] = _page_id(page)
    return out


def test_every_public_name_is_in_the_api_reference() -> None:
    directives = _api_directives()
    absent = [
        f"{module_name}.{name}"
        for module_name in MODULES
        for name in public_names(module_name)
        if f"{module_name}.{name}" not in directives
    ]
    absent += [module_name for module_name in MODULES if module_name not in directives]
    assert not absent, f"not in docs/api/ (add a '::: name' line): {', '.join(absent)}"


def test_api_reference_names_exist() -> None:
    stale = []
    for target, page in _api_directives().items():
        parts = target.split(".")
        for split in range(len(parts), 0, -1):
            try:
                value = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attribute in parts[split:]:
                    value = getattr(value, attribute)
            except AttributeError:
                stale.append(f"{target} ({page})")
            break
        else:
            stale.append(f"{target} ({page})")
    assert not stale, f"docs/api/ names what does not exist: {', '.join(stale)}"


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    nav = config[config.index("\nnav:") :]
    listed = set(re.findall(r":\s*(\S+\.(?:md|ipynb))\s*$", nav, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in PAGES if p.is_relative_to(DOCS)}
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert pages | notebooks == listed
    assert (DOCS / "notebooks").resolve() == (ROOT / "notebooks").resolve()


def test_readme_links_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the docs pages"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
