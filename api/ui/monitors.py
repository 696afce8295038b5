"""Monitors: the list, and create/edit forms that go through the API's own route functions, so a
refused monitor shows exactly the API's validation messages (422 items, 409 conflicts).

The form is plain HTML that works without JavaScript: every condition kind's fields and one row per
channel (the saved ones, then an empty one to add); ``static/ui.js`` only hides what the chosen
condition or channel type does not use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import ValidationError

from api.routes.monitors import create_monitor, delete_monitor, update_monitor
from api.ui.web import Ui, UiDep, UiManageDep, UiRoute, first, quote_path, redirect
from schemas.events import Severity
from schemas.monitors import Condition, MonitorCreate, MonitorUpdate, Operator
from schemas.problems import problem_line, validation_problems
from schemas.stats import METRICS
from streams.storage.inferences import model_names

router = APIRouter(prefix="/ui", route_class=UiRoute)
MonitorIdPath = Annotated[str, Path(min_length=1, max_length=128)]
OPERATOR_LABELS = {"gt": "above (>)", "gte": "at or above (≥)", "lt": "below (<)", "lte": "at or below (≤)"}
CHANNEL_FIELDS = (
    "channel_type",
    "channel_url",
    "channel_secret",
    "channel_headers",
    "channel_key_env",
    "channel_to",
    "channel_digest",
)


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One channel as the form shows it: a type, its URL, for webhooks the signing secret and extra
    headers (``Name: value`` lines), for PagerDuty the routing key's environment variable, for email
    the recipients and the digest period. Saved secrets come masked and, sent back unchanged, stay."""

    type: str = ""
    url: str = ""
    secret: str = ""
    headers: str = ""
    key_env: str = ""
    to: str = ""
    digest: str = ""

    @classmethod
    def of(cls, channel: dict[str, Any]) -> ChannelRow:
        if channel.get("type") == "slack":
            return cls("slack", str(channel.get("webhook_url", "")))
        if channel.get("type") == "pagerduty":
            return cls("pagerduty", str(channel.get("url", "")), key_env=str(channel.get("routing_key_env", "")))
        if channel.get("type") == "email":
            digest = channel.get("digest_minutes")
            return cls("email", to="\n".join(channel.get("to") or []), digest="" if digest is None else str(digest))
        headers = "\n".join(f"{name}: {value}" for name, value in (channel.get("headers") or {}).items())
        return cls(str(channel.get("type", "")), str(channel.get("url", "")), str(channel.get("secret", "")), headers)

    @property
    def empty(self) -> bool:
        texts = (self.url, self.secret, self.headers, self.key_env, self.to, self.digest)
        return not (self.type or any(text.strip() for text in texts))

    def body(self) -> dict[str, Any]:
        """The channel as the API takes it; an incomplete row is left for the API to refuse by name."""
        if self.type == "slack":
            return {"type": "slack", "webhook_url": self.url.strip()}
        if self.type == "webhook":
            headers = {}
            for line in self.headers.splitlines():
                if line.strip():
                    name, _, value = line.partition(":")
                    headers[name.strip()] = value.strip()
            return {"type": "webhook", "url": self.url.strip(), "secret": self.secret, "headers": headers}
        if self.type == "pagerduty":
            body = {"type": "pagerduty", "routing_key_env": self.key_env.strip()}
            return {**body, "url": self.url.strip()} if self.url.strip() else body
        if self.type == "email":
            digest = self.digest.strip()
            return {
                "type": "email",
                "to": [address for address in self.to.replace(",", " ").split() if address],
                "digest_minutes": (int(digest) if digest.isdigit() else digest) if digest else None,
            }
        return {"type": self.type or None, "url": self.url.strip()}


def channel_rows(fields: dict[str, list[str]]) -> list[ChannelRow]:
    """The channel rows of a posted form (the inputs of each row share their names, in row order)."""
    columns = [fields.get(name, []) for name in CHANNEL_FIELDS]
    count = max(len(column) for column in columns)
    rows = [ChannelRow(*(column[i] if i < len(column) else "" for column in columns)) for i in range(count)]
    return [row for row in rows if not row.empty]


def _form_fields() -> tuple[str, ...]:
    """The form's inputs, from the monitor contract: one per ``MonitorCreate`` field, the condition
    flattened into ``condition_type`` plus the fields of every condition kind; ``enabled`` is the
    checkbox, read on its own (an unchecked box is absent from a form post); channels are rows of
    ``CHANNEL_FIELDS``, read by ``channel_rows``."""
    conditions = get_args(get_args(Condition)[0])  # Annotated[A | B | C, discriminator] → (A, B, C)
    names: list[str] = []
    for name in MonitorCreate.model_fields:
        if name == "condition":
            names.append("condition_type")
            names += dict.fromkeys(f for kind in conditions for f in kind.model_fields if f != "type")
        elif name not in ("enabled", "channels"):
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
    if kind == "no_data":
        return {"type": kind, "for": form["for_"] or None, "below_share": form["below_share"] or None}
    return {"type": kind}


def _body(form: dict[str, str], enabled: bool, channels: list[ChannelRow]) -> dict[str, Any]:
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
        "channels": [row.body() for row in channels],
        "group_by": form["group_by"].strip() or None,
        "window": form["window"] or None,
    }
    for name in ("min_samples", "cooldown_seconds", "resolve_after"):
        if form[name]:
            body[name] = form[name]
    return body


def _form_of(fields: dict[str, list[str]]) -> dict[str, str]:
    return {name: first(fields, name) for name in FIELDS}


def _form_from_monitor(monitor: dict[str, Any]) -> tuple[dict[str, str], list[ChannelRow]]:
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
        "resolve_after": str(monitor["resolve_after"]),
        "for_": condition.get("for", ""),
        "below_share": "" if condition.get("below_share") is None else str(condition["below_share"]),
        "group_by": monitor.get("group_by") or "",
        "window": monitor.get("window") or "",
    }, [ChannelRow.of(channel) for channel in monitor["channels"]]


async def _page(
    ui: Ui,
    form: dict[str, str],
    enabled: bool,
    channels: list[ChannelRow],
    *,
    editing: str | None,
    errors: list[str],
    warnings: list[str] | None = None,
    builtin: bool = False,
    status_code: int = 200,
) -> Response:
    models = await asyncio.to_thread(model_names, ui.runtime.storage, ui.project)
    scopes = ["*", *models]
    if form["scope"] and form["scope"] not in scopes:
        scopes.append(form["scope"])  # a scope saved before its model sent anything
    return ui.render(
        "monitor_form.html",
        status_code=status_code,
        form=form,
        scopes=scopes,
        channels=[*channels, ChannelRow()],  # the saved ones and one empty row to add another
        enabled=enabled,
        editing=editing,
        errors=errors,
        warnings=warnings or [],
        builtin=builtin,
        families=list(METRICS),
        metrics=sorted({m for ms in METRICS.values() for m in ms}),
        operators=[(o, OPERATOR_LABELS.get(o, o)) for o in get_args(Operator)],
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
    monitoring = ui.runtime.monitoring
    monitors = await asyncio.to_thread(monitoring.store.list, ui.project)
    return ui.render("monitors.html", monitors=[m.public_json() for m in monitors])


@router.get("/monitors/new")
async def new_monitor(ui: UiDep) -> Response:
    return await _page(ui, _blank(), True, [], editing=None, errors=[])


@router.post("/monitors/new")
async def create(ui: UiManageDep) -> Response:
    fields = await ui.form()
    form, enabled, channels = _form_of(fields), first(fields, "enabled") == "on", channel_rows(fields)
    body = _body(form, enabled, channels)
    if form["monitor_id"]:
        body["monitor_id"] = form["monitor_id"]
    monitoring = ui.runtime.monitoring
    try:
        spec = MonitorCreate.model_validate(body)
        created = await asyncio.to_thread(create_monitor, spec, ui.project, ui.actor, monitoring)
    except ValidationError as exc:
        errors = _messages(validation_problems(exc, ["body"]))
        return await _page(ui, form, enabled, channels, editing=None, errors=errors, status_code=422)
    except HTTPException as exc:
        errors = _messages(exc.detail)
        return await _page(ui, form, enabled, channels, editing=None, errors=errors, status_code=exc.status_code)
    if created["warnings"]:  # stored, but the person should read why it may judge nothing: show the form
        return redirect(f"/ui/monitors/{quote_path(created['monitor_id'])}")
    return redirect(f"/ui/monitors?saved={created['monitor_id']}")


@router.get("/monitors/{monitor_id}")
async def edit_monitor(monitor_id: MonitorIdPath, ui: UiDep) -> Response:
    monitoring = ui.runtime.monitoring
    monitor = await asyncio.to_thread(monitoring.store.get, ui.project, monitor_id)
    if monitor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r} in this project")
    shown = monitor.public_json()
    warnings = [] if monitor.builtin else await asyncio.to_thread(monitoring.scope_warnings, ui.project, monitor.scope)
    form, channels = _form_from_monitor(shown)
    return await _page(
        ui, form, shown["enabled"], channels, editing=monitor_id, errors=[], warnings=warnings, builtin=shown["builtin"]
    )


@router.post("/monitors/{monitor_id}")
async def save_monitor(monitor_id: MonitorIdPath, ui: UiManageDep) -> Response:
    fields = await ui.form()
    form, enabled, channels = _form_of(fields), first(fields, "enabled") == "on", channel_rows(fields)
    form["monitor_id"] = monitor_id
    body = _body(form, enabled, channels)
    body.update({name: "" for name in ("group_by", "window") if body[name] is None})  # '' removes it
    monitoring = ui.runtime.monitoring
    try:
        changes = MonitorUpdate.model_validate(body, strict=False)  # a form's numbers are text
        saved = await asyncio.to_thread(update_monitor, monitor_id, changes, ui.project, ui.actor, monitoring)
    except ValidationError as exc:
        errors = _messages(validation_problems(exc, ["body"]))
        return await _page(ui, form, enabled, channels, editing=monitor_id, errors=errors, status_code=422)
    except HTTPException as exc:
        errors = _messages(exc.detail)
        return await _page(ui, form, enabled, channels, editing=monitor_id, errors=errors, status_code=exc.status_code)
    if saved["warnings"]:
        return redirect(f"/ui/monitors/{quote_path(monitor_id)}")
    return redirect(f"/ui/monitors?saved={monitor_id}")


@router.post("/monitors/{monitor_id}/delete")
async def remove_monitor(monitor_id: MonitorIdPath, ui: UiManageDep) -> Response:
    await ui.form()
    monitoring = ui.runtime.monitoring
    await asyncio.to_thread(delete_monitor, monitor_id, ui.project, ui.actor, monitoring)
    return redirect("/ui/monitors")
