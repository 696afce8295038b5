"""``/v1/alerts`` (list, detail with every delivery attempt, acknowledge) and ``/v1/retrain-requests``.

The handlers return the alert store's typed records; the response models below document the JSON and
are validated from those records' attributes (``from_attributes``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentKey, ManagedProjectDep, MonitoringDep, ProjectDep
from api.errors import responses
from api.time_range import Since, Until, storable_range
from schemas.events import AlertKind, Severity
from streams.storage import alerts as alert_rows
from streams.storage import retrain_requests
from streams.storage.alerts import AlertDetail as StoredAlertDetail
from streams.storage.alerts import StoredAlert
from streams.storage.retrain_requests import StoredRetrain

router = APIRouter(prefix="/v1", tags=["alerts"], responses=responses(400, 401, 422, 503))


Model = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=1000)]
AlertIdPath = Annotated[str, Path(min_length=1, max_length=128)]


# The response bodies are the alert store's records (``streams.storage.alerts``, ``retrain_requests``,
# ``deliveries``: one definition of each field) under the API's names, read from the records' attributes.
# Every field is in the response (defaults too), and a response has no other keys to refuse.
_RESPONSE = ConfigDict(from_attributes=True, extra="ignore", json_schema_serialization_defaults_required=True)


class AlertOut(StoredAlert):
    model_config = _RESPONSE


class AlertDetail(StoredAlertDetail):
    model_config = _RESPONSE


class AckRequest(BaseModel):
    by: str | None = Field(default=None, max_length=200, description="who acknowledges (default: the API key)")
    note: str = Field(default="", max_length=2000)


class RetrainOut(StoredRetrain):
    model_config = _RESPONSE


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
    return alert_rows.listed(
        monitoring.alerts.storage,
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
    alert = alert_rows.detail(monitoring.alerts.storage, project, alert_id)
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
    return retrain_requests.listed(
        monitoring.alerts.storage, project, model=model, since=since, until=until, limit=limit
    )
