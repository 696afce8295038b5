"""Deleting rows a condition selects, as each table's module asks: erasure of a user and the retention
sweeper (a project's rows older than a moment).

Rows are counted first and a mutation is issued only when some are due, so a repeated sweep or erasure
costs one count per table and rewrites nothing; ``mutations_sync`` waits for the mutation, so when a
call returns the rows are gone (or blank) in every part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from streams.storage.client import Storage


def delete_where(storage: Storage, table: str, where: str, params: Mapping[str, Any], *, count: str = "count()") -> int:
    """Delete the rows of ``table`` that ``where`` selects; returns how many, as ``count`` counts them
    (``uniqExact(id)`` where re-sent copies count once). ``where`` is constant SQL of the table's module:
    every value in it is a bound parameter of ``params`` (``{name:Type}``), never formatted in."""
    return _mutate(storage, table, "DELETE", where, params, count)


def blank_where(storage: Storage, table: str, columns: Sequence[str], where: str, params: Mapping[str, Any]) -> int:
    """Set the String ``columns`` to '' in the rows ``where`` selects (as ``delete_where``) where any is
    not blank yet; returns how many rows that was."""
    unblank = " OR ".join(f"{name} != ''" for name in columns)
    action = "UPDATE " + ", ".join(f"{name} = ''" for name in columns)
    return _mutate(storage, table, action, f"({where}) AND ({unblank})", params, "count()")


def _mutate(storage: Storage, table: str, action: str, where: str, params: Mapping[str, Any], count: str) -> int:
    db = storage.database
    due = int(storage.scalar(f"SELECT {count} FROM {db}.{table} WHERE {where}", params))
    if due:
        storage.command(f"ALTER TABLE {db}.{table} {action} WHERE {where} SETTINGS mutations_sync = 2", params)
    return due


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
    if extra:
        where += f" AND ({extra})"
    params = {"project": project, "cutoff": cutoff}
    return blank_where(storage, table, blank, where, params) if blank else delete_where(storage, table, where, params)
