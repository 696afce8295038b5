"""Alerts: the list with the API's filters, one alert with its evidence and every delivery attempt,
acknowledgement with a note, and the retraining requests."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api.time_range import storable_range
from api.ui.web import UiDep, UiManageDep, UiRoute, first, parse_moment, redirect
from schemas.events import AlertKind, Severity

router = APIRouter(prefix="/ui", route_class=UiRoute)
AlertIdPath = Annotated[str, Path(min_length=1, max_length=128)]
Text = Annotated[str, Query(max_length=200)]
KINDS: list[str] = list(get_args(AlertKind))
SEVERITIES: list[str] = list(get_args(Severity))


def _choice(name: str, value: str, allowed: list[str]) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: one of {', '.join(allowed)}")
    return value


@router.get("/alerts")
async def alert_list(
    ui: UiDep,
    model: Text = "",
    kind: Text = "",
    severity: Text = "",
    status_: Annotated[str, Query(alias="status", max_length=10)] = "",
    since: Text = "",
    until: Text = "",
) -> Response:
    start, end = storable_range(parse_moment("since", since), parse_moment("until", until))
    _choice("status", status_, ["open", "acked"])  # a 422 for anything else
    state: Literal["open", "acked"] | None = "open" if status_ == "open" else "acked" if status_ == "acked" else None
    monitoring = ui.services.monitoring
    listed = partial(
        monitoring.alerts.list_alerts,
        ui.project,
        since=start,
        until=end,
        limit=200,
        model=model or None,
        kind=_choice("kind", kind, KINDS),
        severity=_choice("severity", severity, SEVERITIES),
        status=state,
    )
    alerts, retrains = await asyncio.gather(
        asyncio.to_thread(listed),
        asyncio.to_thread(monitoring.alerts.list_retrains, ui.project, model=model or None, limit=50),
    )
    return ui.render(
        "alerts.html",
        alerts=alerts,
        retrains=retrains,
        kinds=KINDS,
        severities=SEVERITIES,
        form={"model": model, "kind": kind, "severity": severity, "status": status_, "since": since, "until": until},
    )


@router.get("/alerts/{alert_id}")
async def alert_detail(alert_id: AlertIdPath, ui: UiDep, acked: Annotated[str, Query(max_length=1)] = "") -> Response:
    monitoring = ui.services.monitoring
    alert = await asyncio.to_thread(monitoring.alerts.get_alert, ui.project, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    return ui.render("alert.html", alert=alert, just_acked=bool(acked))


@router.post("/alerts/{alert_id}/ack")
async def ack(alert_id: AlertIdPath, ui: UiManageDep) -> Response:
    fields = await ui.form()
    note = first(fields, "note")[:2000]
    monitoring = ui.services.monitoring
    alert = await asyncio.to_thread(monitoring.alerts.ack, ui.project, alert_id, by=ui.actor, note=note)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    return redirect(f"/ui/alerts/{alert_id}?acked=1")
