"""Imports point one way: schemas <- detectors <- streams <- api <- loopwatch (no back-edges).

The SDK (``sdk/loopwatch_sdk``, the ``loopwatch-sdk`` distribution) sits below all of them like any
third-party package: the server imports it, it imports nothing of the server, only the standard library
and its own declared dependencies, and its modules do not import each other in a cycle.
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


def test_no_import_cycle_within_the_sdk() -> None:
    modules = _sdk_imports()
    edges = {
        module: {imported for _, imported in imports if imported in modules and imported != "loopwatch_sdk"}
        for module, imports in modules.items()
    }
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(edges[module]):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            else:
                visit(target, [*path, target])

    for module in sorted(edges):
        visit(module, [module])
    assert cycles == []
