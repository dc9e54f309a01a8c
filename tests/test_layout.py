"""The import graph of the project's packages: layers, apps, cycles, the runtime's imports.

Every import statement of every module of ``envs``, ``agents``, ``experiments`` and
``conf`` is read from the source (those inside functions too), and:

- ``envs`` imports neither ``agents`` nor ``experiments``; ``agents`` never imports
  ``experiments`` (``experiments -> agents -> envs``);
- no library module imports an app: the apps are the modules at the top of
  ``experiments/`` (``python -m experiments.<app>``), which nothing of ours imports;
- no import cycle, between modules or between folders;
- the serving runtime imports only the standard library, numpy and onnxruntime, and the
  simulator only numpy, gymnasium and numba (PyYAML to read scenario files).

Each failure names the files.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "agents", "experiments", "conf")
LAYER = {"envs": 0, "agents": 1, "experiments": 2}
RUNTIME = "agents.serving.runtime"
STDLIB = frozenset(sys.stdlib_module_names)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


MODULES = modules()


def imported_names(path: Path) -> Iterator[str]:
    """The dotted names ``path`` imports (``from a.b import c`` gives ``a.b.c`` when that is
    a module of ours, else ``a.b``); relative imports resolved."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in MODULES else base


def ours(name: str) -> str | None:
    """The module of ours that importing ``name`` runs (its longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


GRAPH: dict[str, set[str]] = {
    name: {m for m in map(ours, imported_names(path)) if m is not None and m != name}
    for name, path in MODULES.items()
}
APPS = frozenset(name for name, path in MODULES.items() if path.parent == ROOT / "experiments")
APPS -= {"experiments"}


def where(name: str) -> str:
    return str(MODULES[name].relative_to(ROOT))


def test_the_graph_is_read() -> None:
    assert "experiments.evaluation.paired" in GRAPH["experiments.evaluate"]
    assert "envs.core" in GRAPH["agents.rollout"]
    assert {"experiments.main", "experiments.train", "experiments.bench"} <= APPS


def test_layers_point_one_way() -> None:
    backwards = [
        f"{where(a)} imports {b} ({where(b)})"
        for a, targets in GRAPH.items()
        for b in targets
        if a.split(".")[0] in LAYER
        and b.split(".")[0] in LAYER
        and LAYER[b.split(".")[0]] > LAYER[a.split(".")[0]]
    ]
    assert not backwards, "experiments -> agents -> envs, never backwards:\n" + "\n".join(backwards)


def test_no_module_imports_an_app() -> None:
    offenders = [
        f"{where(a)} imports the app {b}" for a, t in GRAPH.items() for b in t if b in APPS
    ]
    assert "experiments.config" not in APPS
    assert not offenders, "apps are run, not imported:\n" + "\n".join(offenders)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(
        " <-> ".join(where(m) for m in component) for component in found
    )


def folder(name: str) -> str:
    path = MODULES[name]
    return str(path.parent.relative_to(ROOT))


def test_no_import_cycle_between_folders() -> None:
    graph: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        for b in targets:
            if folder(a) != folder(b) and not folder(a).startswith(folder(b) + "/"):
                # a sub-package may use its parent's modules; not the other way round too
                graph.setdefault(folder(a), set()).add(folder(b))
    found = cycles(graph)
    detail = [
        f"{where(a)} imports {where(b)}"
        for component in found
        for a, t in GRAPH.items()
        for b in t
        if folder(a) in component and folder(b) in component and folder(a) != folder(b)
    ]
    assert not found, f"folders importing each other {found}:\n" + "\n".join(detail)


def third_party(name: str) -> set[str]:
    tops = {n.split(".")[0] for n in imported_names(MODULES[name])}
    return {t for t in tops if t not in STDLIB and t not in PACKAGES and t != "__future__"}


def test_the_runtime_needs_only_numpy_and_onnxruntime() -> None:
    assert third_party(RUNTIME) <= {"numpy", "onnxruntime"}, where(RUNTIME)
    assert not GRAPH[RUNTIME], f"{where(RUNTIME)} must not import the project: {GRAPH[RUNTIME]}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("envs")))
def test_the_simulator_needs_only_numpy_gymnasium_and_numba(name: str) -> None:
    # numba compiles the dynamics (envs.kernels); yaml reads the scenario files
    assert third_party(name) <= {"numpy", "gymnasium", "numba", "yaml"}, where(name)
