"""``/v1/alerts`` (list, detail with every delivery attempt, acknowledge) and ``/v1/retrain-requests``.

The handlers return the alert store's typed records; the response models below document the JSON and
are validated from those records' attributes (``from_attributes``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentKey, ManagedProjectDep, MonitoringDep, ProjectDep
from api.errors import responses
from api.time_range import Since, Until, storable_range
from schemas.events import AlertKind, AlertResolved, Severity
from streams.monitors.alert_records import AlertDetail as StoredAlertDetail
from streams.monitors.alert_records import StoredAlert, StoredAttempt, StoredRetrain

router = APIRouter(prefix="/v1", tags=["alerts"], responses=responses(400, 401, 422, 503))


Model = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=1000)]
AlertIdPath = Annotated[str, Path(min_length=1, max_length=128)]


class _FromRecord(BaseModel):
    """A response body read from a record's attributes (``streams.monitors.alert_records``)."""

    model_config = ConfigDict(from_attributes=True)


class DeliveryTarget(_FromRecord):
    channel_index: int
    channel: str
    url: str = Field(description="without secrets")
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime


class DeliverySummary(_FromRecord):
    status: Literal["none", "pending", "delivered", "failed"] = Field(
        description="none: no channels; delivered: every channel; failed: a channel gave up after its retries"
    )
    channels: int
    attempts: int
    targets: list[DeliveryTarget]


class AlertOut(_FromRecord):
    alert_id: str
    project: str
    monitor_id: str
    monitor_name: str
    model: str
    model_version: str
    kind: str
    severity: str
    window_start: datetime
    window_end: datetime
    metric: str
    dimension: str
    value: float
    threshold: float
    condition: str
    p_value: float | None
    details: dict[str, Any]
    summary: str = Field(description="what breached, in words (the Slack message and the dashboard say the same)")
    alert_url: str | None = Field(description="the alert's dashboard page, for people")
    window_url: str | None = Field(description="the dashboard page of the breaching window")
    api_url: str | None = Field(description="this resource")
    stats_api_url: str | None = Field(description="the window's statistics in the API (report_url before)")
    snoozed_until: datetime | None = Field(description="set when the monitor was snoozed as it fired: not delivered")
    fired_at: datetime
    dedup_key: str
    entities: list[str] = Field(default_factory=list, description="a group_by monitor's breaching tag values")
    status: Literal["open", "acked"]
    acked_at: datetime | None
    acked_by: str | None
    ack_note: str | None
    delivery: DeliverySummary
    resolution: AlertResolved | None = Field(description="set once the alert stopped breaching (resolve_after)")


class AlertDetail(AlertOut):
    attempts: list[StoredAttempt] = Field(description="every delivery attempt, oldest first")


class AckRequest(BaseModel):
    by: str | None = Field(default=None, max_length=200, description="who acknowledges (default: the API key)")
    note: str = Field(default="", max_length=2000)


class RetrainOut(_FromRecord):
    request_id: str
    project: str
    monitor_id: str
    model: str
    model_version: str
    reason: list[str] = Field(description="the alerts behind the request")
    window_start: datetime
    window_end: datetime
    evidence: dict[str, Any]
    dataset: dict[str, Any] = Field(description="a /v1/feedback/export selector for the training data")
    created_at: datetime
    delivery: DeliverySummary


@router.get("/alerts", response_model=list[AlertOut], summary="Alerts of the project, newest first")
def list_alerts(
    project: ProjectDep,
    monitoring: MonitoringDep,
    model: Model = None,
    kind: Annotated[AlertKind | None, Query()] = None,
    severity: Annotated[Severity | None, Query()] = None,
    alert_status: Annotated[Literal["open", "acked"] | None, Query(alias="status")] = None,
    monitor_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
) -> list[StoredAlert]:
    """``since``/``until`` bound the time the alert fired."""
    since, until = storable_range(since, until)
    return monitoring.alerts.list_alerts(
        project,
        model=model,
        kind=kind,
        severity=severity,
        monitor_id=monitor_id,
        status=alert_status,
        since=since,
        until=until,
        limit=limit,
    )


@router.get(
    "/alerts/{alert_id}",
    response_model=AlertDetail,
    responses=responses(404),
    summary="One alert with every delivery attempt",
)
def get_alert(alert_id: AlertIdPath, project: ProjectDep, monitoring: MonitoringDep) -> StoredAlertDetail:
    alert = monitoring.alerts.get_alert(project, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    return alert


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertDetail,
    responses=responses(404),
    summary="Acknowledge an alert (idempotent: the first acknowledgement stays)",
)
def ack_alert(
    alert_id: AlertIdPath,
    project: ManagedProjectDep,
    key: CurrentKey,
    monitoring: MonitoringDep,
    body: AckRequest | None = None,
) -> StoredAlertDetail:
    body = body or AckRequest()
    alert = monitoring.alerts.ack(project, alert_id, by=body.by or f"key:{key.key_id}", note=body.note)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    return alert


@router.get("/retrain-requests", response_model=list[RetrainOut], summary="Retraining requests, newest first")
def list_retrain_requests(
    project: ProjectDep,
    monitoring: MonitoringDep,
    model: Model = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
) -> list[StoredRetrain]:
    """``since``/``until`` bound the time the request was made."""
    since, until = storable_range(since, until)
    return monitoring.alerts.list_retrains(project, model=model, since=since, until=until, limit=limit)
