"""Monitors: the list, and create/edit forms that go through the API's own route functions, so a
refused monitor shows exactly the API's validation messages (422 items, 409 conflicts)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, get_args

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import ValidationError

from api.routes.monitors import create_monitor, delete_monitor, update_monitor
from api.ui.web import Ui, UiDep, UiRoute, first, quote_path, redirect
from schemas.events import Severity
from schemas.monitors import Condition, MonitorCreate, MonitorUpdate, Operator
from schemas.problems import problem_line, validation_problems
from schemas.stats import METRICS

router = APIRouter(prefix="/ui", route_class=UiRoute)
MonitorIdPath = Annotated[str, Path(min_length=1, max_length=128)]


def _form_fields() -> tuple[str, ...]:
    """The form's inputs, from the monitor contract: one per ``MonitorCreate`` field, the condition
    flattened into ``condition_type`` plus the fields of every condition kind; ``enabled`` is the
    checkbox, read on its own (an unchecked box is absent from a form post)."""
    conditions = get_args(get_args(Condition)[0])  # Annotated[A | B | C, discriminator] → (A, B, C)
    names: list[str] = []
    for name in MonitorCreate.model_fields:
        if name == "condition":
            names.append("condition_type")
            names += dict.fromkeys(f for kind in conditions for f in kind.model_fields if f != "type")
        elif name != "enabled":
            names.append(name)
    return tuple(names)


FIELDS = _form_fields()


def _messages(problems: list[dict[str, Any]] | str) -> list[str]:
    """API problems as lines: ``condition: metric 'x' carries no p-value; …`` (location without 'body')."""
    if isinstance(problems, str):
        return [problems]
    return [
        problem_line([part for part in problem.get("loc", []) if part != "body"], str(problem.get("msg", "")))
        for problem in problems
    ]


def _condition(form: dict[str, str]) -> dict[str, Any]:
    kind = form["condition_type"]
    if kind == "threshold":
        return {"type": kind, "operator": form["operator"], "value": form["value"] or None}
    if kind == "p_value":
        condition: dict[str, Any] = {"type": kind}
        if form["alpha"]:
            condition["alpha"] = form["alpha"]
        if form["direction"]:
            condition["direction"] = form["direction"]
        return condition
    return {"type": kind}


def _body(form: dict[str, str], enabled: bool) -> dict[str, Any]:
    """The JSON body the API would get from this form ('' numbers left to their defaults)."""
    body: dict[str, Any] = {
        "name": form["name"],
        "scope": form["scope"] or "*",
        "family": form["family"],
        "metric": form["metric"],
        "dimension": form["dimension"],
        "condition": _condition(form),
        "severity": form["severity"],
        "enabled": enabled,
        "retrain_after": form["retrain_after"] or None,
    }
    for name in ("min_samples", "cooldown_seconds"):
        if form[name]:
            body[name] = form[name]
    if form["channels"]:
        try:
            body["channels"] = json.loads(form["channels"])
        except ValueError:
            body["channels"] = form["channels"]  # refused below with the API's "valid list" message
    return body


def _form_of(fields: dict[str, list[str]]) -> dict[str, str]:
    return {name: first(fields, name) for name in FIELDS}


def _form_from_monitor(monitor: dict[str, Any]) -> dict[str, str]:
    condition = monitor["condition"]
    return {
        "monitor_id": monitor["monitor_id"],
        "name": monitor["name"],
        "scope": monitor["scope"],
        "family": monitor["family"],
        "metric": monitor["metric"],
        "dimension": monitor["dimension"],
        "condition_type": condition["type"],
        "operator": condition.get("operator", "gt"),
        "value": str(condition.get("value", "")),
        "alpha": str(condition.get("alpha", "")),
        "direction": condition.get("direction") or "",
        "min_samples": str(monitor["min_samples"]),
        "cooldown_seconds": str(monitor["cooldown_seconds"]),
        "severity": monitor["severity"],
        "retrain_after": "" if monitor["retrain_after"] is None else str(monitor["retrain_after"]),
        "channels": json.dumps(monitor["channels"], indent=1) if monitor["channels"] else "",
    }


def _page(
    ui: Ui,
    form: dict[str, str],
    enabled: bool,
    *,
    editing: str | None,
    errors: list[str],
    warnings: list[str] | None = None,
    builtin: bool = False,
    status_code: int = 200,
) -> Response:
    return ui.render(
        "monitor_form.html",
        status_code=status_code,
        form=form,
        enabled=enabled,
        editing=editing,
        errors=errors,
        warnings=warnings or [],
        builtin=builtin,
        families=list(METRICS),
        metrics=sorted({m for ms in METRICS.values() for m in ms}),
        operators=list(get_args(Operator)),
        severities=list(get_args(Severity)),
    )


def _blank() -> dict[str, str]:
    form = dict.fromkeys(FIELDS, "")
    form.update(
        scope="*",
        family="latency",
        metric="latency_p95_ms",
        condition_type="threshold",
        operator="gt",
        severity="warning",
    )
    return form


@router.get("/monitors")
async def monitor_list(ui: UiDep) -> Response:
    monitoring = ui.services.monitoring
    monitors = await asyncio.to_thread(monitoring.store.list, ui.project)
    return ui.render("monitors.html", monitors=[m.public_json() for m in monitors])


@router.get("/monitors/new")
async def new_monitor(ui: UiDep) -> Response:
    return _page(ui, _blank(), True, editing=None, errors=[])


@router.post("/monitors/new")
async def create(ui: UiDep) -> Response:
    fields = await ui.form()
    form, enabled = _form_of(fields), first(fields, "enabled") == "on"
    body = _body(form, enabled)
    if form["monitor_id"]:
        body["monitor_id"] = form["monitor_id"]
    monitoring = ui.services.monitoring
    try:
        spec = MonitorCreate.model_validate(body)
        created = await asyncio.to_thread(create_monitor, spec, ui.project, monitoring)
    except ValidationError as exc:
        return _page(
            ui, form, enabled, editing=None, errors=_messages(validation_problems(exc, ["body"])), status_code=422
        )
    except HTTPException as exc:
        return _page(ui, form, enabled, editing=None, errors=_messages(exc.detail), status_code=exc.status_code)
    if created["warnings"]:  # stored, but the person should read why it may judge nothing: show the form
        return redirect(f"/ui/monitors/{quote_path(created['monitor_id'])}")
    return redirect(f"/ui/monitors?saved={created['monitor_id']}")


@router.get("/monitors/{monitor_id}")
async def edit_monitor(monitor_id: MonitorIdPath, ui: UiDep) -> Response:
    monitoring = ui.services.monitoring
    monitor = await asyncio.to_thread(monitoring.store.get, ui.project, monitor_id)
    if monitor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    shown = monitor.public_json()
    warnings = [] if monitor.builtin else await asyncio.to_thread(monitoring.scope_warnings, ui.project, monitor.scope)
    return _page(
        ui,
        _form_from_monitor(shown),
        shown["enabled"],
        editing=monitor_id,
        errors=[],
        warnings=warnings,
        builtin=shown["builtin"],
    )


@router.post("/monitors/{monitor_id}")
async def save_monitor(monitor_id: MonitorIdPath, ui: UiDep) -> Response:
    fields = await ui.form()
    form, enabled = _form_of(fields), first(fields, "enabled") == "on"
    form["monitor_id"] = monitor_id
    body = _body(form, enabled)
    body.setdefault("channels", [])
    monitoring = ui.services.monitoring
    try:
        changes = MonitorUpdate.model_validate(body)
        saved = await asyncio.to_thread(update_monitor, monitor_id, changes, ui.project, monitoring)
    except ValidationError as exc:
        return _page(
            ui, form, enabled, editing=monitor_id, errors=_messages(validation_problems(exc, ["body"])), status_code=422
        )
    except HTTPException as exc:
        return _page(ui, form, enabled, editing=monitor_id, errors=_messages(exc.detail), status_code=exc.status_code)
    if saved["warnings"]:
        return redirect(f"/ui/monitors/{quote_path(monitor_id)}")
    return redirect(f"/ui/monitors?saved={monitor_id}")


@router.post("/monitors/{monitor_id}/delete")
async def remove_monitor(monitor_id: MonitorIdPath, ui: UiDep) -> Response:
    await ui.form()
    monitoring = ui.services.monitoring
    await asyncio.to_thread(delete_monitor, monitor_id, ui.project, monitoring)
    return redirect("/ui/monitors")
