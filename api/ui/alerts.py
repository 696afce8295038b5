"""Alerts: the list with the API's filters, one alert in words with its evidence (the statistic around
its window against the threshold, the most drifted columns with effect sizes, example calls, every
delivery attempt), acknowledgement with a note, snoozing its monitor, and the retraining requests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api.queries.stats import stat_rows
from api.time_range import storable_range
from api.ui import charts
from api.ui.web import Ui, UiDep, UiManageDep, UiRoute, first, parse_moment, redirect
from schemas.events import AlertKind, Severity
from schemas.stats import METRICS
from streams.delivery.wording import P_VALUE_TESTS, column_change, p_value_text
from streams.storage import alerts as alert_rows
from streams.storage import retrain_requests
from streams.storage.alerts import AlertDetail
from streams.storage.snoozes import ALL_MODELS, Snooze

router = APIRouter(prefix="/ui", route_class=UiRoute)
AlertIdPath = Annotated[str, Path(min_length=1, max_length=128)]
Text = Annotated[str, Query(max_length=200)]
KINDS: list[str] = list(get_args(AlertKind))
SEVERITIES: list[str] = list(get_args(Severity))
AROUND = 12  # windows shown on each side of the alert's window
TOP_COLUMNS = 10
SNOOZE_HOURS = (1, 4, 24, 72, 168)
P_FLOOR = 1e-20  # p-values below are drawn here: the chart is about the threshold, not the 300th decimal


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
    monitoring = ui.runtime.monitoring
    listed = partial(
        alert_rows.listed,
        monitoring.alerts.storage,
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
        asyncio.to_thread(
            retrain_requests.listed, monitoring.alerts.storage, ui.project, model=model or None, limit=50
        ),
    )
    return ui.render(
        "alerts.html",
        alerts=alerts,
        retrains=retrains,
        kinds=KINDS,
        severities=SEVERITIES,
        form={"model": model, "kind": kind, "severity": severity, "status": status_, "since": since, "until": until},
    )


def _family(metric: str) -> str:
    return next((family for family, metrics in METRICS.items() if metric in metrics), "")


def _uses_p_value(alert: AlertDetail) -> bool:
    """Whether the alert's rule compared a p-value with its threshold (then the chart shows p-values)."""
    if alert.condition.startswith("p <"):
        return True
    return (
        alert.condition == "flagged" and alert.metric in ("family_drift", "column_drift") and alert.p_value is not None
    )


def metric_chart(ui: Ui, alert: AlertDetail) -> dict[str, Any] | None:
    """The alert's statistic over the windows around it, with the threshold it was held against."""
    width = alert.window_end - alert.window_start
    rows = stat_rows(
        ui.runtime.storage,
        ui.project,
        _family(alert.metric),
        model=alert.model,
        model_version="",
        metric=alert.metric,
        dimension=alert.dimension,
        since=alert.window_start - AROUND * width,
        until=alert.window_end + AROUND * width,
        limit=4 * AROUND + 2,
    )
    if not rows:
        return None
    p_values = _uses_p_value(alert)
    xs = [row["window_start"] for row in rows]
    ys = [row["p_value"] if p_values else row["value"] for row in rows]
    label = f"{alert.metric} [{alert.dimension}]" if alert.dimension else alert.metric
    if p_values:
        ys = [None if y is None else max(float(y), P_FLOOR) for y in ys]  # a log axis has no 0
    figure = charts.threshold_chart(
        xs,
        ys,
        name=f"p-value of {label}" if p_values else label,
        threshold=alert.threshold,
        threshold_name=("alert below α = " if p_values else "threshold ") + p_value_text(alert.threshold),
        window=alert.window_start,
        severity=alert.severity,
        log_y=p_values,
    )
    caption = (
        f"p-value of {label} per window (log scale): the alert fires below the dashed line"
        if p_values
        else f"{label} per window against its threshold (dashed)"
    )
    return {"title": caption, "id": "chart-alert-metric", "figure": figure}


def top_columns(alert: AlertDetail) -> list[dict[str, Any]]:
    """The most drifted columns of the alert's window, with effect sizes and what moved."""
    features = alert.details.get("features")
    if not isinstance(features, list):
        return []
    out = []
    for item in features[:TOP_COLUMNS]:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name", ""))
        change = column_change(name, item.get("reference_mean"), item.get("current_mean"))
        distance = None if item.get("method") in P_VALUE_TESTS else item.get("value")  # else it repeats the p-value
        out.append(
            {**item, "distance": distance, "change": change.removeprefix(name).strip() if change != name else ""}
        )
    return out


def calls_link(alert: AlertDetail) -> str:
    """The calls explorer over the alert's window (its filters are named like ``GET /v1/inferences``'s)."""
    query = {
        "model": alert.model,
        "since": alert.window_start.isoformat(),
        "until": alert.window_end.isoformat(),
    }
    return "/ui/calls?" + urlencode(query)


def _snoozes(ui: Ui, alert: AlertDetail) -> list[Snooze]:
    snoozes = ui.runtime.monitoring.alerts.snoozes.active(ui.project, [alert.monitor_id], at=datetime.now(UTC))
    return [s for s in snoozes if s.model in (alert.model, ALL_MODELS)]


@router.get("/alerts/{alert_id}")
async def alert_detail(
    alert_id: AlertIdPath,
    ui: UiDep,
    acked: Annotated[str, Query(max_length=1)] = "",
    snoozed: Annotated[str, Query(max_length=1)] = "",
    project: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """``project`` (in alert links) switches an admin's session to the alert's project."""
    if project and ui.session.admin and project != ui.project and project in ui.session_projects():
        ui.sign_in(ui.session.with_project(project))
    monitoring = ui.runtime.monitoring
    alert = await asyncio.to_thread(alert_rows.detail, monitoring.alerts.storage, ui.project, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    figure, snoozes = await asyncio.gather(
        asyncio.to_thread(metric_chart, ui, alert), asyncio.to_thread(_snoozes, ui, alert)
    )
    return ui.render(
        "alert.html",
        alert=alert,
        just_acked=bool(acked),
        just_snoozed=bool(snoozed),
        metric_chart=figure,
        columns=top_columns(alert),
        calls=calls_link(alert),
        snoozes=snoozes,
        snooze_hours=SNOOZE_HOURS,
        p_text=p_value_text,
        all_models=ALL_MODELS,
    )


@router.post("/alerts/{alert_id}/ack")
async def ack(alert_id: AlertIdPath, ui: UiManageDep) -> Response:
    fields = await ui.form()
    note = first(fields, "note")[:2000]
    monitoring = ui.runtime.monitoring
    alert = await asyncio.to_thread(monitoring.alerts.ack, ui.project, alert_id, by=ui.actor, note=note)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    return redirect(f"/ui/alerts/{alert_id}?acked=1")


@router.post("/alerts/{alert_id}/snooze")
async def snooze(alert_id: AlertIdPath, ui: UiManageDep) -> Response:
    """Snooze the alert's monitor for its model or every model (``hours`` = 0 lifts the snooze)."""
    fields = await ui.form()
    hours, scope = first(fields, "hours"), first(fields, "scope")
    if not hours.isdigit() or (int(hours) not in SNOOZE_HOURS and int(hours) != 0):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"hours: one of 0, {', '.join(map(str, SNOOZE_HOURS))}"
        )
    if scope not in ("model", "monitor"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "scope: 'model' or 'monitor'")
    monitoring = ui.runtime.monitoring
    alert = await asyncio.to_thread(alert_rows.detail, monitoring.alerts.storage, ui.project, alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} in this project")
    until = datetime.now(UTC) + timedelta(hours=int(hours))
    model = alert.model if scope == "model" else ALL_MODELS
    await asyncio.to_thread(monitoring.alerts.snoozes.put, ui.project, alert.monitor_id, model, until, by=ui.actor)
    return redirect(f"/ui/alerts/{alert_id}?snoozed=1")
