"""The shape docs/CONTRACTS.md promises, checked from the code itself: imports point down the
layers (cli > monitor > pipeline > api > db / sim > bottom floor), no import circle inside netops/,
and no function longer than a screen. Lazy imports inside functions count: they load the same
code, only later."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "netops"

#: the floors, top first; a module may import its own floor's package or any floor below
FLOORS: dict[str, int] = {
    "netops.__main__": 7,
    "netops.cli": 6,
    "netops.monitor": 5,
    "netops.pipeline": 4,
    "netops.api": 3,
    "netops.db": 2,
    "netops.sim": 2,
}
BOTTOM = 1  # catalog, config, log, errors and their helpers: netops/*.py
#: one floor, two rooms that must not know each other: the simulator stands in for the API and
#: must work without the database code, and the database code never talks to the simulator
APART = {("netops.db", "netops.sim"), ("netops.sim", "netops.db")}
MAX_FUNCTION_LINES = 60
#: the simulator's data generators are long tables of realistic values, read top to bottom
LONG_ALLOWED = {("netops/sim/data.py", name) for name in ("_gen_projects",)}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    """The package a module lives in, as FLOORS names it (the bottom floor: the module itself)."""
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return module


def floor(module: str) -> int:
    return FLOORS.get(room(module), BOTTOM)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, module: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported netops module) for every import in the file, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from netops.monitor import facts` imports the submodule netops.monitor.facts
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("netops"):
                yield node.lineno, name


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {dep for _, dep in imports_of(p, m, known) if dep != m} for m, p in mods.items()}


def test_imports_point_down_the_floors() -> None:
    mods = modules()
    known = set(mods)
    wrong: list[str] = []
    for module, path in mods.items():
        for line, dep in imports_of(path, module, known):
            if dep == "netops" or room(dep) == room(module):
                continue
            if floor(dep) > floor(module) or (room(module), room(dep)) in APART:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module} -> {dep}")
            elif floor(dep) == floor(module) and floor(module) != BOTTOM:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module} -> {dep} (same floor)")
    wrong = sorted(set(wrong))
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(wrong)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the circles of the import graph (components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_inside_netops() -> None:
    edges = graph()
    # a package's __init__ importing its own submodules is the package's face, not a circle
    for m in edges:
        edges[m] = {d for d in edges[m] if not m.startswith(d + ".") or d == "netops"}
        edges[m].discard("netops")
    assert strongly_connected(edges) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def long_functions() -> list[tuple[int, str]]:
    rows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
                if length > MAX_FUNCTION_LINES and (rel, node.name) not in LONG_ALLOWED:
                    rows.append((length, f"{rel}:{node.lineno} {node.name}"))
    return sorted(rows, reverse=True)


def test_no_function_longer_than_a_screen() -> None:
    assert long_functions() == [], f"functions over {MAX_FUNCTION_LINES} lines"


@pytest.mark.parametrize("module,expected", [("netops.cli.sync", 6), ("netops.config", BOTTOM),
                                             ("netops.db.queue", 2), ("netops.__main__", 7)])
def test_floors_are_read_from_the_module_name(module: str, expected: int) -> None:
    assert floor(module) == expected
