"""The alert store: what the engine, the dispatcher and the API ask of alerts, retraining requests and
verdicts, over the tables' modules in ``streams/storage/`` (``alerts``, ``retrain_requests``,
``deliveries``, ``resolutions``, ``monitor_evaluations``, ``snoozes``, ``claims``, ``datasets``).

Each table has one writer: the engine writes alerts, retraining requests and verdicts once; the API
writes acknowledgements; the dispatcher writes one row per delivery attempt. Reads join them, so an
acknowledgement can never be overwritten by a delivery update (or the other way round), even when
they happen in different processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Unpack

from schemas.events import AlertEvent, RetrainEvent
from schemas.stats import StatRow
from streams.storage import (
    Claims,
    Storage,
    alerts,
    deliveries,
    monitor_evaluations,
    resolutions,
    retrain_requests,
    window_stats,
)
from streams.storage.alerts import AlertDetail, AlertQuery, StoredAlert
from streams.storage.datasets import DatasetStore
from streams.storage.deliveries import DeliveryAttempt, Pending, StoredAttempt
from streams.storage.monitor_evaluations import Evaluation
from streams.storage.resolutions import ResolutionStore
from streams.storage.retrain_requests import RetrainQuery, StoredRetrain
from streams.storage.snoozes import SnoozeStore


class AlertStore:
    """Alerts and retraining requests of every project, with their delivery and acknowledgement."""

    def __init__(self, storage: Storage, *, owner: str | None = None) -> None:
        self._storage = storage
        self.claims = Claims(storage, owner)  # who fires and delivers what, across processes
        self.resolutions = ResolutionStore(storage)
        self.snoozes = SnoozeStore(storage)
        self.datasets = DatasetStore(storage, self.claims)  # the versions retraining requests name

    @property
    def storage(self) -> Storage:
        """The storage these tables live in (derived statistics of monitors read it too)."""
        return self._storage

    # ------------------------------------------------------------------ engine: writes and state

    def insert_alerts(self, fired: Sequence[AlertEvent], channels: dict[str, int]) -> None:
        alerts.insert(self._storage, fired, channels)

    def insert_retrains(
        self, retrains: Sequence[RetrainEvent], monitor_ids: dict[str, str], channels: dict[str, int]
    ) -> None:
        retrain_requests.insert(self._storage, retrains, monitor_ids, channels)

    def restore_retrain(self, retrain: RetrainEvent) -> None:
        """Store ``retrain`` again (its dataset completed) under the same id, monitor and channel count:
        same ``created_at``, so the later insert is the row ``FINAL`` keeps."""
        stored = retrain_requests.monitor_and_channels(self._storage, retrain.project, retrain.request_id)
        monitor_id, channels = stored or (str(retrain.evidence.get("monitor_id", "")), 0)
        self.insert_retrains([retrain], {retrain.request_id: monitor_id}, {retrain.request_id: channels})

    def alerts_by_dedup_key(self, project: str, keys: Iterable[str]) -> dict[str, str]:
        """dedup_key → alert_id for the keys that already fired."""
        return alerts.by_dedup_key(self._storage, project, keys)

    def fired_between(
        self, project: str, model: str, monitor_ids: Iterable[str], start: datetime, end: datetime
    ) -> list[tuple[str, datetime, str]]:
        """(monitor_id, window_start, alert_id) of unresolved alerts of ``model`` with windows in [start,
        end]: the alerts whose cooldown holds back a new one (a resolved alert's breach is over)."""
        return alerts.fired_between(self._storage, project, model, monitor_ids, start, end)

    def entities_fired_between(
        self, project: str, model: str, monitor_id: str, start: datetime, end: datetime
    ) -> dict[str, str]:
        """entity → alert_id of the unresolved alerts of a group_by monitor on ``model`` with windows in
        [start, end]: the entities whose cooldown holds back naming them again."""
        return alerts.entities_fired_between(self._storage, project, model, monitor_id, start, end)

    def firing_of(self, project: str, monitor_id: str) -> list[AlertEvent]:
        """Unresolved alerts of one monitor (any model), oldest window first."""
        return alerts.firing(self._storage, project, monitor_id=monitor_id)

    def firing(self, project: str, model: str) -> list[AlertEvent]:
        """Unresolved alerts of ``model`` (any monitor, any window), oldest window first."""
        return alerts.firing(self._storage, project, model=model)

    def record_evaluations(self, verdicts: Sequence[Sequence[Any]]) -> None:
        """Store verdicts, each ``[project, monitor_id, model, window_start, window_end, breached, value,
        alert_id, retrain_id, version]`` (one insert for a whole window)."""
        monitor_evaluations.insert(self._storage, verdicts)

    def evaluations(
        self, project: str, monitor_id: str, model: str, *, up_to: datetime, limit: int
    ) -> list[Evaluation]:
        """The newest verdicts of (monitor, model) with window_start <= ``up_to``, newest first."""
        return monitor_evaluations.newest(self._storage, project, monitor_id, model, up_to=up_to, limit=limit)

    def episode(self, project: str, monitor_id: str, model: str, *, at: datetime) -> tuple[datetime | None, bool]:
        """The breach episode around the window starting ``at`` (``monitor_evaluations.episode``)."""
        return monitor_evaluations.episode(self._storage, project, monitor_id, model, at=at)

    def last_retrain_end(self, project: str, model: str, before: datetime) -> datetime | None:
        """End of the newest earlier retraining request's window for ``model`` (training data since)."""
        return retrain_requests.last_window_end(self._storage, project, model, before)

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
        deliveries.insert(self._storage, project, monitor_id, channel_index, attempts)

    def attempts(self, project: str, *target_ids: str) -> list[StoredAttempt]:
        """Every delivery attempt of an alert or request (and of its resolution), oldest first."""
        return deliveries.attempts(self._storage, project, target_ids)

    def pending(self, *, since: datetime, until: datetime, limit: int = 1000) -> list[Pending]:
        """Alerts, retraining requests and resolutions made in [since, until] that still owe a channel a
        delivery: what the dispatcher resumes after a crash or a lost hand-off, oldest first per table,
        at most ``limit`` of each. An acknowledged alert is never listed (nobody needs to be told any more).
        """
        return [
            *alerts.owed(self._storage, since=since, until=until, limit=limit),
            *retrain_requests.owed(self._storage, since=since, until=until, limit=limit),
            *resolutions.owed(self._storage, since=since, until=until, limit=limit),
        ]

    # ------------------------------------------------------------------ API reads and acknowledgements

    def list_alerts(self, project: str, **query: Unpack[AlertQuery]) -> list[StoredAlert]:
        """Alerts of ``project``, newest first; ``since``/``until`` bound ``fired_at``."""
        return alerts.listed(self._storage, project, **query)

    def open_counts(self, project: str) -> dict[tuple[str, str], int]:
        """Open (unacknowledged) alerts per (model, severity): the dashboard's health, without the rows."""
        return alerts.open_counts(self._storage, project)

    def get_alert(self, project: str, alert_id: str) -> AlertDetail | None:
        """One alert with every delivery attempt."""
        return alerts.detail(self._storage, project, alert_id)

    def ack(self, project: str, alert_id: str, *, by: str, note: str = "") -> AlertDetail | None:
        """Acknowledge an alert (idempotent: the first acknowledgement stays); None when unknown."""
        alert = self.get_alert(project, alert_id)
        if alert is None or alert.status == "acked":
            return alert
        alerts.insert_ack(self._storage, project, alert_id, by=by, note=note)
        return self.get_alert(project, alert_id)

    def list_retrains(self, project: str, **query: Unpack[RetrainQuery]) -> list[StoredRetrain]:
        """Retraining requests of ``project``, newest first; ``since``/``until`` bound ``created_at``."""
        return retrain_requests.listed(self._storage, project, **query)
