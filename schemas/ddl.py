"""Numbered ClickHouse migrations, shipped as SQL files beside this module.

Each file is a list of statements separated by ``;`` with ``{db}`` standing for the database. Applying
is idempotent: every statement is ``IF NOT EXISTS`` and applied versions are recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    def render(self, database: str) -> list[str]:
        return [statement.replace("{db}", database) for statement in self.statements]


def _split(sql: str) -> tuple[str, ...]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return tuple(part.strip() for part in "\n".join(lines).split(";") if part.strip())


def migrations() -> list[Migration]:
    """All migrations in version order."""
    found = []
    for entry in resources.files("schemas.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], _split(entry.read_text(encoding="utf-8"))))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found
