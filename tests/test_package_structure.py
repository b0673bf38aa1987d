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


def _reachable(start: set[str]) -> set[str]:
    graph, seen, todo = {name: module_imports(name) for name in MODULES}, set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph[name]
    return seen


def test_the_quality_gate_depends_on_nothing_of_the_mailer():
    """Write, audit, publish, push: the gate (ecrm.quality) audits what ecrm.publish then publishes and the
    mailer pushes; nothing the gate imports, directly or through another module, is the mailer's."""
    quality = {m for m in MODULES if m == "ecrm.quality" or m.startswith("ecrm.quality.")}
    assert {m for m in _reachable(quality) if m.startswith("ecrm.mailer")} == set()


def _writes_environ(node: ast.AST) -> bool:
    def is_environ(n: ast.AST) -> bool:
        return isinstance(n, ast.Attribute) and n.attr == "environ" and isinstance(n.value, ast.Name) \
            and n.value.id == "os"

    if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        return any(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if is_environ(node.func.value) and node.func.attr in ("update", "setdefault", "pop", "popitem", "clear"):
            return True
        return isinstance(node.func.value, ast.Name) and node.func.value.id == "os" \
            and node.func.attr in ("putenv", "unsetenv")
    return False


# Settings are passed as arguments. Two functions must write the process environment, because the
# library they feed reads nothing else: Airflow's configuration (the demo's own Airflow, before it is
# imported) and in-process dbt's env_var() (scoped to one invocation, restored after).
ENVIRON_WRITERS = {("ecrm.airflow_env", "configure"), ("ecrm.transform", "dbt_environment")}


def test_no_module_writes_the_process_environment():
    found = set()

    def visit(node: ast.AST, module: str, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if _writes_environ(child):
                found.add((module, function, child.lineno))
            visit(child, module, child.name if isinstance(child, ast.FunctionDef) else function)

    for name in MODULES:
        path = SRC / Path(*name.split("."))
        visit(ast.parse((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()), name,
              "<module>")
    assert {(m, f) for m, f, _ in found} - ENVIRON_WRITERS == set(), sorted(found)


def test_no_private_name_is_imported_across_modules():
    """A leading underscore means "this module only": another module needing it gets a public name."""
    found = []
    for name in MODULES:
        path = SRC / Path(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ecrm")):
                found += [f"{name}: from {'.' * node.level}{node.module or ''} import {alias.name}"
                          for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []


def test_dbt_layers_depend_one_way():
    """staging -> intermediate -> marts -> sync: no intermediate model refs a mart or a sync model, no mart
    refs a sync model, and no macro calls ref() (lineage in `dbt ls` and the docs graph tells the truth)."""
    import re

    models = Path(__file__).resolve().parents[1] / "dbt_project" / "models"
    layer_of = {p.stem: p.relative_to(models).parts[0] for p in models.rglob("*.sql")}
    order = {"staging": 0, "intermediate": 1, "marts": 2, "sync": 3}
    backwards = [(p.stem, ref) for p in models.rglob("*.sql")
                 for ref in re.findall(r"ref\(\s*'([a-z0-9_]+)'\s*\)", p.read_text())
                 if ref in layer_of and order[layer_of[ref]] > order[layer_of[p.stem]]]
    assert backwards == []
    macros = Path(__file__).resolve().parents[1] / "dbt_project" / "macros"
    assert [p.name for p in macros.glob("*.sql") if "ref(" in p.read_text()] == []
