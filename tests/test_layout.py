"""The project's structure, read from its imports: no cycle, and each role imports only what
it may (ARCHITECTURE.md's map says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aggregations", "streams")

#: role -> roles it must never import (lazily or not).
FORBIDDEN: dict[str, set[str]] = {
    "aggregations": {"streams"},
    "streams.store": {"streams.worker", "streams.leader", "streams.http", "streams.cli",
                      "streams.dev", "streams.sdk"},
    "streams.sdk": {"streams.worker", "streams.leader", "streams.http", "streams.cli",
                    "streams.dev", "streams.store"},
    "streams.leader": {"streams.worker", "streams.http", "streams.cli", "streams.dev"},
    "streams.worker": {"streams.http.api", "streams.http.ingest", "streams.cli",
                       "streams.dev"},
    "streams.http": {"streams.cli", "streams.dev", "streams.worker", "streams.leader"},
    "streams.dev": {"streams.cli"},
}  # fmt: skip


def module_name(path: Path) -> str:
    """``streams/store/keys.py`` -> ``streams.store.keys`` (a package is its __init__)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of the two packages."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in known:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports."""
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(path, known) - {name} for name, path in modules.items()}


def inside(module: str, role: str) -> bool:
    """True when ``module`` is ``role`` or below it."""
    return module == role or module.startswith(role + ".")


def test_the_graph_sees_the_project() -> None:
    """The scan finds every role and the imports between them (a broken scan checks nothing)."""
    graph = import_graph()
    assert {"streams.worker.app", "streams.http.api", "aggregations.weeks"} <= set(graph)
    assert "streams.store.keys" in graph["streams.http.api"]


def test_no_import_cycle() -> None:
    """No chain of imports among project modules leads back to where it started.

    A package's ``__init__`` re-exporting its own modules is not a cycle of concern, so
    edges from a package into itself are left out.
    """
    graph = {
        module: {t for t in targets if not inside(t, module)}
        for module, targets in import_graph().items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("role", sorted(FORBIDDEN))
def test_each_role_imports_only_what_it_may(role: str) -> None:
    """E.g. HTTP never imports the CLI, and ``aggregations/`` nothing from ``streams/``."""
    bad = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if inside(module, role)
        for target in targets
        for forbidden in FORBIDDEN[role]
        if inside(target, forbidden)
    ]
    assert not bad, "\n".join(bad)
