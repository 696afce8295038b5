"""The ``alert_deliveries`` table: one row per attempt to deliver an alert, a retraining request or a
resolution to one channel of its monitor.

The dispatcher is its only writer. A target's delivery is derived from its attempts: each of the
``channels`` it had when it fired is ``delivered`` once an attempt succeeded, ``failed`` once a final
attempt failed, ``pending`` until then; a channel with neither is still owed (``owed_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.channels import ChannelType
from schemas.events import AlertEvent, AlertResolved, RetrainEvent
from streams.storage import expiry
from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

TABLE = "alert_deliveries"
EventType = Literal["alert", "retrain", "alert.resolved", "alert.group"]
TargetStatus = Literal["pending", "delivered", "failed"]
DeliveryStatus = Literal["none", "pending", "delivered", "failed"]
_COLUMNS = [
    "project",
    "target_id",
    "target_type",
    "monitor_id",
    "channel_index",
    "channel",
    "url",
    "attempt",
    "status_code",
    "error",
    "latency_ms",
    "succeeded",
    "final",
    "at",
]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one try at one channel came to. ``url`` is safe to store and log."""

    url: str
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: float
    succeeded: bool
    final: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryAttempt(AttemptResult):
    """One try at one target, as the dispatcher stores it."""

    target_id: str  # alert_id or request_id
    event_type: EventType
    channel: ChannelType


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """One channel of an alert or request, summarised from its delivery attempts."""

    channel_index: int
    channel: str
    url: Annotated[str, Field(description="without secrets")]  # ``safe_url``
    status: TargetStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """How far an alert or request got to its channels, overall and per channel."""

    status: Annotated[
        DeliveryStatus,
        Field(description="none: no channels; delivered: every channel; failed: a channel gave up after its retries"),
    ]
    channels: int
    attempts: int
    targets: tuple[DeliveryTarget, ...]


@dataclass(frozen=True, slots=True)
class StoredAttempt(AttemptResult):
    """One delivery attempt as stored (``alert_deliveries``)."""

    channel_index: int
    channel: str
    event: str = "alert"  # what was sent: ``alert``, ``alert.resolved`` or ``retrain``


@dataclass(frozen=True)
class Pending:
    """A stored event whose delivery is unfinished: the channel indexes (of its monitor) still owed it."""

    event: AlertEvent | RetrainEvent | AlertResolved
    monitor_id: str
    missing: list[int]


def summary(channels: int, targets: Sequence[DeliveryTarget]) -> DeliverySummary:
    """``none`` (no channels) | ``pending`` | ``delivered`` (every channel) | ``failed`` (any channel
    gave up), with the per-channel breakdown."""
    status: DeliveryStatus
    if channels == 0:
        status = "none"
    elif len(targets) < channels or any(t.status == "pending" for t in targets):
        status = "pending"
    elif all(t.status == "delivered" for t in targets):
        status = "delivered"
    else:
        status = "failed"
    return DeliverySummary(status, channels, sum(t.attempts for t in targets), tuple(targets))


def _target(row: Mapping[str, Any]) -> DeliveryTarget:
    """One channel's summary row (``targets``'s query)."""
    return DeliveryTarget(
        channel_index=row["channel_index"],
        channel=row["channel"],
        url=row["url"],
        status="delivered" if row["delivered"] else ("failed" if row["done"] else "pending"),
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"] or None,
        last_attempt_at=as_utc(row["last_attempt_at"]),
    )


def _attempt(row: Mapping[str, Any]) -> StoredAttempt:
    return StoredAttempt(
        channel_index=row["channel_index"],
        channel=row["channel"],
        url=row["url"],
        attempt=row["attempt"],
        status_code=row["status_code"],
        error=row["error"] or None,
        latency_ms=row["latency_ms"],
        succeeded=bool(row["succeeded"]),
        final=bool(row["final"]),
        at=as_utc(row["at"]),
        event=row["event"],
    )


def insert(
    storage: Storage, project: str, monitor_id: str, channel_index: int, attempts: Sequence[DeliveryAttempt]
) -> None:
    """Store attempts in one insert (a grouped message: the same attempt for each of its alerts)."""
    rows = [
        [
            project,
            attempt.target_id,
            attempt.event_type,
            monitor_id,
            channel_index,
            attempt.channel,
            attempt.url,
            attempt.attempt,
            attempt.status_code,
            attempt.error or "",
            attempt.latency_ms,
            int(attempt.succeeded),
            int(attempt.final),
            attempt.at,
        ]
        for attempt in attempts
    ]
    storage.insert_rows(TABLE, _COLUMNS, rows)


def targets(storage: Storage, project: str, ids: Sequence[str]) -> dict[str, list[DeliveryTarget]]:
    """Per target id, one summary per channel index, from its attempts."""
    if not ids:
        return {}
    rows = storage.rows(
        "SELECT target_id, channel_index, argMax(channel, at) AS channel, argMax(url, at) AS url, "
        "count() AS attempts, max(final) AS done, max(succeeded) AS delivered, "
        "argMax(status_code, at) AS last_status_code, argMax(error, at) AS last_error, max(at) AS last_attempt_at "
        f"FROM {storage.database}.{TABLE} WHERE project = "
        "{project:String} AND target_id IN {ids:Array(String)} "
        "GROUP BY target_id, channel_index ORDER BY target_id, channel_index",
        {"project": project, "ids": list(ids)},
    )
    out: dict[str, list[DeliveryTarget]] = {}
    for row in rows:
        out.setdefault(row["target_id"], []).append(_target(row))
    return out


def attempts(storage: Storage, project: str, target_ids: Sequence[str]) -> list[StoredAttempt]:
    """Every attempt of these targets, oldest first."""
    rows = storage.rows(
        "SELECT channel_index, channel, url, attempt, status_code, error, latency_ms, succeeded, final, at, "
        f"target_type AS event FROM {storage.database}.{TABLE} WHERE project = {{project:String}} "
        "AND target_id IN {ids:Array(String)} ORDER BY at, channel_index, attempt",
        {"project": project, "ids": list(target_ids)},
    )
    return [_attempt(row) for row in rows]


def owed_rows(
    storage: Storage,
    table: str,
    id_column: str,
    time_column: str,
    columns: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    limit: int,
    where: str = "",
) -> list[dict[str, Any]]:
    """The rows of ``table`` (alerts, retraining requests, resolutions) stored in
    [``since``, ``until``] that still owe a channel a delivery: ``columns`` and ``missing`` (the channel
    indexes owed), oldest first, at most ``limit``. ``where`` narrows the rows (``AND …``).

    A channel is owed until it has a successful or a final attempt, so a channel that got a 2xx is
    never listed again."""
    db = storage.database
    sql = (
        f"SELECT {', '.join(f't.{name} AS {name}' for name in columns)}, "
        "arrayFilter(i -> NOT has(d.done, i), range(t.channels)) AS missing "
        f"FROM (SELECT * FROM {db}.{table} FINAL WHERE channels > 0 "
        f"AND {time_column} BETWEEN {{since:DateTime64(3, 'UTC')}} "
        f"AND {{until:DateTime64(3, 'UTC')}} {where}) AS t "
        "LEFT JOIN (SELECT project, target_id, groupArrayIf(channel_index, final = 1 OR succeeded = 1) AS done "
        f"FROM {db}.{TABLE} WHERE at >= "
        "{since:DateTime64(3, 'UTC')} GROUP BY project, target_id) AS d "
        f"ON t.project = d.project AND t.{id_column} = d.target_id "
        f"WHERE notEmpty(missing) ORDER BY t.{time_column} LIMIT {{limit:UInt32}}"
    )
    return storage.rows(sql, {"since": ch_time(since), "until": ch_time(until), "limit": limit})


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's delivery attempts made before ``cutoff`` (retention)."""
    return expiry.expire(storage, "alert_deliveries", project, "at", cutoff)
