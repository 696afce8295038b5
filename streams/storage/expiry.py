"""Expiring a project's rows older than a moment, as each table's module asks (the retention sweeper).

Rows are counted first and a mutation is issued only when some are due, so a repeated sweep costs
one count per table and rewrites nothing; ``mutations_sync`` waits for the mutation, so when a call
returns the rows are gone (or blank) in every part.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from streams.storage.client import Storage


def expire(
    storage: Storage,
    table: str,
    project: str,
    column: str,
    cutoff: datetime,
    *,
    blank: Sequence[str] = (),
    extra: str = "",
) -> int:
    """Delete the project's rows of ``table`` whose ``column`` is before ``cutoff`` or, with ``blank``,
    set those String columns to '' in the rows where any is not blank yet; returns the rows changed.
    ``extra``: a further condition of the table's module (constant SQL, may use ``{cutoff:…}``);
    ``column`` '': that condition alone says which rows are due."""
    where = "project = {project:String}"
    if column:
        where += f" AND {column} < {{cutoff:DateTime64(3, 'UTC')}}"
    if blank:
        where += " AND (" + " OR ".join(f"{name} != ''" for name in blank) + ")"
    if extra:
        where += f" AND ({extra})"
    params = {"project": project, "cutoff": cutoff}
    db = storage.database
    due = int(storage.scalar(f"SELECT count() FROM {db}.{table} WHERE {where}", params))
    if due:
        action = "UPDATE " + ", ".join(f"{name} = ''" for name in blank) if blank else "DELETE"
        storage.command(f"ALTER TABLE {db}.{table} {action} WHERE {where} SETTINGS mutations_sync = 2", params)
    return due
