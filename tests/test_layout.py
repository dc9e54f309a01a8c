"""The import graph of the project's packages: layers, apps, cycles, the runtime's imports.

Every import statement of every module of ``envs``, ``agents``, ``experiments`` and
``conf`` is read from the source (those inside functions too), and:

- ``envs`` imports neither ``agents`` nor ``experiments``; ``agents`` never imports
  ``experiments`` (``experiments -> agents -> envs``);
- no library module imports an app: the apps are the modules at the top of
  ``experiments/`` (``python -m experiments.<app>``), which nothing of ours imports;
- no import cycle, between modules or between folders;
- the serving runtime imports only the standard library, numpy and onnxruntime, and the
  simulator only numpy, gymnasium and numba (PyYAML to read scenario files);
- one home each for exploration (:mod:`agents.exploration`: no other function mixes an
  epsilon share, takes a softmax over a ``-inf`` mask or draws per row by inverse CDF)
  and for number formatting (:mod:`experiments.evaluation.formatting`: no other helper
  returns an amount with thousands separators or an ``estimate [low, high]``), read from
  the functions' code, not their names.

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
INSTALLED_AS = {"conf": "concede_conf"}  # a folder whose import name differs (pyproject.toml)
IMPORT_NAMES = tuple(INSTALLED_AS.get(p, p) for p in PACKAGES)
LAYER = {"envs": 0, "agents": 1, "experiments": 2}
RUNTIME = "agents.serving.runtime"
STDLIB = frozenset(sys.stdlib_module_names)


def module_name(path: Path) -> str:
    """The name ``path`` is imported by (``conf/__init__.py`` is ``concede_conf``)."""
    top, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [INSTALLED_AS.get(top, top), *rest]
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
    return {t for t in tops if t not in STDLIB and t not in IMPORT_NAMES and t != "__future__"}


def test_the_runtime_needs_only_numpy_and_onnxruntime() -> None:
    assert third_party(RUNTIME) <= {"numpy", "onnxruntime"}, where(RUNTIME)
    assert not GRAPH[RUNTIME], f"{where(RUNTIME)} must not import the project: {GRAPH[RUNTIME]}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("envs")))
def test_the_simulator_needs_only_numpy_gymnasium_and_numba(name: str) -> None:
    # numba compiles the dynamics (envs.kernels); yaml reads the scenario files
    assert third_party(name) <= {"numpy", "gymnasium", "numba", "yaml"}, where(name)


# ---------------------------------------------------------------- one home each
EXPLORATION_HOME = "agents.exploration"
FORMATTING_HOME = "experiments.evaluation.formatting"


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield node


def _calls(fn: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(fn)
        if isinstance(n, ast.Call)
        and name in (getattr(n.func, "attr", None), getattr(n.func, "id", None))
    ]


def _is_one(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 1


def mixes_epsilon(fn: ast.AST) -> bool:
    """Epsilon-greedy probabilities: the same share ``x`` both as ``1 - x`` (on the
    decision) and divided (``x / k``, spread over the allowed actions)."""
    kept = {
        ast.dump(n.right)
        for n in ast.walk(fn)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub) and _is_one(n.left)
    }
    spread = {
        ast.dump(n.left)
        for n in ast.walk(fn)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)
    }
    return bool(kept & spread)


def softmax_over_a_mask(fn: ast.AST) -> bool:
    """``exp`` of scores whose forbidden actions were set to ``-inf``."""
    minus_inf = any(
        isinstance(n, ast.UnaryOp)
        and isinstance(n.op, ast.USub)
        and "inf" in (getattr(n.operand, "attr", None), getattr(n.operand, "id", None))
        for n in ast.walk(fn)
    )
    return minus_inf and bool(_calls(fn, "exp"))


def draws_rows_by_inverse_cdf(fn: ast.AST) -> bool:
    """A ``cumsum`` along each row's actions compared with uniforms: one draw per row."""
    per_row = any(
        k.arg == "axis" and isinstance(k.value, ast.Constant) and k.value.value in (1, -1)
        for call in _calls(fn, "cumsum")
        for k in call.keywords
    )
    compared = any(
        isinstance(n, ast.Compare) and any(isinstance(o, ast.Lt | ast.LtE) for o in n.ops)
        for n in ast.walk(fn)
    )
    return per_row and compared


def returned(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.expr]:
    if isinstance(fn, ast.Lambda):
        return [fn.body]
    return [n.value for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None]


def _spec(node: ast.FormattedValue) -> str:
    if node.format_spec is None:
        return ""
    return "".join(str(v.value) for v in ast.walk(node.format_spec) if isinstance(v, ast.Constant))


def formats_amounts(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    """A helper that returns a number with thousands separators (``f"€{x:,.0f}"``,
    ``"{:,.0f}"``) and little else: at most a dozen characters of text around it (a
    sentence that quotes a figure is not a helper)."""
    for value in returned(fn):
        nodes = list(ast.walk(value))
        separated = any(
            isinstance(n, ast.FormattedValue) and "," in _spec(n) for n in nodes
        ) or any(isinstance(n, ast.Constant) and "{:," in str(n.value) for n in nodes)
        text = sum(
            len(str(part.value))
            for n in nodes
            if isinstance(n, ast.JoinedStr)
            for part in n.values
            if isinstance(part, ast.Constant)
        )
        if separated and text <= 12:
            return True
    return False


def formats_intervals(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    """A helper that returns ``f"{estimate} [{low}, {high}]"``."""
    for value in returned(fn):
        for n in ast.walk(value):
            if isinstance(n, ast.JoinedStr):
                text = [str(p.value) for p in n.values if isinstance(p, ast.Constant)]
                if text == [" [", ", ", "]"]:
                    return True
    return False


HOMES = {
    "exploration": (
        EXPLORATION_HOME,
        (mixes_epsilon, softmax_over_a_mask, draws_rows_by_inverse_cdf),
    ),
    "formatting": (FORMATTING_HOME, (formats_amounts, formats_intervals)),
}


def second_homes(topic: str, modules: dict[str, Path]) -> list[str]:
    """Functions outside ``topic``'s home that do its work, ``file:line name (check)``."""
    home, checks = HOMES[topic]
    found = []
    for name, path in sorted(modules.items()):
        if name == home:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for fn in functions(tree):
            for check in checks:
                if check(fn):
                    label = getattr(fn, "name", "<lambda>")
                    found.append(f"{where_in(path)}:{fn.lineno} {label} ({check.__name__})")
    return found


def where_in(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@pytest.mark.parametrize("topic", sorted(HOMES))
def test_one_home_for_exploration_and_for_formatting(topic: str) -> None:
    """Exploration (epsilon mixing, softmax over the allowed actions, per-row draws) lives
    in :mod:`agents.exploration`, number formatting (amounts with thousands separators,
    ``estimate [low, high]``) in :mod:`experiments.evaluation.formatting`: a second copy
    elsewhere drifts from the first. Use the home's functions instead."""
    home = HOMES[topic][0]
    assert home in MODULES, f"{home} is the home of {topic}"
    found = second_homes(topic, MODULES)
    assert not found, f"{topic} belongs in {where(home)}; found elsewhere:\n" + "\n".join(found)
    home_tree = ast.parse(MODULES[home].read_text(encoding="utf-8"))
    assert any(check(fn) for fn in functions(home_tree) for check in HOMES[topic][1])


SECOND_COPIES = {
    "exploration": """
import numpy as np

def explore(decided, allowed, eps):
    p = allowed * (eps / allowed.sum(axis=1, keepdims=True))
    p[np.arange(len(decided)), decided] += 1.0 - eps
    return p

def soft(scores, allowed, tau):
    z = np.where(allowed, scores / tau, -np.inf)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

def draw(p, rng):
    cdf = np.cumsum(p, axis=1)
    return (cdf < rng.random(len(p))[:, None] * cdf[:, -1:]).sum(axis=1)
""",
    "formatting": """
def _eur(x):
    return f"€{x:,.0f}"

def _fmt(i, spec):
    return f"{spec.format(i['estimate'])} [{spec.format(i['low'])}, {spec.format(i['high'])}]"

TICKS = lambda x, _: f"{x / 1000:,.0f}k"
""",
}


@pytest.mark.parametrize("topic", sorted(HOMES))
def test_a_second_home_is_found(topic: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy.py"
    copy.write_text(SECOND_COPIES[topic], encoding="utf-8")
    found = second_homes(topic, {"copy": copy})
    assert len(found) == 3, found
