"""The ``alerts`` and ``alert_acks`` tables: alerts as fired, and their acknowledgements.

Each table has one writer: the engine writes alerts once, the API writes acknowledgements. Reads join
them (and the alert's delivery attempts and resolution), so an acknowledgement can never be overwritten
by a delivery update (or the other way round), even when they happen in different processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, TypeVar, Unpack

import orjson
from pydantic import Field

from schemas.events import AlertEvent, AlertResolved
from streams.storage import deliveries, expiry, resolutions
from streams.storage.client import Storage
from streams.storage.deliveries import DeliverySummary, Pending, StoredAttempt
from streams.storage.times import as_utc, ch_time, time_range

AlertStatus = Literal["open", "acked"]
_Alert = TypeVar("_Alert", bound=AlertEvent)

COLUMNS = [
    "project",
    "alert_id",
    "monitor_id",
    "monitor_name",
    "model",
    "model_version",
    "kind",
    "severity",
    "window_start",
    "window_end",
    "metric",
    "dimension",
    "value",
    "threshold",
    "condition",
    "p_value",
    "details",
    "report_url",
    "fired_at",
    "dedup_key",
    "channels",
    "summary",
    "alert_url",
    "window_url",
    "api_url",
    "snoozed_until",
    "entities",
]
_URL_COLUMNS = ("alert_url", "window_url", "api_url")
_UNRESOLVED = "alert_id NOT IN (SELECT alert_id FROM {db}.alert_resolutions WHERE project = {{project:String}})"


class StoredAlert(AlertEvent):
    """An alert as the API lists it: the event, its acknowledgement and its delivery so far."""

    status: AlertStatus
    acked_at: datetime | None
    acked_by: str | None
    ack_note: str | None
    delivery: DeliverySummary
    resolution: AlertResolved | None = Field(
        default=None, description="set once the alert stopped breaching (resolve_after)"
    )


class AlertDetail(StoredAlert):
    """One alert with every delivery attempt, oldest first."""

    attempts: tuple[StoredAttempt, ...] = Field(description="every delivery attempt, oldest first")


def json_text(value: Any) -> str:
    """A JSON column's text (numpy values and non-string keys allowed)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def json_value(text: str) -> dict[str, Any]:
    """A JSON column's value ('' is {})."""
    return orjson.loads(text) if text else {}


def _event(row: Mapping[str, Any], cls: type[_Alert], **state: Any) -> _Alert:
    """The ``alerts`` row as ``cls`` (``insert`` in reverse): the ``AlertEvent`` it was written from, or
    a ``StoredAlert`` given its ``state`` (acknowledgement, delivery)."""
    fields = {name: row[name] for name in AlertEvent.model_fields if name != "stats_api_url"}
    fields["details"] = json_value(row["details"])
    fields["stats_api_url"] = row["report_url"] or None  # the column's older name
    for name in _URL_COLUMNS:
        fields[name] = row[name] or None
    for name in ("window_start", "window_end", "fired_at"):
        fields[name] = as_utc(row[name])
    if row["snoozed_until"] is not None:
        fields["snoozed_until"] = as_utc(row["snoozed_until"])
    return cls.model_validate({**fields, **state})


def insert(storage: Storage, alerts: Sequence[AlertEvent], channels: Mapping[str, int]) -> None:
    """Store alerts; ``channels`` maps an alert id to how many channels are owed it."""
    rows = [
        [
            a.project,
            a.alert_id,
            a.monitor_id,
            a.monitor_name,
            a.model,
            a.model_version,
            a.kind,
            a.severity,
            a.window_start,
            a.window_end,
            a.metric,
            a.dimension,
            a.value,
            a.threshold,
            a.condition,
            a.p_value,
            json_text(a.details),
            a.stats_api_url or "",
            a.fired_at,
            a.dedup_key,
            channels.get(a.alert_id, 0),
            a.summary,
            a.alert_url or "",
            a.window_url or "",
            a.api_url or "",
            a.snoozed_until,
            list(a.entities),
        ]
        for a in alerts
    ]
    storage.insert_rows("alerts", COLUMNS, rows)


def by_dedup_key(storage: Storage, project: str, keys: Iterable[str]) -> dict[str, str]:
    """dedup_key → alert_id for the keys that already fired."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = storage.query(
        f"SELECT dedup_key, any(alert_id) FROM {storage.database}.alerts WHERE project = {{project:String}} "
        "AND dedup_key IN {keys:Array(String)} GROUP BY dedup_key",
        {"project": project, "keys": keys},
    ).result_rows
    return {key: alert_id for key, alert_id in rows}


def fired_between(
    storage: Storage, project: str, model: str, monitor_ids: Iterable[str], start: datetime, end: datetime
) -> list[tuple[str, datetime, str]]:
    """(monitor_id, window_start, alert_id) of unresolved alerts of ``model`` with windows in [start, end]:
    the alerts whose cooldown holds back a new one (a resolved alert's breach is over)."""
    ids = sorted(set(monitor_ids))
    if not ids:
        return []
    db = storage.database
    rows = storage.query(
        f"SELECT monitor_id, window_start, alert_id FROM {db}.alerts WHERE project = {{project:String}} "
        "AND model = {model:String} AND monitor_id IN {ids:Array(String)} "
        "AND window_start BETWEEN {start:DateTime64(3, 'UTC')} AND {end:DateTime64(3, 'UTC')} "
        f"AND {_UNRESOLVED.format(db=db)}",
        {"project": project, "model": model, "ids": ids, "start": ch_time(start), "end": ch_time(end)},
    ).result_rows
    return [(monitor_id, as_utc(window_start), alert_id) for monitor_id, window_start, alert_id in rows]


def entities_fired_between(
    storage: Storage, project: str, model: str, monitor_id: str, start: datetime, end: datetime
) -> dict[str, str]:
    """entity → alert_id of the unresolved alerts of a group_by monitor on ``model`` with windows in
    [start, end]."""
    db = storage.database
    rows = storage.query(
        f"SELECT entity, any(alert_id) FROM {db}.alerts ARRAY JOIN entities AS entity "
        "WHERE project = {project:String} AND model = {model:String} AND monitor_id = {monitor_id:String} "
        "AND window_start BETWEEN {start:DateTime64(3, 'UTC')} AND {end:DateTime64(3, 'UTC')} "
        f"AND {_UNRESOLVED.format(db=db)} GROUP BY entity",
        {"project": project, "model": model, "monitor_id": monitor_id, "start": ch_time(start), "end": ch_time(end)},
    ).result_rows
    return {entity: alert_id for entity, alert_id in rows}


def firing(
    storage: Storage, project: str, *, model: str | None = None, monitor_id: str | None = None
) -> list[AlertEvent]:
    """Unresolved alerts of ``model`` and/or ``monitor_id``, oldest window first (at most 1,000)."""
    db = storage.database
    where = ["project = {project:String}"]
    params = {"project": project}
    for name, value in (("model", model), ("monitor_id", monitor_id)):
        if value is not None:
            where.append(f"{name} = {{{name}:String}}")
            params[name] = value
    rows = storage.rows(
        f"SELECT * FROM {db}.alerts FINAL WHERE {' AND '.join(where)} AND {_UNRESOLVED.format(db=db)} "
        "ORDER BY window_start LIMIT 1000",
        params,
    )
    return [_event(row, AlertEvent) for row in rows]


def owed(storage: Storage, *, since: datetime, until: datetime, limit: int) -> list[Pending]:
    """Unacknowledged alerts fired in [since, until] that still owe a channel a delivery (an acknowledged
    alert is never listed: nobody needs to be told any more)."""
    acked = f"AND (project, alert_id) NOT IN (SELECT project, alert_id FROM {storage.database}.alert_acks) "
    rows = deliveries.owed_rows(
        storage, "alerts", "alert_id", "fired_at", COLUMNS, since=since, until=until, limit=limit, where=acked
    )
    return [Pending(_event(row, AlertEvent), row["monitor_id"], list(row["missing"])) for row in rows]


class AlertQuery(TypedDict, total=False):
    """Which alerts ``listed`` returns: each filter given narrows them; ``since``/``until`` bound ``fired_at``."""

    model: str | None
    kind: str | None
    severity: str | None
    monitor_id: str | None
    status: AlertStatus | None
    since: datetime | None
    until: datetime | None
    limit: int


def listed(storage: Storage, project: str, **query: Unpack[AlertQuery]) -> list[StoredAlert]:
    """Alerts of ``project``, newest first (at most ``limit``, 100 unless given)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    for name in ("model", "kind", "severity", "monitor_id"):
        value = query.get(name)
        if value is not None:
            where.append(f"{name} = {{{name}:String}}")
            params[name] = value
    where += time_range(params, query.get("since"), query.get("until"), column="fired_at")
    return _stored(storage, project, where, params, query.get("status"), query.get("limit", 100))


def _stored(
    storage: Storage, project: str, where: list[str], params: dict[str, Any], status: AlertStatus | None, limit: int
) -> list[StoredAlert]:
    """Alerts of ``project`` matching ``where`` (clauses on ``alerts``' columns), newest first, each with
    its acknowledgement, delivery and resolution."""
    db = storage.database
    clauses = ["project = {project:String}", *where]
    acked = {"open": "WHERE k.acked = 0", "acked": "WHERE k.acked = 1"}.get(status or "", "")
    rows = storage.rows(
        "SELECT a.alert_id AS alert_id, a.project AS project, a.monitor_id AS monitor_id, "
        "a.monitor_name AS monitor_name, a.model AS model, a.model_version AS model_version, a.kind AS kind, "
        "a.severity AS severity, a.window_start AS window_start, a.window_end AS window_end, a.metric AS metric, "
        "a.dimension AS dimension, a.value AS value, a.threshold AS threshold, a.condition AS condition, "
        "a.p_value AS p_value, a.details AS details, a.report_url AS report_url, a.fired_at AS fired_at, "
        "a.dedup_key AS dedup_key, a.channels AS channels, a.summary AS summary, a.alert_url AS alert_url, "
        "a.window_url AS window_url, a.api_url AS api_url, a.snoozed_until AS snoozed_until, "
        "a.entities AS entities, k.acked AS acked, k.acked_at AS acked_at, "
        "k.acked_by AS acked_by, k.note AS ack_note "
        f"FROM (SELECT * FROM {db}.alerts FINAL WHERE {' AND '.join(clauses)}) AS a "
        "LEFT JOIN (SELECT alert_id, toUInt8(1) AS acked, acked_at, acked_by, note "
        f"FROM {db}.alert_acks FINAL WHERE project = {{project:String}}) AS k ON a.alert_id = k.alert_id "
        f"{acked} ORDER BY a.fired_at DESC, a.alert_id LIMIT {{limit:UInt32}}",
        {**params, "project": project, "limit": limit},
    )
    ids = [row["alert_id"] for row in rows]
    targets = deliveries.targets(storage, project, ids)
    resolved = resolutions.ResolutionStore(storage).of_alerts(project, ids)
    return [
        _event(
            row,
            StoredAlert,
            status="acked" if row["acked"] else "open",
            acked_at=as_utc(row["acked_at"]) if row["acked"] else None,
            acked_by=row["acked_by"] if row["acked"] else None,
            ack_note=row["ack_note"] if row["acked"] else None,
            delivery=deliveries.summary(row["channels"], targets.get(row["alert_id"], [])),
            resolution=resolved.get(row["alert_id"]),
        )
        for row in rows
    ]


def detail(storage: Storage, project: str, alert_id: str) -> AlertDetail | None:
    """One alert with every delivery attempt (of it and of its resolution)."""
    rows = _stored(storage, project, ["alert_id = {alert_id:String}"], {"alert_id": alert_id}, None, 1)
    if not rows:
        return None
    alert = rows[0]
    ids = [alert_id] + ([alert.resolution.resolution_id] if alert.resolution is not None else [])
    return AlertDetail(**dict(alert), attempts=tuple(deliveries.attempts(storage, project, ids)))


def open_counts(storage: Storage, project: str) -> dict[tuple[str, str], int]:
    """Open (unacknowledged) alerts per (model, severity)."""
    db = storage.database
    rows = storage.query(
        f"SELECT model, severity, count() FROM {db}.alerts FINAL WHERE project = {{project:String}} "
        f"AND alert_id NOT IN (SELECT alert_id FROM {db}.alert_acks WHERE project = {{project:String}}) "
        "GROUP BY model, severity",
        {"project": project},
    ).result_rows
    return {(str(model), str(severity)): int(count) for model, severity, count in rows}


def insert_ack(storage: Storage, project: str, alert_id: str, *, by: str, note: str) -> None:
    """Store an acknowledgement of ``alert_id`` (readers keep the first)."""
    storage.insert_rows(
        "alert_acks",
        ["project", "alert_id", "acked_at", "acked_by", "note"],
        [[project, alert_id, datetime.now(UTC), by, note]],
    )


def erase_user(storage: Storage, project: str, user_id: str) -> int:
    """Delete the alerts whose entities name the user (``user_id=<id>``: a monitor grouped by the
    ``user_id`` tag, or silent per user) with their acknowledgements and resolutions, whose summaries
    name the user too. Returns how many alerts that was."""
    params = {"project": project, "entity": f"user_id={user_id}"}
    db = storage.database
    ids = [
        alert_id
        for (alert_id,) in storage.query(
            f"SELECT DISTINCT alert_id FROM {db}.alerts WHERE project = {{project:String}} "
            "AND has(entities, {entity:String})",
            params,
        ).result_rows
    ]
    if ids:
        resolutions.erase_of_alerts(storage, project, ids)
        of_ids = "project = {project:String} AND alert_id IN {ids:Array(String)}"
        for table in ("alert_acks", "alerts"):  # the alerts last: a repeated erasure finds them again
            expiry.delete_where(storage, table, of_ids, {**params, "ids": ids})
    return len(ids)


_OLD_ALERTS = (
    "alert_id IN (SELECT alert_id FROM {db}.alerts WHERE project = {{project:String}} "
    "AND fired_at < {{cutoff:DateTime64(3, 'UTC')}})"
)


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's alerts fired before ``cutoff``, their acknowledgements and resolutions,
    and delivery attempts made before ``cutoff`` (retention); returns the alerts deleted."""
    old = _OLD_ALERTS.format(db=storage.database)
    expiry.expire(storage, "alert_acks", project, "", cutoff, extra=old)
    resolutions.delete_of_alerts(storage, project, cutoff, old)
    deliveries.delete_before(storage, project, cutoff)
    return expiry.expire(storage, "alerts", project, "fired_at", cutoff)
