"""The ``audit_log`` table: who (a key id, the admin key, a dashboard session) did what, and when.

Anything that changes who may do what, what is collected or what is kept, or that takes raw text out
in bulk, calls ``record`` once, after it succeeded::

    audit.record(storage, "key:3fa2c1d0e9b8", "dataset.create", project="shop", target=dataset_id)

Actors read the same everywhere: ``actor_of_key`` (``key:<key id>``), ``ADMIN`` (the server's admin
key), ``CLI`` (the ``loopwatch keys`` commands), and for a dashboard session ``api.ui.web.Ui.actor``
(``ui:key:<key id>``, ``ui:admin``).
``details`` holds small facts (counts, a scope, a mode), never a prompt or a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import structlog

from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

TABLE = "audit_log"
ADMIN = "admin"  # the server's admin key (LOOPWATCH_ADMIN_KEY)
CLI = "cli"  # ``loopwatch keys …`` on the server's data directory
_COLUMNS = ["at", "project", "actor", "action", "target", "details"]
Detail = str | int | float | bool | None

log = structlog.get_logger(__name__)


def actor_of_key(key_id: str) -> str:
    return f"key:{key_id}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    project: str
    actor: str
    action: str  # "<resource>.<verb>": key.create, monitor.update, subject.erase, feedback.export, …
    target: str = ""
    details: Mapping[str, Detail] = field(default_factory=dict)


def record(
    storage: Storage,
    actor: str,
    action: str,
    *,
    project: str = "",
    target: str = "",
    details: Mapping[str, Detail] | None = None,
) -> AuditEntry:
    """Append one entry (now) and log it; returns it."""
    entry = AuditEntry(datetime.now(UTC), project, actor, action, target, dict(details or {}))
    storage.insert_rows(
        TABLE,
        _COLUMNS,
        [[entry.at, entry.project, entry.actor, entry.action, entry.target, orjson.dumps(entry.details).decode()]],
    )
    log.info("audit", action=action, actor=actor, project=project, target=target)
    return entry


def entries(
    storage: Storage,
    *,
    project: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries, newest first: of one project (None: every project), one action, a time range."""
    where, params = [], {}
    if project is not None:
        where.append("project = {project:String}")
        params["project"] = project
    if action is not None:
        where.append("action = {action:String}")
        params["action"] = action
    if since is not None:
        where.append("at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = ch_time(since)
    if until is not None:
        where.append("at < {until:DateTime64(3, 'UTC')}")
        params["until"] = ch_time(until)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = storage.rows(
        f"SELECT at, project, actor, action, target, details FROM {storage.database}.{TABLE} {clause} "
        f"ORDER BY at DESC, id LIMIT {int(limit)}",
        params,
    )
    return [
        AuditEntry(
            as_utc(row["at"]), row["project"], row["actor"], row["action"], row["target"], orjson.loads(row["details"])
        )
        for row in rows
    ]
