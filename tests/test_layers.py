"""Imports point one way: schemas <- detectors <- streams <- api <- loopwatch (no back-edges), and no
modules of the whole tree import each other in a cycle.

The SDK (``sdk/loopwatch_sdk``, the ``loopwatch-sdk`` distribution) sits below all of them like any
third-party package: the server imports it, it imports nothing of the server, only the standard library
and its own declared dependencies.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"schemas": 0, "detectors": 1, "streams": 2, "api": 3, "loopwatch": 4}
SDK = ROOT / "sdk" / "loopwatch_sdk"
#: Import names of the SDK's dependencies (sdk/pyproject.toml); lz4 and crc32c are kafka-python's.
SDK_DEPENDENCIES = {"pydantic", "pydantic_core", "httpx", "kafka", "structlog"}


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Absolute imports, including those under ``if TYPE_CHECKING:`` (a cycle for the type checker too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _sdk_imports() -> dict[str, list[tuple[int, str]]]:
    return {
        f"loopwatch_sdk.{path.stem}" if path.stem != "__init__" else "loopwatch_sdk": _imported(
            ast.parse(path.read_text(encoding="utf-8"))
        )
        for path in sorted(SDK.glob("*.py"))
    }


def test_no_import_points_up_the_layers() -> None:
    back_edges = []
    for package, rank in RANK.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in _imported(ast.parse(path.read_text(encoding="utf-8"))):
                head = module.split(".")[0]
                if RANK.get(head, -1) > rank:
                    back_edges.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert back_edges == []


def test_the_sdk_imports_only_the_stdlib_and_its_own_dependencies() -> None:
    """An app installs loopwatch-sdk alone: an import of the server (or of anything undeclared) breaks it."""
    assert SDK.is_dir()
    allowed = SDK_DEPENDENCIES | {"loopwatch_sdk"} | set(sys.stdlib_module_names)
    foreign = [
        f"{module}:{line} imports {imported}"
        for module, imports in _sdk_imports().items()
        for line, imported in imports
        if imported.split(".")[0] not in allowed
    ]
    assert foreign == []


def _module_name(path: Path) -> str:
    base = SDK.parent if path.is_relative_to(SDK) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    """Every module of the tree (the five layers and the SDK) → the modules of the tree it imports.

    ``from a.b import c`` is an edge to the module ``a.b.c`` when there is one, else to ``a.b`` (the
    package whose ``__init__`` defines ``c``).
    """
    paths = {_module_name(path): path for package in [*RANK, SDK] for path in sorted((ROOT / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in paths}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    if name in paths or node.module in paths:
                        targets.add(name if name in paths else node.module)
        graph[module] = targets - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_anywhere() -> None:
    graph = _module_graph()
    assert {"schemas.monitors", "streams.monitors.evaluation", "api.routes.monitors", "loopwatch_sdk._emitter"} <= set(
        graph
    )
    assert "streams.monitors.alerts" in graph["streams.monitors.evaluation"]
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_only_the_composition_root_starts_a_process() -> None:
    """``start_runtime`` is called from ``loopwatch/`` alone: the API is handed a running process, and no
    module of ``streams/`` reaches back up to the composition root (as ``streams/kafka/runner.py`` did)."""
    callers = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        top = path.relative_to(ROOT).parts[0]
        if top not in RANK or path == ROOT / "streams" / "runtime.py":
            continue
        for _, name in _imported(ast.parse(path.read_text(), str(path))):
            if name == "streams.runtime.start_runtime":
                callers.append(str(path.relative_to(ROOT)))
    assert callers, "the composition root was not found: the scan is broken"
    assert {caller.split("/")[0] for caller in callers} == {"loopwatch"}, callers
