"""The ``monitors`` table: each project's monitors (``schemas.monitors.Monitor`` as JSON).

Every change writes a new row of the monitor (``version`` = nanoseconds); reads take the newest with
``FINAL``; a deletion is a row with ``deleted = 1``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import structlog
from pydantic import ValidationError

from schemas.monitors import Monitor
from streams.storage.client import Storage

log = structlog.get_logger(__name__)

TABLE = "monitors"
_COLUMNS = ["project", "monitor_id", "body", "deleted", "version", "updated_at"]


def stored(storage: Storage, project: str, monitor_id: str | None = None) -> list[Monitor]:
    """The project's monitors (or the one of that id), by id; rows no longer valid are skipped and logged."""
    where = "project = {project:String}" + (" AND monitor_id = {monitor_id:String}" if monitor_id else "")
    rows = storage.rows(
        f"SELECT body FROM {storage.database}.{TABLE} FINAL WHERE {where} AND deleted = 0 ORDER BY monitor_id",
        {"project": project, "monitor_id": monitor_id or ""},
    )
    monitors = []
    for row in rows:
        try:
            monitors.append(Monitor.model_validate_json(row["body"]))
        except ValidationError as exc:  # written by an older version with other rules: skip, say so
            log.error("monitor_unreadable", project=project, error=str(exc)[:500])
    return monitors


def projects(storage: Storage) -> list[str]:
    """Projects with at least one stored monitor."""
    rows = storage.query(
        f"SELECT DISTINCT project FROM {storage.database}.{TABLE} FINAL WHERE deleted = 0 ORDER BY project"
    ).result_rows
    return [project for (project,) in rows]


def write(storage: Storage, monitor: Monitor, *, deleted: bool = False) -> None:
    """Store a new version of ``monitor`` (or its deletion)."""
    body = orjson.dumps(monitor.storage_json()).decode()
    storage.insert_rows(
        TABLE,
        _COLUMNS,
        [[monitor.project, monitor.monitor_id, body, int(deleted), time.time_ns(), datetime.now(UTC)]],
    )
