"""Event contracts: what apps send (inference, feedback) and what loopwatch emits (alerts, retraining).

The inbound contract (``InferenceEvent``, ``FeedbackEvent`` and their field types) lives in the SDK
distribution (``loopwatch_sdk.events``), because apps validate with it before sending and the SDK cannot
depend on the server; it is re-exported here so the server has one place to import contracts from.
"""

from __future__ import annotations

from typing import Any, Literal

from loopwatch_sdk.events import (
    EARLIEST_TIMESTAMP,
    EVENT_TIME,
    LATEST_TIMESTAMP,
    TIMESTAMP_DOC,
    EventId,
    EventTime,
    EventTimeRules,
    FeedbackEvent,
    FeedbackKind,
    FeedbackSource,
    InferenceEvent,
    Name,
    OptionalName,
    ProjectName,
    StrictModel,
    UtcDatetime,
    feedback_value,
    new_id,
    to_utc,
    utc_now,
)
from pydantic import Field

__all__ = [
    "EARLIEST_TIMESTAMP",
    "EVENT_TIME",
    "LATEST_TIMESTAMP",
    "TIMESTAMP_DOC",
    "AlertEvent",
    "AlertGroup",
    "AlertKind",
    "AlertResolved",
    "DeadLetter",
    "EventId",
    "EventTime",
    "EventTimeRules",
    "FeedbackEvent",
    "FeedbackKind",
    "FeedbackSource",
    "InferenceEvent",
    "Name",
    "OptionalName",
    "ProjectName",
    "RetrainEvent",
    "Severity",
    "StrictModel",
    "UtcDatetime",
    "feedback_label",
    "feedback_number",
    "feedback_value",
    "new_id",
    "to_utc",
    "utc_now",
]


def feedback_number(value: Any) -> float | None:
    """The value as a number where it is one (thumbs, rating, score, numeric labels)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def feedback_label(kind: str, value: Any) -> str:
    """The value as a label string (labels are compared as strings, so 1 and "1" agree)."""
    if value is None or kind != "label":
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


AlertKind = Literal["drift", "quality", "cost", "latency", "error_rate", "budget", "no_data", "privacy"]
Severity = Literal["info", "warning", "critical"]


class AlertEvent(StrictModel):
    """A monitor's breach. ``dedup_key`` names the breach (monitor, model, window) across redeliveries."""

    alert_id: str = Field(default_factory=new_id)
    project: ProjectName
    monitor_id: str
    monitor_name: str = ""
    model: str
    model_version: str = ""
    kind: AlertKind
    severity: Severity = "warning"
    window_start: UtcDatetime
    window_end: UtcDatetime
    metric: str
    dimension: str = ""
    value: float
    threshold: float
    condition: str = ""
    p_value: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    summary: str = Field(default="", description="the breach in words, as Slack, the dashboard and the demo say it")
    alert_url: str | None = Field(
        default=None, description="the alert's dashboard page (people: sign in, then the page)"
    )
    window_url: str | None = Field(default=None, description="the dashboard page of the breaching window")
    api_url: str | None = Field(default=None, description="GET /v1/alerts/{alert_id} (machines: Bearer key)")
    stats_api_url: str | None = Field(
        default=None, description="the window's statistics in the API: /v1/reports/drift or /v1/stats (Bearer key)"
    )
    snoozed_until: UtcDatetime | None = Field(
        default=None, description="set when the monitor was snoozed as it fired: stored, not delivered"
    )
    fired_at: UtcDatetime = Field(default_factory=utc_now)
    dedup_key: str
    entities: list[str] = Field(
        default_factory=list, description="a group_by monitor's breaching tag values ('user_id=u-17'), worst first"
    )


class AlertResolved(StrictModel):
    """An alert that stopped: ``resolve_after`` evaluated windows in a row no longer breached.

    Sent to the channels that got the alert (webhooks: ``event = "alert.resolved"``, signed, with
    ``Idempotency-Key: <resolution_id>``)."""

    event: Literal["alert.resolved"] = "alert.resolved"
    resolution_id: str
    alert_id: str
    project: ProjectName
    monitor_id: str
    monitor_name: str = ""
    model: str
    severity: Severity = "warning"
    summary: str = Field(default="", description="what the alert said when it fired")
    fired_window_start: UtcDatetime
    calm_since: UtcDatetime = Field(description="start of the first window that no longer breached")
    calm_windows: int = Field(description="evaluated windows in a row without a breach")
    resolved_window_end: UtcDatetime = Field(description="end of the window that resolved it")
    alert_url: str | None = None
    api_url: str | None = None
    resolved_at: UtcDatetime = Field(default_factory=utc_now)


class AlertGroup(StrictModel):
    """Alerts of one monitor sent to a channel as one message: the models (or entities) that breached in
    one window, or an email digest of ``digest_minutes``. Each alert is stored and resolved on its own;
    only the notification is shared (webhooks: ``event = "alert.group"``, ``Idempotency-Key: <group_id>``)."""

    event: Literal["alert.group"] = "alert.group"
    group_id: str
    project: ProjectName
    monitor_id: str
    monitor_name: str = ""
    window_start: UtcDatetime | None = Field(default=None, description="the window they share (none: a digest)")
    window_end: UtcDatetime | None = None
    digest_minutes: int | None = None
    alerts: list[AlertEvent]


class RetrainEvent(StrictModel):
    """A request to retrain, with the evidence and a selector for the training data (feedback export)."""

    request_id: str = Field(default_factory=new_id)
    project: ProjectName
    model: str
    model_version: str = ""
    reason: list[str] = Field(description="the alerts behind the request")
    window_start: UtcDatetime
    window_end: UtcDatetime
    evidence: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(
        default_factory=dict, description="a /v1/feedback/export selector for the training data"
    )
    created_at: UtcDatetime = Field(default_factory=utc_now)


class DeadLetter(StrictModel):
    """A message that could not be accepted, kept with the reason so nothing is silently lost."""

    source: str
    error: str
    payload: str
    project: str = ""
    received_at: UtcDatetime = Field(default_factory=utc_now)
