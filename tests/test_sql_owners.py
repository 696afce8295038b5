"""One owner per table: SQL is written only in ``streams/storage/`` (a module per ClickHouse table).

Every other product module reaches ClickHouse through those modules. The test reads the source of every
module outside ``streams/storage/`` for string literals that are SQL statements (``SELECT … FROM``,
``INSERT INTO``, ``ALTER TABLE``, ``CREATE TABLE``, ``DELETE FROM``, …) and for direct inserts
(``insert_json`` / ``insert_rows``), and fails for any module that has some.

There is no list of exceptions: a new query goes into the table's module under ``streams/storage/``
(or a new one, for a new table).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("api", "detectors", "loopwatch", "schemas", "sdk", "streams")
OWNERS = Path("streams/storage")

_SQL = re.compile(
    r"\bSELECT\b[\s\S]*?\bFROM\b|\bINSERT\s+INTO\b|\bALTER\s+TABLE\b|\bCREATE\s+(?:TABLE|DATABASE|VIEW|MATERIALIZED)\b"
    r"|\bDELETE\s+FROM\b|\bDROP\s+TABLE\b|\bOPTIMIZE\s+TABLE\b|\bTRUNCATE\s+TABLE\b"
)
_DIRECT_WRITES = frozenset({"insert_json", "insert_rows", "raw_insert"})


def _skipped(tree: ast.AST) -> set[int]:
    """ids of the string nodes not to read alone: docstrings (prose may say "select … from") and the
    literal parts of f-strings (read with their f-string)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.update(id(part) for part in node.values)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _literal_text(node: ast.AST) -> str | None:
    """The text of a string literal; an f-string's literal parts, its placeholders as ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    return None


def sql_in(source: str) -> list[str]:
    """What in ``source`` is SQL: each statement literal's first line, and each direct insert call."""
    tree = ast.parse(source)
    skip = _skipped(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        text = _literal_text(node)
        if text is not None and _SQL.search(text):
            found.append(f"line {getattr(node, 'lineno', '?')}: {text.strip().splitlines()[0][:80]}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _DIRECT_WRITES:
            found.append(f"line {node.lineno}: .{node.func.attr}(…)")
    return found


def offenders() -> dict[str, list[str]]:
    out = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.is_relative_to(OWNERS) or ".venv" in relative.parts:
                continue
            found = sql_in(path.read_text(encoding="utf-8"))
            if found:
                out[relative.as_posix()] = found
    return out


class TestSqlOwners:
    """SQL lives in streams/storage/, one module per table, and nowhere else."""

    def test_no_sql_outside_the_table_modules(self) -> None:
        found = offenders()
        assert not found, "SQL outside streams/storage/ (move it into the table's module there): " + "; ".join(
            f"{path}: {', '.join(lines)}" for path, lines in sorted(found.items())
        )

    def test_the_scan_finds_sql(self) -> None:
        """The detector itself: statements in plain and f-strings, direct inserts; not prose."""
        source = '''
"""Reads rows: SELECT what you need FROM the table, in prose."""
def f(storage, db):
    """SELECT x FROM y in a docstring is prose."""
    storage.query(f"SELECT a, b FROM {db}.t WHERE x = 1")
    storage.command("ALTER TABLE t DELETE WHERE 1")
    storage.insert_json("window_stats", b"[]")
    label = "Select a model from the list"
'''
        found = sql_in(source)
        assert sorted(line.split(":")[0] for line in found) == ["line 5", "line 6", "line 7"], found
