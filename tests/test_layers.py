"""The package reads as a straight line of layers: no module imports one below it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mcap import LAYERS
from tests.conftest import ROOT

PACKAGE = ROOT / "mcap"


def _module_name(path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path) -> set[str]:
    """Package modules a file imports (relative or absolute), by their LAYERS name."""
    own = _module_name(path)
    package = own.split(".") if path.name == "__init__.py" else own.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join(part for part in [*base, node.module or ""] if part)
            names = (
                [target] if node.module else [f"{target}.{a.name}".strip(".") for a in node.names]
            )
            found.update(names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mcap."):
            found.add(node.module.removeprefix("mcap."))
    return {name for name in found if name in LAYERS and name != own}


def test_every_module_has_a_layer():
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")} - {""}
    assert modules == set(LAYERS)


def test_no_module_imports_a_lower_layer():
    rank = {name: index for index, name in enumerate(LAYERS)}
    upward = [
        f"{_module_name(path)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if _module_name(path)
        for name in _imports(path)
        if rank[name] > rank[_module_name(path)]
    ]
    assert upward == []


TOP_LEVEL = [name for name in LAYERS if "." not in name]


def test_the_readme_names_the_layers_in_their_order():
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("Layers, top to bottom:"))
    named = re.findall(r"`([a-z_]+)/?`", line)
    assert named == TOP_LEVEL


def test_no_package_file_over_350_lines_and_no_function_over_60():
    long_files, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 350:
            long_files.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.name}: {length}")
    assert long_files == [] and long_functions == []


def test_comments_cite_the_repository_only():
    """The project explains itself: a cited design note is in docs/, with that section."""
    design = (ROOT / "docs" / "design.md").read_text()
    sections = set(re.findall(r"^## (.+)$", design, re.MULTILINE))
    sources = [*PACKAGE.rglob("*.py"), *ROOT.glob("*.py"), *(ROOT / "tests").glob("*.py")]
    outside, unknown = [], []
    for path in sources:
        if path == Path(__file__):
            continue  # this test names what it looks for
        text = path.read_text()
        if re.search(r"reliability\.md|coinpaprika-api\.md|CONTRACT|\.\./shared", text):
            outside.append(str(path.relative_to(ROOT)))
        for section in re.findall(r'docs/design\.md, "([^"]+)"', text):
            if section not in sections:
                unknown.append(f"{path.relative_to(ROOT)}: {section}")
        for doc in re.findall(r"docs/([a-z]+\.md)", text):
            if not (ROOT / "docs" / doc).exists():
                unknown.append(f"{path.relative_to(ROOT)}: docs/{doc}")
    assert outside == [] and unknown == []
