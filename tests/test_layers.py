"""Imports point one way: schemas <- detectors <- streams <- api <- loopwatch (no back-edges)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"schemas": 0, "detectors": 1, "streams": 2, "api": 3, "loopwatch": 4}


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module))
    return found


def test_no_import_points_up_the_layers() -> None:
    back_edges = []
    for package, rank in RANK.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in _imported(ast.parse(path.read_text(encoding="utf-8"))):
                head = module.split(".")[0]
                if RANK.get(head, -1) > rank:
                    back_edges.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert back_edges == []
