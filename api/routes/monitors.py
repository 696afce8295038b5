"""``/v1/monitors``: the project's monitors. Secrets in channels are write-only (masked in responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ValidationError

from api.deps import ManagedProjectDep, MonitoringDep, ProjectDep
from api.errors import ErrorMessage, problem, responses, unprocessable_all
from schemas.events import Severity
from schemas.monitors import Condition, Monitor, MonitorCreate, MonitorUpdate, unmask_channels
from schemas.problems import validation_problems
from streams.monitors import BuiltinMonitorError, MonitorExistsError, default_monitors
from streams.monitors.store import channel_problems

router = APIRouter(prefix="/v1/monitors", tags=["monitors"], responses=responses(400, 401, 422, 503))

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage, "description": "the id is taken or a built-in default's (built-ins are read-only)"}
}
MonitorIdPath = Annotated[str, Path(min_length=1, max_length=128)]


class MaskedSlackChannel(BaseModel):
    type: Literal["slack"]
    webhook_url: str


class MaskedWebhookChannel(BaseModel):
    type: Literal["webhook"]
    url: str
    secret: str
    headers: dict[str, str]


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
    channels: list[MaskedSlackChannel | MaskedWebhookChannel]
    retrain_after: int | None
    enabled: bool
    builtin: bool
    created_at: datetime
    updated_at: datetime


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
    response_model=MonitorOut,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
    summary="Create a monitor (replaces the built-in defaults of the project)",
)
def create_monitor(body: MonitorCreate, project: ManagedProjectDep, monitoring: MonitoringDep) -> dict[str, Any]:
    if body.monitor_id in {builtin.monitor_id for builtin in default_monitors(project, monitoring.settings)}:
        # deleting it later would bring the built-in default of that id back: a delete that does not delete
        raise HTTPException(status.HTTP_409_CONFLICT, f"{body.monitor_id!r} is the id of a built-in default monitor")
    check = _vet_channels(monitoring.settings.allow_private_webhooks)
    try:
        monitor = monitoring.store.create(project, body, check=check)
    except MonitorExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return monitor.public_json()


@router.get("", response_model=list[MonitorOut], summary="The project's monitors (the built-in defaults if none)")
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
    response_model=MonitorOut,
    responses={**responses(404), **_CONFLICT},
    summary="Change some fields of a monitor; the result is validated as a whole",
)
def update_monitor(
    monitor_id: MonitorIdPath, body: MonitorUpdate, project: ManagedProjectDep, monitoring: MonitoringDep
) -> dict[str, Any]:
    store = monitoring.store
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "retrain_after"
    }
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
    return monitor.public_json()


@router.delete(
    "/{monitor_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**responses(404), **_CONFLICT},
    summary="Delete a monitor (its alerts stay)",
)
def delete_monitor(monitor_id: MonitorIdPath, project: ManagedProjectDep, monitoring: MonitoringDep) -> Response:
    try:
        deleted = monitoring.store.delete(project, monitor_id)
    except BuiltinMonitorError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{monitor_id!r} is a built-in default and cannot be deleted; creating a monitor of your own replaces "
            "all built-in defaults of the project",
        ) from exc
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
