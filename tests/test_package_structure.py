"""The package's modules depend one way: every module imports alone, and no chain of module-level
imports inside `ecrm` (module-level or lazy) comes back to where it started (a newcomer can read a module after the ones
it imports, and an import cycle cannot half-initialise a module)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = sorted(
    ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for path in (SRC / "ecrm").rglob("*.py"))


def module_imports(name: str) -> set[str]:
    """ecrm modules the module imports, at module level or lazily inside a function (a lazy import
    still makes the two modules depend on each other)."""
    path = SRC / Path(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            # `from . import sibling` depends on the sibling module, not on the package's __init__
            found |= submodules if submodules <= set(MODULES) else {base}
    return {m for m in found if m in MODULES and m != name}


def test_no_import_cycles_inside_the_package():
    graph = {name: module_imports(name) for name in MODULES}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("name", [m for m in MODULES if m.startswith("ecrm.mailer") or m.count(".") == 1])
def test_each_module_imports_alone(name):
    result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
