"""The package reads as a straight line of layers: no module imports one below it."""

from __future__ import annotations

import ast

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
