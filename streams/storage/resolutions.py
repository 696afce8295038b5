"""The ``alert_resolutions`` table: alerts that stopped breaching, and who still owes their message.

One row per resolved alert. Its id is derived from the alert, so processes that resolve the same alert
at once write the same row (collapsed by the table's key); a claim decides which of them announces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from schemas.events import AlertResolved
from streams.storage import deliveries, expiry
from streams.storage.client import Storage
from streams.storage.deliveries import Pending

_COLUMNS = [
    "project",
    "alert_id",
    "resolution_id",
    "monitor_id",
    "model",
    "calm_since",
    "calm_windows",
    "resolved_window_end",
    "body",
    "resolved_at",
    "channels",
]


def _resolution(row: Mapping[str, Any]) -> AlertResolved:
    return AlertResolved.model_validate_json(row["body"])


class ResolutionStore:
    """All SQL about ``alert_resolutions``."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._db = storage.database

    def insert(self, resolutions: Sequence[AlertResolved], channels: Mapping[str, int]) -> None:
        """Store resolutions; ``channels`` maps a resolution id to how many channels are owed its message."""
        rows = [
            [
                r.project,
                r.alert_id,
                r.resolution_id,
                r.monitor_id,
                r.model,
                r.calm_since,
                r.calm_windows,
                r.resolved_window_end,
                r.model_dump_json(),
                r.resolved_at,
                channels.get(r.resolution_id, 0),
            ]
            for r in resolutions
        ]
        if rows:
            self._storage.insert_rows("alert_resolutions", _COLUMNS, rows)

    def of_alerts(self, project: str, alert_ids: Sequence[str]) -> dict[str, AlertResolved]:
        """alert_id → its resolution, for the alerts of ``alert_ids`` that are resolved."""
        if not alert_ids:
            return {}
        rows = self._storage.rows(
            f"SELECT alert_id, body FROM {self._db}.alert_resolutions FINAL WHERE project = {{project:String}} "
            "AND alert_id IN {ids:Array(String)}",
            {"project": project, "ids": sorted(set(alert_ids))},
        )
        return {row["alert_id"]: _resolution(row) for row in rows}

    def count(self, project: str, alert_id: str) -> int:
        """Stored rows of an alert's resolution before merges (a test's view of "stored once")."""
        return int(
            self._storage.scalar(
                f"SELECT count() FROM {self._db}.alert_resolutions FINAL WHERE project = {{project:String}} "
                "AND alert_id = {id:String}",
                {"project": project, "id": alert_id},
            )
        )


def owed(storage: Storage, *, since: datetime, until: datetime, limit: int) -> list[Pending]:
    """Resolutions made in [since, until] that still owe a channel their message."""
    rows = deliveries.owed_rows(
        storage,
        "alert_resolutions",
        "resolution_id",
        "resolved_at",
        ["project", "resolution_id", "monitor_id", "body"],
        since=since,
        until=until,
        limit=limit,
    )
    return [Pending(_resolution(row), row["monitor_id"], list(row["missing"])) for row in rows]


def erase_of_alerts(storage: Storage, project: str, alert_ids: Sequence[str]) -> None:
    """Delete the resolutions of these alerts (their summaries are the alerts' words)."""
    expiry.delete_where(
        storage,
        "alert_resolutions",
        "project = {project:String} AND alert_id IN {ids:Array(String)}",
        {"project": project, "ids": list(alert_ids)},
    )


def delete_of_alerts(storage: Storage, project: str, cutoff: datetime, alerts: str) -> int:
    """Delete the resolutions of the alerts ``alerts`` (an ``alert_id IN (…)`` clause) selects (retention)."""
    return expiry.expire(storage, "alert_resolutions", project, "", cutoff, extra=alerts)
