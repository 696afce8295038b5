"""The ``retrain_requests`` table: retraining requests as the engine made them, with the monitor that
made them and how many channels are owed each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, TypeVar, Unpack

from schemas.events import RetrainEvent
from streams.storage import deliveries
from streams.storage.alerts import json_text, json_value
from streams.storage.client import Storage
from streams.storage.deliveries import DeliverySummary, Pending
from streams.storage.times import as_utc, ch_time, time_range

_Retrain = TypeVar("_Retrain", bound=RetrainEvent)

COLUMNS = [
    "project",
    "request_id",
    "monitor_id",
    "model",
    "model_version",
    "reason",
    "window_start",
    "window_end",
    "evidence",
    "dataset",
    "created_at",
    "channels",
]


class StoredRetrain(RetrainEvent):
    """A retraining request with the monitor that fired it and its delivery so far."""

    monitor_id: str
    delivery: DeliverySummary


def _event(row: Mapping[str, Any], cls: type[_Retrain], **state: Any) -> _Retrain:
    """The row as ``cls`` (``insert`` in reverse): the ``RetrainEvent`` it was written from, or a
    ``StoredRetrain`` given its ``state`` (monitor, delivery)."""
    fields = {name: row[name] for name in RetrainEvent.model_fields}
    fields["reason"] = list(row["reason"])
    for name in ("evidence", "dataset"):
        fields[name] = json_value(row[name])
    for name in ("window_start", "window_end", "created_at"):
        fields[name] = as_utc(row[name])
    return cls.model_validate({**fields, **state})


def insert(
    storage: Storage, retrains: Sequence[RetrainEvent], monitor_ids: Mapping[str, str], channels: Mapping[str, int]
) -> None:
    """Store requests; ``monitor_ids`` and ``channels`` map a request id to its monitor and channel count."""
    rows = [
        [
            r.project,
            r.request_id,
            monitor_ids.get(r.request_id, ""),
            r.model,
            r.model_version,
            list(r.reason),
            r.window_start,
            r.window_end,
            json_text(r.evidence),
            json_text(r.dataset),
            r.created_at,
            channels.get(r.request_id, 0),
        ]
        for r in retrains
    ]
    storage.insert_rows("retrain_requests", COLUMNS, rows)


def monitor_and_channels(storage: Storage, project: str, request_id: str) -> tuple[str, int] | None:
    """The stored request's monitor id and channel count; None when it is not stored."""
    rows = storage.rows(
        f"SELECT monitor_id, channels FROM {storage.database}.retrain_requests FINAL "
        "WHERE project = {project:String} AND request_id = {id:String}",
        {"project": project, "id": request_id},
    )
    return (str(rows[0]["monitor_id"]), int(rows[0]["channels"])) if rows else None


def last_window_end(storage: Storage, project: str, model: str, before: datetime) -> datetime | None:
    """End of the newest request's window for ``model`` that ended by ``before``."""
    value = storage.scalar(
        f"SELECT max(window_end) FROM {storage.database}.retrain_requests WHERE project = {{project:String}} "
        "AND model = {model:String} AND window_end <= {before:DateTime64(3, 'UTC')}",
        {"project": project, "model": model, "before": ch_time(before)},
    )
    if value is None or as_utc(value).year < 2000:  # max() over no rows is the epoch
        return None
    return as_utc(value)


def owed(storage: Storage, *, since: datetime, until: datetime, limit: int) -> list[Pending]:
    """Requests made in [since, until] that still owe a channel a delivery."""
    rows = deliveries.owed_rows(
        storage, "retrain_requests", "request_id", "created_at", COLUMNS, since=since, until=until, limit=limit
    )
    return [Pending(_event(row, RetrainEvent), row["monitor_id"], list(row["missing"])) for row in rows]


class RetrainQuery(TypedDict, total=False):
    """Which requests ``listed`` returns: each filter given narrows them; ``since``/``until`` bound ``created_at``."""

    model: str | None
    request_id: str | None
    since: datetime | None
    until: datetime | None
    limit: int


def listed(storage: Storage, project: str, **query: Unpack[RetrainQuery]) -> list[StoredRetrain]:
    """Requests of ``project``, newest first (at most ``limit``, 100 unless given)."""
    where = ["project = {project:String}"]
    params: dict[str, Any] = {"project": project, "limit": query.get("limit", 100)}
    for name in ("model", "request_id"):
        value = query.get(name)
        if value is not None:
            where.append(f"{name} = {{{name}:String}}")
            params[name] = value
    where += time_range(params, query.get("since"), query.get("until"), column="created_at")
    rows = storage.rows(
        "SELECT request_id, project, monitor_id, model, model_version, reason, window_start, window_end, "
        f"evidence, dataset, created_at, channels FROM {storage.database}.retrain_requests FINAL "
        f"WHERE {' AND '.join(where)} ORDER BY created_at DESC, request_id LIMIT {{limit:UInt32}}",
        params,
    )
    targets = deliveries.targets(storage, project, [row["request_id"] for row in rows])
    return [
        _event(
            row,
            StoredRetrain,
            monitor_id=row["monitor_id"],
            delivery=deliveries.summary(row["channels"], targets.get(row["request_id"], [])),
        )
        for row in rows
    ]
