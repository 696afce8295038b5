"""The alert store: the stores of the alert tables (claims, resolutions, snoozes, dataset versions) over
one storage, and the few steps that span tables (restoring a retraining request, the deliveries owed,
an acknowledgement). A read or write of one table is a call to its module in ``streams/storage/``
(``alerts``, ``retrain_requests``, ``deliveries``, ``monitor_evaluations``, ``window_stats``) with
``AlertStore.storage``.

Each table has one writer: the engine writes alerts, retraining requests and verdicts once; the API
writes acknowledgements; the dispatcher writes one row per delivery attempt. Reads join them, so an
acknowledgement can never be overwritten by a delivery update (or the other way round), even when
they happen in different processes.
"""

from __future__ import annotations

from datetime import datetime

from schemas.events import RetrainEvent
from streams.storage import Claims, Storage, alerts, resolutions, retrain_requests
from streams.storage.alerts import AlertDetail
from streams.storage.datasets import DatasetStore
from streams.storage.deliveries import Pending
from streams.storage.resolutions import ResolutionStore
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

    def restore_retrain(self, retrain: RetrainEvent) -> None:
        """Store ``retrain`` again (its dataset completed) under the same id, monitor and channel count:
        same ``created_at``, so the later insert is the row ``FINAL`` keeps."""
        stored = retrain_requests.monitor_and_channels(self._storage, retrain.project, retrain.request_id)
        monitor_id, channels = stored or (str(retrain.evidence.get("monitor_id", "")), 0)
        retrain_requests.insert(
            self._storage, [retrain], {retrain.request_id: monitor_id}, {retrain.request_id: channels}
        )

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

    def ack(self, project: str, alert_id: str, *, by: str, note: str = "") -> AlertDetail | None:
        """Acknowledge an alert (idempotent: the first acknowledgement stays); None when unknown."""
        alert = alerts.detail(self._storage, project, alert_id)
        if alert is None or alert.status == "acked":
            return alert
        alerts.insert_ack(self._storage, project, alert_id, by=by, note=note)
        return alerts.detail(self._storage, project, alert_id)
