"""Alerts, acknowledgements, delivery attempts, retraining requests and breach verdicts in ClickHouse.

Each table has one writer: the engine writes alerts, retraining requests and verdicts once; the API
writes acknowledgements; the dispatcher writes one row per delivery attempt. Reads join them, so an
acknowledgement can never be overwritten by a delivery update (or the other way round), even when
they happen in different processes. An alert's delivery summary is derived from its attempts: each of
the ``channels`` it had when it fired is ``delivered`` once an attempt succeeded, ``failed`` once a
final attempt failed, ``pending`` until then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from schemas.events import AlertEvent, AlertResolved, RetrainEvent
from schemas.stats import StatRow
from streams.delivery.sender import DeliveryAttempt
from streams.monitors.alert_records import (
    AlertDetail,
    AlertStatus,
    DeliveryStatus,
    DeliverySummary,
    DeliveryTarget,
    Evaluation,
    StoredAlert,
    StoredAttempt,
    StoredRetrain,
)
from streams.storage import Claims, Storage, as_utc, ch_time, window_stats
from streams.storage.datasets import DatasetStore
from streams.storage.resolutions import ResolutionStore
from streams.storage.snoozes import SnoozeStore

_Alert = TypeVar("_Alert", bound=AlertEvent)
_Retrain = TypeVar("_Retrain", bound=RetrainEvent)

_ALERT_COLUMNS = [
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
_RETRAIN_COLUMNS = [
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
_ATTEMPT_COLUMNS = [
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
_EVALUATION_COLUMNS = [
    "project",
    "monitor_id",
    "model",
    "window_start",
    "window_end",
    "breached",
    "value",
    "alert_id",
    "retrain_id",
    "version",
]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def delivery_summary(channels: int, targets: Sequence[DeliveryTarget]) -> DeliverySummary:
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


@dataclass(frozen=True)
class Pending:
    """A stored event whose delivery is unfinished: the channel indexes (of its monitor) still owed it."""

    event: AlertEvent | RetrainEvent | AlertResolved
    monitor_id: str
    missing: list[int]


def _loads(text: str) -> dict[str, Any]:
    return orjson.loads(text) if text else {}


def _alert_event(row: Mapping[str, Any], cls: type[_Alert], **state: Any) -> _Alert:
    """The ``alerts`` row as ``cls`` (``insert_alerts`` in reverse): the ``AlertEvent`` it was written
    from, or a ``StoredAlert`` given its ``state`` (acknowledgement, delivery)."""
    fields = {name: row[name] for name in AlertEvent.model_fields if name != "stats_api_url"}
    fields["details"] = _loads(row["details"])
    fields["stats_api_url"] = row["report_url"] or None  # the column's older name
    for name in _URL_COLUMNS:
        fields[name] = row[name] or None
    for name in ("window_start", "window_end", "fired_at"):
        fields[name] = as_utc(row[name])
    if row["snoozed_until"] is not None:
        fields["snoozed_until"] = as_utc(row["snoozed_until"])
    return cls.model_validate({**fields, **state})


def _retrain_event(row: Mapping[str, Any], cls: type[_Retrain], **state: Any) -> _Retrain:
    """The ``retrain_requests`` row as ``cls`` (``insert_retrains`` in reverse): the ``RetrainEvent``
    it was written from, or a ``StoredRetrain`` given its ``state`` (monitor, delivery)."""
    fields = {name: row[name] for name in RetrainEvent.model_fields}
    fields["reason"] = list(row["reason"])
    for name in ("evidence", "dataset"):
        fields[name] = _loads(row[name])
    for name in ("window_start", "window_end", "created_at"):
        fields[name] = as_utc(row[name])
    return cls.model_validate({**fields, **state})


def _target(row: Mapping[str, Any]) -> DeliveryTarget:
    """One channel's summary row (``AlertStore._targets``'s query)."""
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
    """An ``alert_deliveries`` row."""
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


def _evaluation(row: Mapping[str, Any]) -> Evaluation:
    """A ``monitor_evaluations`` row."""
    return Evaluation(
        window_start=as_utc(row["window_start"]),
        window_end=as_utc(row["window_end"]),
        breached=bool(row["breached"]),
        value=row["value"],
        alert_id=row["alert_id"],
        retrain_id=row["retrain_id"],
    )


class AlertStore:
    """All SQL about alerts and retraining requests."""

    def __init__(self, storage: Storage, *, owner: str | None = None) -> None:
        self._storage = storage
        self._db = storage.database
        self.claims = Claims(storage, owner)  # who fires and delivers what, across processes
        self.resolutions = ResolutionStore(storage)
        self.snoozes = SnoozeStore(storage)
        self.datasets = DatasetStore(storage, self.claims)  # the versions retraining requests name

    @property
    def storage(self) -> Storage:
        """The storage these tables live in (derived statistics of monitors read it too)."""
        return self._storage

    # ------------------------------------------------------------------ engine: writes and state

    def insert_alerts(self, alerts: Sequence[AlertEvent], channels: dict[str, int]) -> None:
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
                _json(a.details),
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
        self._storage.insert_rows("alerts", _ALERT_COLUMNS, rows)

    def insert_retrains(
        self, retrains: Sequence[RetrainEvent], monitor_ids: dict[str, str], channels: dict[str, int]
    ) -> None:
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
                _json(r.evidence),
                _json(r.dataset),
                r.created_at,
                channels.get(r.request_id, 0),
            ]
            for r in retrains
        ]
        self._storage.insert_rows("retrain_requests", _RETRAIN_COLUMNS, rows)

    def restore_retrain(self, retrain: RetrainEvent) -> None:
        """Store ``retrain`` again (its dataset completed) under the same id, monitor and channel count:
        same ``created_at``, so the later insert is the row ``FINAL`` keeps."""
        rows = self._storage.rows(
            f"SELECT monitor_id, channels FROM {self._db}.retrain_requests FINAL "
            "WHERE project = {project:String} AND request_id = {id:String}",
            {"project": retrain.project, "id": retrain.request_id},
        )
        monitor_id = rows[0]["monitor_id"] if rows else str(retrain.evidence.get("monitor_id", ""))
        channels = int(rows[0]["channels"]) if rows else 0
        self.insert_retrains([retrain], {retrain.request_id: monitor_id}, {retrain.request_id: channels})

    def alerts_by_dedup_key(self, project: str, keys: Iterable[str]) -> dict[str, str]:
        """dedup_key → alert_id for the keys that already fired."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        rows = self._storage.query(
            f"SELECT dedup_key, any(alert_id) FROM {self._db}.alerts WHERE project = {{project:String}} "
            "AND dedup_key IN {keys:Array(String)} GROUP BY dedup_key",
            {"project": project, "keys": keys},
        ).result_rows
        return {key: alert_id for key, alert_id in rows}

    def fired_between(
        self, project: str, model: str, monitor_ids: Iterable[str], start: datetime, end: datetime
    ) -> list[tuple[str, datetime, str]]:
        """(monitor_id, window_start, alert_id) of unresolved alerts of ``model`` with windows in [start,
        end]: the alerts whose cooldown holds back a new one (a resolved alert's breach is over)."""
        ids = sorted(set(monitor_ids))
        if not ids:
            return []
        rows = self._storage.query(
            f"SELECT monitor_id, window_start, alert_id FROM {self._db}.alerts WHERE project = {{project:String}} "
            "AND model = {model:String} AND monitor_id IN {ids:Array(String)} "
            "AND window_start BETWEEN {start:DateTime64(3, 'UTC')} AND {end:DateTime64(3, 'UTC')} "
            f"AND alert_id NOT IN (SELECT alert_id FROM {self._db}.alert_resolutions "
            "WHERE project = {project:String})",
            {"project": project, "model": model, "ids": ids, "start": ch_time(start), "end": ch_time(end)},
        ).result_rows
        return [(monitor_id, as_utc(window_start), alert_id) for monitor_id, window_start, alert_id in rows]

    def entities_fired_between(
        self, project: str, model: str, monitor_id: str, start: datetime, end: datetime
    ) -> dict[str, str]:
        """entity → alert_id of the unresolved alerts of a group_by monitor on ``model`` with windows in
        [start, end]: the entities whose cooldown holds back naming them again."""
        rows = self._storage.query(
            f"SELECT entity, any(alert_id) FROM {self._db}.alerts ARRAY JOIN entities AS entity "
            "WHERE project = {project:String} AND model = {model:String} AND monitor_id = {monitor_id:String} "
            "AND window_start BETWEEN {start:DateTime64(3, 'UTC')} AND {end:DateTime64(3, 'UTC')} "
            f"AND alert_id NOT IN (SELECT alert_id FROM {self._db}.alert_resolutions "
            "WHERE project = {project:String}) GROUP BY entity",
            {
                "project": project,
                "model": model,
                "monitor_id": monitor_id,
                "start": ch_time(start),
                "end": ch_time(end),
            },
        ).result_rows
        return {entity: alert_id for entity, alert_id in rows}

    def firing_of(self, project: str, monitor_id: str) -> list[AlertEvent]:
        """Unresolved alerts of one monitor (any model), oldest window first."""
        rows = self._storage.rows(
            f"SELECT * FROM {self._db}.alerts FINAL WHERE project = {{project:String}} "
            "AND monitor_id = {monitor_id:String} "
            f"AND alert_id NOT IN (SELECT alert_id FROM {self._db}.alert_resolutions "
            "WHERE project = {project:String}) "
            "ORDER BY window_start LIMIT 1000",
            {"project": project, "monitor_id": monitor_id},
        )
        return [_alert_event(row, AlertEvent) for row in rows]

    def firing(self, project: str, model: str) -> list[AlertEvent]:
        """Unresolved alerts of ``model`` (any monitor, any window), oldest window first."""
        rows = self._storage.rows(
            f"SELECT * FROM {self._db}.alerts FINAL WHERE project = {{project:String}} AND model = {{model:String}} "
            f"AND alert_id NOT IN (SELECT alert_id FROM {self._db}.alert_resolutions "
            "WHERE project = {project:String}) "
            "ORDER BY window_start LIMIT 1000",
            {"project": project, "model": model},
        )
        return [_alert_event(row, AlertEvent) for row in rows]

    def record_evaluations(self, verdicts: Sequence[Sequence[Any]]) -> None:
        """Store verdicts, each ``[project, monitor_id, model, window_start, window_end, breached, value,
        alert_id, retrain_id, version]`` (one insert for a whole window)."""
        self._storage.insert_rows("monitor_evaluations", _EVALUATION_COLUMNS, verdicts)

    def evaluations(
        self, project: str, monitor_id: str, model: str, *, up_to: datetime, limit: int
    ) -> list[Evaluation]:
        """The newest verdicts of (monitor, model) with window_start <= ``up_to``, newest first."""
        rows = self._storage.rows(
            "SELECT window_start, window_end, breached, value, alert_id, retrain_id "
            f"FROM {self._db}.monitor_evaluations FINAL WHERE project = {{project:String}} "
            "AND monitor_id = {monitor_id:String} AND model = {model:String} "
            "AND window_start <= {up_to:DateTime64(3, 'UTC')} ORDER BY window_start DESC LIMIT {limit:UInt32}",
            {"project": project, "monitor_id": monitor_id, "model": model, "up_to": ch_time(up_to), "limit": limit},
        )
        return [_evaluation(row) for row in rows]

    def episode(self, project: str, monitor_id: str, model: str, *, at: datetime) -> tuple[datetime | None, bool]:
        """The breach episode around the window starting ``at``: (start of the calm window it follows,
        None if none; whether a window of it other than ``at`` already fired a retraining request).

        An episode ends at a calm verdict (the window was evaluated and did not breach). Both sides of
        ``at`` count: a worker that took over a partition may evaluate windows out of order (a later
        one by the watermark, earlier ones left unclosed by the dead worker by recovery), and the
        episode has one request whichever came first. Read from storage, so every process agrees.
        """
        key = "project = {project:String} AND monitor_id = {monitor_id:String} AND model = {model:String}"
        table = f"{self._db}.monitor_evaluations FINAL"
        rows = self._storage.query(
            f"WITH (SELECT maxOrNull(window_start) FROM {table} WHERE {key} AND breached = 0 "
            "AND window_start < {at:DateTime64(3, 'UTC')}) AS calm_before, "
            f"(SELECT minOrNull(window_start) FROM {table} WHERE {key} AND breached = 0 "
            "AND window_start > {at:DateTime64(3, 'UTC')}) AS calm_after "
            f"SELECT calm_before, countIf(retrain_id != '' AND window_start != {{at:DateTime64(3, 'UTC')}} "
            "AND (calm_before IS NULL OR window_start > calm_before) "
            f"AND (calm_after IS NULL OR window_start < calm_after)) FROM {table} WHERE {key}",
            {"project": project, "monitor_id": monitor_id, "model": model, "at": ch_time(at)},
        ).result_rows
        calm_before, requested = rows[0] if rows else (None, 0)
        return (as_utc(calm_before) if calm_before is not None else None), bool(requested)

    def last_retrain_end(self, project: str, model: str, before: datetime) -> datetime | None:
        """End of the newest earlier retraining request's window for ``model`` (training data since)."""
        value = self._storage.scalar(
            f"SELECT max(window_end) FROM {self._db}.retrain_requests WHERE project = {{project:String}} "
            "AND model = {model:String} AND window_end <= {before:DateTime64(3, 'UTC')}",
            {"project": project, "model": model, "before": ch_time(before)},
        )
        if value is None or as_utc(value).year < 2000:  # max() over no rows is the epoch
            return None
        return as_utc(value)

    def drift_columns(self, project: str, model: str, window_start: datetime) -> list[StatRow]:
        """A window's stored column drift rows (when the engine was handed only the dataset row)."""
        return window_stats.column_drift(self._storage, project, model, window_start)

    # ------------------------------------------------------------------ dispatcher

    def record_attempt(self, project: str, monitor_id: str, channel_index: int, attempt: DeliveryAttempt) -> None:
        self.record_attempts(project, monitor_id, channel_index, [attempt])

    def record_attempts(
        self, project: str, monitor_id: str, channel_index: int, attempts: Sequence[DeliveryAttempt]
    ) -> None:
        """Store attempts in one insert (a grouped message: the same attempt for each of its alerts)."""
        self._storage.insert_rows(
            "alert_deliveries",
            _ATTEMPT_COLUMNS,
            [
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
            ],
        )

    def _targets(self, project: str, ids: Sequence[str]) -> dict[str, list[DeliveryTarget]]:
        """Per target id, one summary per channel index, from its attempts."""
        if not ids:
            return {}
        rows = self._storage.rows(
            "SELECT target_id, channel_index, argMax(channel, at) AS channel, argMax(url, at) AS url, "
            "count() AS attempts, max(final) AS done, max(succeeded) AS delivered, "
            "argMax(status_code, at) AS last_status_code, argMax(error, at) AS last_error, max(at) AS last_attempt_at "
            f"FROM {self._db}.alert_deliveries WHERE project = "
            f"{{project:String}} AND target_id IN {{ids:Array(String)}} "
            "GROUP BY target_id, channel_index ORDER BY target_id, channel_index",
            {"project": project, "ids": list(ids)},
        )
        out: dict[str, list[DeliveryTarget]] = {}
        for row in rows:
            out.setdefault(row["target_id"], []).append(_target(row))
        return out

    def attempts(self, project: str, *target_ids: str) -> list[StoredAttempt]:
        """Every delivery attempt of an alert or request (and of its resolution), oldest first."""
        rows = self._storage.rows(
            "SELECT channel_index, channel, url, attempt, status_code, error, latency_ms, succeeded, final, at, "
            f"target_type AS event FROM {self._db}.alert_deliveries WHERE project = {{project:String}} "
            "AND target_id IN {ids:Array(String)} ORDER BY at, channel_index, attempt",
            {"project": project, "ids": list(target_ids)},
        )
        return [_attempt(row) for row in rows]

    def pending(self, *, since: datetime, until: datetime, limit: int = 1000) -> list[Pending]:
        """Alerts and retraining requests fired in [since, until] that still owe a channel a delivery.

        A channel is owed until it has a successful or a final attempt, so a channel that got a 2xx is
        never listed again; an acknowledged alert is never listed at all (nobody needs to be told any
        more). What the dispatcher resumes after a crash or a lost hand-off: one query per table with
        the whole event, oldest first, at most ``limit`` of each.
        """
        params = {"since": ch_time(since), "until": ch_time(until), "limit": limit}
        alerts = self._storage.rows(
            self._pending_sql("alerts", "alert_id", "fired_at", _ALERT_COLUMNS, acked_excluded=True), params
        )
        retrains = self._storage.rows(
            self._pending_sql("retrain_requests", "request_id", "created_at", _RETRAIN_COLUMNS), params
        )
        resolutions = self._storage.rows(
            self._pending_sql(
                "alert_resolutions", "resolution_id", "resolved_at", ["project", "resolution_id", "monitor_id", "body"]
            ),
            params,
        )
        pending = [Pending(_alert_event(row, AlertEvent), row["monitor_id"], list(row["missing"])) for row in alerts]
        for row in retrains:
            pending.append(Pending(_retrain_event(row, RetrainEvent), row["monitor_id"], list(row["missing"])))
        for row in resolutions:
            event = AlertResolved.model_validate_json(row["body"])
            pending.append(Pending(event, row["monitor_id"], list(row["missing"])))
        return pending

    def _pending_sql(
        self, table: str, id_column: str, time_column: str, columns: Sequence[str], *, acked_excluded: bool = False
    ) -> str:
        acked = (
            f"AND (project, alert_id) NOT IN (SELECT project, alert_id FROM {self._db}.alert_acks) "
            if acked_excluded
            else ""
        )
        return (
            f"SELECT {', '.join(f't.{name} AS {name}' for name in columns)}, "
            "arrayFilter(i -> NOT has(d.done, i), range(t.channels)) AS missing "
            f"FROM (SELECT * FROM {self._db}.{table} FINAL WHERE channels > 0 "
            f"AND {time_column} BETWEEN {{since:DateTime64(3, 'UTC')}} "
            f"AND {{until:DateTime64(3, 'UTC')}} {acked}) AS t "
            "LEFT JOIN (SELECT project, target_id, groupArrayIf(channel_index, final = 1 OR succeeded = 1) AS done "
            f"FROM {self._db}.alert_deliveries WHERE at >= "
            f"{{since:DateTime64(3, 'UTC')}} GROUP BY project, target_id) AS d "
            f"ON t.project = d.project AND t.{id_column} = d.target_id "
            f"WHERE notEmpty(missing) ORDER BY t.{time_column} LIMIT {{limit:UInt32}}"
        )

    # ------------------------------------------------------------------ API reads and acknowledgements

    def _alert_rows(
        self, project: str, where: list[str], params: dict[str, Any], status: AlertStatus | None, limit: int
    ) -> list[StoredAlert]:
        clauses = ["project = {project:String}", *where]
        acked = {"open": "WHERE k.acked = 0", "acked": "WHERE k.acked = 1"}.get(status or "", "")
        rows = self._storage.rows(
            "SELECT a.alert_id AS alert_id, a.project AS project, a.monitor_id AS monitor_id, "
            "a.monitor_name AS monitor_name, a.model AS model, a.model_version AS model_version, a.kind AS kind, "
            "a.severity AS severity, a.window_start AS window_start, a.window_end AS window_end, a.metric AS metric, "
            "a.dimension AS dimension, a.value AS value, a.threshold AS threshold, a.condition AS condition, "
            "a.p_value AS p_value, a.details AS details, a.report_url AS report_url, a.fired_at AS fired_at, "
            "a.dedup_key AS dedup_key, a.channels AS channels, a.summary AS summary, a.alert_url AS alert_url, "
            "a.window_url AS window_url, a.api_url AS api_url, a.snoozed_until AS snoozed_until, "
            "a.entities AS entities, k.acked AS acked, k.acked_at AS acked_at, "
            "k.acked_by AS acked_by, k.note AS ack_note "
            f"FROM (SELECT * FROM {self._db}.alerts FINAL WHERE {' AND '.join(clauses)}) AS a "
            "LEFT JOIN (SELECT alert_id, toUInt8(1) AS acked, acked_at, acked_by, note "
            f"FROM {self._db}.alert_acks FINAL WHERE project = {{project:String}}) AS k ON a.alert_id = k.alert_id "
            f"{acked} ORDER BY a.fired_at DESC, a.alert_id LIMIT {{limit:UInt32}}",
            {**params, "project": project, "limit": limit},
        )
        targets = self._targets(project, [row["alert_id"] for row in rows])
        resolved = self.resolutions.of_alerts(project, [row["alert_id"] for row in rows])
        return [
            _alert_event(
                row,
                StoredAlert,
                status="acked" if row["acked"] else "open",
                acked_at=as_utc(row["acked_at"]) if row["acked"] else None,
                acked_by=row["acked_by"] if row["acked"] else None,
                ack_note=row["ack_note"] if row["acked"] else None,
                delivery=delivery_summary(row["channels"], targets.get(row["alert_id"], [])),
                resolution=resolved.get(row["alert_id"]),
            )
            for row in rows
        ]

    def list_alerts(
        self,
        project: str,
        *,
        model: str | None = None,
        kind: str | None = None,
        severity: str | None = None,
        monitor_id: str | None = None,
        status: AlertStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        """Alerts of ``project``, newest first; ``since``/``until`` bound ``fired_at``."""
        where: list[str] = []
        params: dict[str, Any] = {}
        for name, value in (("model", model), ("kind", kind), ("severity", severity), ("monitor_id", monitor_id)):
            if value is not None:
                where.append(f"{name} = {{{name}:String}}")
                params[name] = value
        if since is not None:
            where.append("fired_at >= {since:DateTime64(3, 'UTC')}")
            params["since"] = ch_time(since)
        if until is not None:
            where.append("fired_at < {until:DateTime64(3, 'UTC')}")
            params["until"] = ch_time(until)
        return self._alert_rows(project, where, params, status, limit)

    def open_counts(self, project: str) -> dict[tuple[str, str], int]:
        """Open (unacknowledged) alerts per (model, severity): the dashboard's health, without the rows."""
        rows = self._storage.query(
            f"SELECT model, severity, count() FROM {self._db}.alerts FINAL WHERE project = {{project:String}} "
            f"AND alert_id NOT IN (SELECT alert_id FROM {self._db}.alert_acks WHERE project = {{project:String}}) "
            "GROUP BY model, severity",
            {"project": project},
        ).result_rows
        return {(str(model), str(severity)): int(count) for model, severity, count in rows}

    def get_alert(self, project: str, alert_id: str) -> AlertDetail | None:
        """One alert with every delivery attempt."""
        rows = self._alert_rows(project, ["alert_id = {alert_id:String}"], {"alert_id": alert_id}, None, 1)
        if not rows:
            return None
        alert = rows[0]
        ids = [alert_id] + ([alert.resolution.resolution_id] if alert.resolution is not None else [])
        return AlertDetail(**dict(alert), attempts=tuple(self.attempts(project, *ids)))

    def ack(self, project: str, alert_id: str, *, by: str, note: str = "") -> AlertDetail | None:
        """Acknowledge an alert (idempotent: the first acknowledgement stays); None when unknown."""
        alert = self.get_alert(project, alert_id)
        if alert is None or alert.status == "acked":
            return alert
        self._storage.insert_rows(
            "alert_acks",
            ["project", "alert_id", "acked_at", "acked_by", "note"],
            [[project, alert_id, datetime.now(UTC), by, note]],
        )
        return self.get_alert(project, alert_id)

    def list_retrains(
        self,
        project: str,
        *,
        model: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredRetrain]:
        """Retraining requests of ``project``, newest first; ``since``/``until`` bound ``created_at``."""
        where = ["project = {project:String}"]
        params: dict[str, Any] = {"project": project, "limit": limit}
        for name, value in (("model", model), ("request_id", request_id)):
            if value is not None:
                where.append(f"{name} = {{{name}:String}}")
                params[name] = value
        if since is not None:
            where.append("created_at >= {since:DateTime64(3, 'UTC')}")
            params["since"] = ch_time(since)
        if until is not None:
            where.append("created_at < {until:DateTime64(3, 'UTC')}")
            params["until"] = ch_time(until)
        rows = self._storage.rows(
            "SELECT request_id, project, monitor_id, model, model_version, reason, window_start, window_end, "
            f"evidence, dataset, created_at, channels FROM {self._db}.retrain_requests FINAL "
            f"WHERE {' AND '.join(where)} ORDER BY created_at DESC, request_id LIMIT {{limit:UInt32}}",
            params,
        )
        targets = self._targets(project, [row["request_id"] for row in rows])
        return [
            _retrain_event(
                row,
                StoredRetrain,
                monitor_id=row["monitor_id"],
                delivery=delivery_summary(row["channels"], targets.get(row["request_id"], [])),
            )
            for row in rows
        ]
