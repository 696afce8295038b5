"""Typed records the alert store returns: what the engine, the API and the dashboard read back.

Each stored row kind has one record here and one decoding function in ``alerts.py``, so no
``dict[str, Any]`` leaves the store. A stored alert (retraining request) *is* the event it was written
from plus what happened to it since (acknowledgement, delivery), so ``StoredAlert`` and
``StoredRetrain`` extend the event contracts instead of repeating their fields; the API's response
models are filled from these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.events import AlertEvent, AlertResolved, RetrainEvent

AlertStatus = Literal["open", "acked"]
TargetStatus = Literal["pending", "delivered", "failed"]
DeliveryStatus = Literal["none", "pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """One channel of an alert or request, summarised from its delivery attempts."""

    channel_index: int
    channel: str
    url: str  # without secrets (``safe_url``)
    status: TargetStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """``none`` (no channels) | ``pending`` | ``delivered`` (every channel) | ``failed`` (a channel gave
    up), with the per-channel breakdown."""

    status: DeliveryStatus
    channels: int
    attempts: int
    targets: tuple[DeliveryTarget, ...]


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    """One delivery attempt as stored (``alert_deliveries``)."""

    channel_index: int
    channel: str
    url: str
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: float
    succeeded: bool
    final: bool
    at: datetime
    event: str = "alert"  # what was sent: ``alert``, ``alert.resolved`` or ``retrain``


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One stored verdict of a monitor on a model's window (``monitor_evaluations``); ids are '' when none."""

    window_start: datetime
    window_end: datetime
    breached: bool
    value: float
    alert_id: str
    retrain_id: str


class StoredAlert(AlertEvent):
    """An alert as the API lists it: the event, its acknowledgement and its delivery so far."""

    status: AlertStatus
    acked_at: datetime | None
    acked_by: str | None
    ack_note: str | None
    delivery: DeliverySummary
    resolution: AlertResolved | None = None  # set once the alert stopped breaching


class AlertDetail(StoredAlert):
    """One alert with every delivery attempt, oldest first."""

    attempts: tuple[StoredAttempt, ...]


class StoredRetrain(RetrainEvent):
    """A retraining request with the monitor that fired it and its delivery so far."""

    monitor_id: str
    delivery: DeliverySummary
