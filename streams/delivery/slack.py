"""Slack Block Kit messages for alerts and retraining requests.

An on-call engineer should see from the notification alone what broke (the breach in words, from
``wording``: the same sentence the dashboard and webhooks carry), where (project, model, version,
window) and why (the features that drifted, with their effect sizes), with one click to the alert's
dashboard page (sign-in, then the page) and one to its window.
Slack rejects a whole message when one block breaks a limit, so every text is clipped to its
Block Kit limit here rather than trusting the size of user-controlled strings. Those strings (model,
feature and monitor names) are escaped so they cannot inject links or @channel mentions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemas.events import AlertEvent, AlertGroup, AlertResolved, RetrainEvent
from streams.delivery.wording import column_change

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
HEADER_TEXT_MAX = 150
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
CONTEXT_TEXT_MAX = 3000
BUTTON_URL_MAX = 3000
BLOCKS_MAX = 50
FALLBACK_TEXT_MAX = 3000  # Slack truncates fallback text long before its 40k hard limit.

TOP_FEATURES = 10

_SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
_KIND_TITLE = {
    "drift": "Drift detected",
    "quality": "Quality drop",
    "cost": "Cost alert",
    "latency": "Latency alert",
    "error_rate": "Error rate alert",
    "budget": "Budget exceeded",
    "no_data": "No data",
    "privacy": "Personal data in traffic",
}
_OPERATORS = frozenset({">", ">=", "<", "<=", "==", "!=", "≥", "≤"})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _esc(value: object) -> str:
    """Escape mrkdwn control characters (Slack's own rule: only &, < and > need it)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(value: object, limit: int = 100) -> str:
    """Inline code for identifiers; backticks would end the span, so they are dropped."""
    return f"`{_esc(_clip(str(value).replace('`', ''), limit))}`"


def _num(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _esc(_clip(str(value), 40))
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _window(start: datetime, end: datetime) -> str:
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M:%S} \u2013 {end:%H:%M:%S} UTC"
    return f"{start:%Y-%m-%d %H:%M:%S} \u2013 {end:%Y-%m-%d %H:%M:%S} UTC"


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _header(text: str) -> dict[str, Any]:
    # plain_text renders literally, so no escaping; only the length matters.
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _clip(text, HEADER_TEXT_MAX), "emoji": True},
    }


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [_mrkdwn(f"*{label}*\n{value}", FIELD_TEXT_MAX) for label, value in pairs[:SECTION_FIELDS_MAX]],
    }


def _context(parts: list[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(part, CONTEXT_TEXT_MAX) for part in parts[:10]]}


def _model_label(model: str, version: str) -> str:
    return f"{_esc(model)} · {_code(version)}" if version else _esc(model)


def _value_vs_threshold(alert: AlertEvent) -> str:
    condition = alert.condition.strip()
    value, threshold = _num(alert.value), _num(alert.threshold)
    if condition in _OPERATORS:
        return f"{value} {_esc(condition)} {threshold}"
    if condition:
        return f"{value} (threshold {threshold}, {_esc(_clip(condition, 200))})"
    return f"{value} (threshold {threshold})"


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1"}
    return bool(value) if isinstance(value, bool | int | float) else False


def _feature_lines(details: Mapping[str, Any]) -> tuple[list[str], int, int]:
    """Lines for drifted features (detector order, first ``TOP_FEATURES``), drifted count, total count.

    ``details["features"]`` comes from detectors we do not control here; anything that is not a list
    of dicts is ignored rather than allowed to break the message.
    """
    features = details.get("features")
    if not isinstance(features, list):
        return [], 0, 0
    rows = [row for row in features if isinstance(row, Mapping)]
    drifted = [row for row in rows if _truthy(row.get("drifted"))]
    lines = []
    for row in drifted[:TOP_FEATURES]:
        line = f"• {_code(row.get('name', '?'))}"
        method = row.get("method")
        stat = f"{_esc(_clip(str(method), 40))} " if method else ""
        if "value" in row:
            line += f" — {stat}{_num(row['value'])}"
        if "threshold" in row:
            line += f" (threshold {_num(row['threshold'])})"
        if isinstance(row.get("effect"), int | float):
            line += f", effect {_num(row['effect'])}"
        change = column_change(str(row.get("name", "")), row.get("reference_mean"), row.get("current_mean"))
        if change != str(row.get("name", "")):
            line += f": {_esc(_clip(change, 120))}"
        lines.append(line)
    return lines, len(drifted), len(rows)


def _features_block(details: Mapping[str, Any]) -> dict[str, Any] | None:
    lines, drifted, total = _feature_lines(details)
    if total == 0:
        return None
    if drifted == 0:
        return {
            "type": "section",
            "text": _mrkdwn(f"*Features*\nNone of {total} features drifted.", SECTION_TEXT_MAX),
        }
    text = f"*Top drifted features* ({drifted} of {total} drifted)"
    shown = 0
    for line in lines:
        # Keep room for the "…and N more" line so the block never exceeds its limit.
        if len(text) + 1 + len(line) > SECTION_TEXT_MAX - 40:
            break
        text += "\n" + line
        shown += 1
    if drifted > shown:
        text += f"\n…and {drifted - shown} more"
    return {"type": "section", "text": _mrkdwn(text, SECTION_TEXT_MAX)}


def _button(text: str, url: str | None, action_id: str) -> dict[str, Any] | None:
    if not url or not url.startswith(("https://", "http://")) or len(url) > BUTTON_URL_MAX:
        return None
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "url": url,
        "action_id": action_id,
    }


def _buttons(*buttons: dict[str, Any] | None) -> dict[str, Any] | None:
    """Links to the dashboard (people sign in there), never to the API (it needs a key header)."""
    present = [button for button in buttons if button is not None]
    return {"type": "actions", "elements": present} if present else None


def _message(fallback: str, blocks: list[dict[str, Any] | None]) -> dict[str, Any]:
    present = [block for block in blocks if block is not None]
    return {"text": _clip(fallback, FALLBACK_TEXT_MAX), "blocks": present[:BLOCKS_MAX]}


def slack_message(alert: AlertEvent) -> dict[str, Any]:
    """The incoming-webhook payload for an alert: fallback ``text`` plus Block Kit ``blocks``."""
    icon = _SEVERITY_ICON.get(alert.severity, "⚪")
    title = f"{icon} {_KIND_TITLE.get(alert.kind, 'Alert')}: {alert.model}"
    metric = _esc(alert.metric) + (f" on {_code(alert.dimension)}" if alert.dimension else "")
    fields = [
        ("Project", _esc(alert.project)),
        ("Model", _model_label(alert.model, alert.model_version)),
        ("Metric", metric),
        ("Window", _window(alert.window_start, alert.window_end)),
        ("Severity", _esc(alert.severity)),
    ]
    if not alert.summary:
        fields.insert(3, ("Value vs threshold", _value_vs_threshold(alert)))
    if alert.p_value is not None:
        fields.append(("p-value", _num(alert.p_value)))
    monitor = _esc(alert.monitor_name) + " " if alert.monitor_name else ""
    context = [
        f"Alert {_code(alert.alert_id)}",
        f"Monitor {monitor}{_code(alert.monitor_id)}",
        f"Fired {alert.fired_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    said = _esc(alert.summary) if alert.summary else f"{metric} {_value_vs_threshold(alert)}"
    fallback = f"{_esc(title)} — {said} ({_esc(alert.project)})"
    summary = {"type": "section", "text": _mrkdwn(f"*{said}*", SECTION_TEXT_MAX)} if alert.summary else None
    return _message(
        fallback,
        [
            _header(title),
            summary,
            _fields(fields),
            _features_block(alert.details),
            _context(context),
            _buttons(
                _button("Open alert", alert.alert_url, "loopwatch_open_alert"),
                _button("Open window", alert.window_url, "loopwatch_open_window"),
            ),
        ],
    )


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def _alert_line(alert: AlertEvent) -> str:
    """One alert of a group: model (and dimension), the breach in words, a link to its page."""
    where = _esc(_clip(alert.model, 100)) + (f" {_code(alert.dimension)}" if alert.dimension else "")
    said = _esc(_clip(alert.summary, 300)) if alert.summary else f"{_esc(alert.metric)} {_value_vs_threshold(alert)}"
    url = alert.alert_url
    link = f" <{url}|open>" if url and url.startswith(("https://", "http://")) and not set("|<> ") & set(url) else ""
    return f"• *{where}*: {said}{link}"


def slack_group_message(group: AlertGroup) -> dict[str, Any]:
    """One message for the alerts of one monitor: the models that breached in one window (or a digest),
    one line each with the breach in words and a link to the alert's page."""
    alerts = group.alerts
    worst = max(alerts, key=lambda alert: _SEVERITY_RANK.get(alert.severity, 0)).severity if alerts else "info"
    name = group.monitor_name or group.monitor_id
    models = len({alert.model for alert in alerts})
    if group.window_start is not None and group.window_end is not None:
        title = f"{_SEVERITY_ICON.get(worst, '⚪')} {name}: {len(alerts)} alerts, {models} models"
        when = f"Window {_window(group.window_start, group.window_end)}"
    else:
        title = f"{_SEVERITY_ICON.get(worst, '⚪')} {name}: {len(alerts)} alerts in {group.digest_minutes} min"
        when = f"Digest of {group.digest_minutes} minutes"
    sections: list[dict[str, Any] | None] = []
    text, shown = "", 0
    for line in (_alert_line(alert) for alert in alerts):
        if len(text) + 1 + len(line) > SECTION_TEXT_MAX - 40:
            sections.append({"type": "section", "text": _mrkdwn(text, SECTION_TEXT_MAX)})
            text = ""
            if len(sections) >= BLOCKS_MAX - 4:
                break
        text = f"{text}\n{line}" if text else line
        shown += 1
    if text:
        sections.append({"type": "section", "text": _mrkdwn(text, SECTION_TEXT_MAX)})
    if shown < len(alerts):
        sections.append({"type": "section", "text": _mrkdwn(f"…and {len(alerts) - shown} more", SECTION_TEXT_MAX)})
    fallback = f"{_esc(title)} ({_esc(group.project)})"
    context = [f"Project {_esc(group.project)}", f"Monitor {_code(group.monitor_id)}", when]
    return _message(fallback, [_header(title), *sections, _context(context)])


def slack_resolved_message(event: AlertResolved) -> dict[str, Any]:
    """The incoming-webhook payload for a resolved alert: which alert, since when it is calm."""
    title = f"✅ Resolved: {event.monitor_name or event.monitor_id} on {event.model}"
    said = f"was: {_esc(event.summary)}" if event.summary else f"alert {_code(event.alert_id)}"
    calm = (
        f"No breach in {event.calm_windows} evaluated window{'s' if event.calm_windows != 1 else ''} "
        f"since {event.calm_since:%Y-%m-%d %H:%M:%S} UTC"
    )
    fallback = f"{_esc(title)} — {calm} ({_esc(event.project)})"
    return _message(
        fallback,
        [
            _header(title),
            {"type": "section", "text": _mrkdwn(f"{calm}\n{said}", SECTION_TEXT_MAX)},
            _context(
                [
                    f"Alert {_code(event.alert_id)}",
                    f"Monitor {_code(event.monitor_id)}",
                    f"Fired for the window at {event.fired_window_start:%Y-%m-%d %H:%M:%S} UTC",
                ]
            ),
            _buttons(_button("Open alert", event.alert_url, "loopwatch_open_alert")),
        ],
    )


def _json_block(label: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    if not data:
        return None
    body = json.dumps(data, default=str, ensure_ascii=False, sort_keys=True, indent=1)
    room = SECTION_TEXT_MAX - len(label) - 12  # "*label*\n```" + "```"
    return {
        "type": "section",
        "text": _mrkdwn(f"*{label}*\n```{_esc(_clip(body, room))}```", SECTION_TEXT_MAX),
    }


def slack_retrain_message(event: RetrainEvent) -> dict[str, Any]:
    """The incoming-webhook payload for a retraining request: why, for which data, with the evidence."""
    title = f"🔁 Retraining requested: {event.model}"
    reasons = ", ".join(_code(reason) for reason in event.reason[:5])
    if len(event.reason) > 5:
        reasons += f" and {len(event.reason) - 5} more"
    fields = [
        ("Project", _esc(event.project)),
        ("Model", _model_label(event.model, event.model_version)),
        ("Window", _window(event.window_start, event.window_end)),
        ("Triggered by", reasons or "—"),
    ]
    fallback = f"{_esc(title)} ({_esc(event.project)}, {len(event.reason)} alert(s))"
    return _message(
        fallback,
        [
            _header(title),
            _fields(fields),
            _json_block("Evidence", event.evidence),
            _json_block("Training data selector", event.dataset),
            _context([f"Request {_code(event.request_id)}", f"Created {event.created_at:%Y-%m-%d %H:%M:%S} UTC"]),
        ],
    )
