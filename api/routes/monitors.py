"""``/v1/monitors``: the project's monitors. Secrets in channels are write-only (masked in responses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, Field, ValidationError

from api.deps import ActorDep, CurrentKey, ManagedProjectDep, MonitoringDep, ProjectDep
from api.errors import ErrorMessage, problem, responses, unprocessable, unprocessable_all
from schemas.events import Severity, UtcDatetime
from schemas.monitors import Condition, Monitor, MonitorCreate, MonitorUpdate, unmask_channels
from schemas.problems import validation_problems
from streams.monitors import BuiltinMonitorError, MonitorExistsError, Monitoring, default_monitors
from streams.monitors.store import channel_problems
from streams.storage import audit
from streams.storage.snoozes import Snooze

router = APIRouter(prefix="/v1/monitors", tags=["monitors"], responses=responses(400, 401, 422, 503))

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage, "description": "the id is taken or a built-in default's (built-ins are read-only)"}
}
MonitorIdPath = Annotated[str, Path(min_length=1, max_length=128)]
MAX_SNOOZE = timedelta(days=90)
SnoozeModelPath = Annotated[str, Path(min_length=1, max_length=200, description="a model, or '*' for every model")]


class MaskedSlackChannel(BaseModel):
    type: Literal["slack"]
    webhook_url: str


class MaskedWebhookChannel(BaseModel):
    type: Literal["webhook"]
    url: str
    secret: str
    headers: dict[str, str]


class MaskedPagerDutyChannel(BaseModel):
    type: Literal["pagerduty"]
    routing_key_env: str
    url: str


class MaskedEmailChannel(BaseModel):
    type: Literal["email"]
    to: list[str]
    digest_minutes: int | None


class MonitorOut(BaseModel):
    """A monitor as the API shows it: channel secrets masked (send a channel back unchanged to keep it)."""

    monitor_id: str
    project: str
    name: str
    scope: str
    family: str
    metric: str
    dimension: str
    condition: Condition
    min_samples: int
    cooldown_seconds: int
    severity: Severity
    channels: list[MaskedSlackChannel | MaskedWebhookChannel | MaskedPagerDutyChannel | MaskedEmailChannel]
    retrain_after: int | None
    resolve_after: int
    enabled: bool
    group_by: str | None = None
    window: str | None = None
    builtin: bool
    created_at: datetime
    updated_at: datetime


class MonitorSaved(MonitorOut):
    """A monitor just created or changed, with what the caller should know about it (the monitor is
    stored either way): e.g. a ``scope`` naming no model the project has sent."""

    warnings: list[str]


def _saved(monitor: Monitor, monitoring: Monitoring) -> dict[str, Any]:
    return {**monitor.public_json(), "warnings": monitoring.scope_warnings(monitor.project, monitor.scope)}


def _vet_channels(allow_private: bool) -> Any:
    def check(monitor: Monitor) -> None:
        problems = channel_problems(monitor, allow_private=allow_private)
        if problems:
            raise unprocessable_all(
                [
                    problem(
                        ["body", "channels", index, field], f"channels[{index}].{field}: {message}", "unsafe_target"
                    )
                    for index, field, message in problems
                ]
            )

    return check


@router.post(
    "",
    response_model=MonitorSaved,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
    summary="Create a monitor (on its models and family it takes the built-in defaults' place)",
)
def create_monitor(
    body: MonitorCreate, project: ManagedProjectDep, actor: ActorDep, monitoring: MonitoringDep
) -> dict[str, Any]:
    if body.monitor_id in {builtin.monitor_id for builtin in default_monitors(project, monitoring.settings)}:
        # deleting it later would bring the built-in default of that id back: a delete that does not delete
        raise HTTPException(status.HTTP_409_CONFLICT, f"{body.monitor_id!r} is the id of a built-in default monitor")
    check = _vet_channels(monitoring.settings.allow_private_webhooks)
    try:
        monitor = monitoring.store.create(project, body, check=check)
    except MonitorExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(monitoring.storage, actor, "monitor.create", project=project, target=monitor.monitor_id)
    return _saved(monitor, monitoring)


@router.get("", response_model=list[MonitorOut], summary="The project's monitors, then the built-in defaults")
def list_monitors(project: ProjectDep, monitoring: MonitoringDep) -> list[dict[str, Any]]:
    return [monitor.public_json() for monitor in monitoring.store.list(project)]


@router.get("/{monitor_id}", response_model=MonitorOut, responses=responses(404), summary="One monitor")
def get_monitor(monitor_id: MonitorIdPath, project: ProjectDep, monitoring: MonitoringDep) -> dict[str, Any]:
    monitor = monitoring.store.get(project, monitor_id)
    if monitor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    return monitor.public_json()


@router.patch(
    "/{monitor_id}",
    response_model=MonitorSaved,
    responses={**responses(404), **_CONFLICT},
    summary="Change some fields of a monitor; the result is validated as a whole",
)
def update_monitor(
    monitor_id: MonitorIdPath,
    body: MonitorUpdate,
    project: ManagedProjectDep,
    actor: ActorDep,
    monitoring: MonitoringDep,
) -> dict[str, Any]:
    store = monitoring.store
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "retrain_after"
    }
    changes.update({name: None for name in ("group_by", "window") if changes.get(name) == ""})  # '' removes
    current = store.get(project, monitor_id)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    if "channels" in changes and changes["channels"] is not None:
        changes["channels"] = unmask_channels(changes["channels"], list(current.channels))
    check = _vet_channels(monitoring.settings.allow_private_webhooks) if "channels" in changes else None
    try:
        monitor = store.update(project, monitor_id, changes, check=check)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_problems(exc, ["body"])) from exc
    except BuiltinMonitorError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{monitor_id!r} is a built-in default and read-only; create your own monitors instead",
        ) from exc
    if monitor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    details = {"fields": ",".join(sorted(changes))}
    audit.record(monitoring.storage, actor, "monitor.update", project=project, target=monitor_id, details=details)
    return _saved(monitor, monitoring)


@router.delete(
    "/{monitor_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**responses(404), **_CONFLICT},
    summary="Delete a monitor (its alerts stay)",
)
def delete_monitor(
    monitor_id: MonitorIdPath, project: ManagedProjectDep, actor: ActorDep, monitoring: MonitoringDep
) -> Response:
    try:
        deleted = monitoring.store.delete(project, monitor_id)
    except BuiltinMonitorError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{monitor_id!r} is a built-in default and cannot be deleted; a monitor of your own on the same family "
            "takes its place on the models in its scope",
        ) from exc
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    audit.record(monitoring.storage, actor, "monitor.delete", project=project, target=monitor_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class SnoozeRequest(BaseModel):
    """Hold back a monitor's alerts until ``until``: breaches are stored, not delivered."""

    until: UtcDatetime = Field(description="when delivery resumes: in the future, at most 90 days ahead")
    note: str = Field(default="", max_length=2000)


class SnoozeOut(BaseModel):
    monitor_id: str
    model: str = Field(description="a model, or '*' for every model of the monitor")
    until: datetime
    snoozed_by: str
    note: str


def _snooze_out(snooze: Snooze) -> SnoozeOut:
    return SnoozeOut(
        monitor_id=snooze.monitor_id,
        model=snooze.model,
        until=snooze.until,
        snoozed_by=snooze.snoozed_by,
        note=snooze.note,
    )


def _known_monitor(monitoring: Monitoring, project: str, monitor_id: str) -> None:
    if monitoring.store.get(project, monitor_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")


def _running(monitoring: Monitoring, project: str, monitor_id: str, model: str) -> Snooze:
    _known_monitor(monitoring, project, monitor_id)
    snoozes = monitoring.alerts.snoozes.active(project, [monitor_id], at=datetime.now(UTC))
    found = next((snooze for snooze in snoozes if snooze.model == model), None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"monitor {monitor_id!r} is not snoozed for {model!r}")
    return found


@router.put(
    "/{monitor_id}/snoozes/{model:path}",
    response_model=SnoozeOut,
    responses=responses(404),
    summary="Snooze a monitor for one model ('*': every model) until a time: breaches are stored, not delivered",
)
def snooze_monitor(
    monitor_id: MonitorIdPath,
    model: SnoozeModelPath,
    body: SnoozeRequest,
    project: ManagedProjectDep,
    key: CurrentKey,
    monitoring: MonitoringDep,
) -> SnoozeOut:
    now = datetime.now(UTC)
    if body.until <= now:
        raise unprocessable(["body", "until"], "until must be in the future (DELETE the snooze to lift it)")
    if body.until > now + MAX_SNOOZE:
        raise unprocessable(["body", "until"], "until is at most 90 days ahead")
    _known_monitor(monitoring, project, monitor_id)
    snooze = monitoring.alerts.snoozes.put(
        project, monitor_id, model, body.until, by=f"key:{key.key_id}", note=body.note
    )
    return _snooze_out(snooze)


@router.get(
    "/{monitor_id}/snoozes",
    response_model=list[SnoozeOut],
    responses=responses(404),
    summary="The monitor's running snoozes",
)
def list_snoozes(monitor_id: MonitorIdPath, project: ProjectDep, monitoring: MonitoringDep) -> list[SnoozeOut]:
    _known_monitor(monitoring, project, monitor_id)
    snoozes = monitoring.alerts.snoozes.active(project, [monitor_id], at=datetime.now(UTC))
    return [_snooze_out(snooze) for snooze in snoozes]


@router.get(
    "/{monitor_id}/snoozes/{model:path}",
    response_model=SnoozeOut,
    responses=responses(404),
    summary="The running snooze of a monitor for one model ('*': every model)",
)
def get_snooze(
    monitor_id: MonitorIdPath, model: SnoozeModelPath, project: ProjectDep, monitoring: MonitoringDep
) -> SnoozeOut:
    return _snooze_out(_running(monitoring, project, monitor_id, model))


@router.delete(
    "/{monitor_id}/snoozes/{model:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404),
    summary="Lift a snooze: alerts of later breaches are delivered again",
)
def lift_snooze(
    monitor_id: MonitorIdPath,
    model: SnoozeModelPath,
    project: ManagedProjectDep,
    key: CurrentKey,
    monitoring: MonitoringDep,
) -> Response:
    _running(monitoring, project, monitor_id, model)
    monitoring.alerts.snoozes.put(project, monitor_id, model, datetime.now(UTC), by=f"key:{key.key_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
