"""PagerDuty Events API v2 bodies: ``trigger`` when an alert fires, ``resolve`` when it resolves.

Both carry the same ``dedup_key``, derived from the alert's episode (project, monitor, model): PagerDuty
folds every trigger of an open incident into it and closes it on the resolve, so an alert that fires
again (after its cooldown) before it resolved adds to the same incident instead of paging twice, and a
later episode opens a new one. The summary is the breach in words (``wording``, via the alert's
``summary``), the same sentence Slack and the dashboard show.
See https://developer.pagerduty.com/docs/events-api-v2/trigger-events/.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from schemas.events import AlertEvent, AlertResolved, RetrainEvent, Severity

SUMMARY_MAX = 1024  # PagerDuty truncates longer summaries
DEDUP_KEY_MAX = 255
CLIENT = "loopwatch"
_SEVERITY: dict[Severity, Literal["critical", "error", "warning", "info"]] = {
    "critical": "critical",
    "warning": "warning",
    "info": "info",
}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def episode_key(project: str, monitor_id: str, model: str) -> str:
    """The ``dedup_key`` of an alert episode: readable, or hashed when a name makes it too long."""
    key = f"loopwatch/{project}/{monitor_id}/{model}"
    if len(key) <= DEDUP_KEY_MAX:
        return key
    return f"loopwatch/{hashlib.sha256(key.encode()).hexdigest()}"


def _links(*pairs: tuple[str, str | None]) -> list[dict[str, str]]:
    return [{"href": url, "text": text} for text, url in pairs if url and url.startswith(("https://", "http://"))]


def _alert_summary(alert: AlertEvent) -> str:
    said = alert.summary or f"{alert.metric} {alert.value:.4g} (threshold {alert.threshold:.4g})"
    name = alert.monitor_name or alert.monitor_id
    return _clip(f"{name} on {alert.model}: {said}", SUMMARY_MAX)


def pagerduty_event(event: AlertEvent | AlertResolved | RetrainEvent, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for ``event``; a retraining request is an ``info`` trigger of its own."""
    if isinstance(event, AlertResolved):
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": episode_key(event.project, event.monitor_id, event.model),
        }
    if isinstance(event, RetrainEvent):
        return {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": f"loopwatch/retrain/{event.request_id}",
            "client": CLIENT,
            "payload": {
                "summary": _clip(f"Retraining requested for {event.model} ({len(event.reason)} alert(s))", SUMMARY_MAX),
                "severity": "info",
                "source": f"loopwatch/{event.project}/{event.model}",
                "component": event.model,
                "group": event.project,
                "class": "retrain",
                "timestamp": event.created_at.isoformat(),
                "custom_details": {"reason": event.reason, "evidence": event.evidence, "dataset": event.dataset},
            },
        }
    details: dict[str, Any] = {
        "project": event.project,
        "monitor_id": event.monitor_id,
        "monitor_name": event.monitor_name,
        "model": event.model,
        "model_version": event.model_version,
        "metric": event.metric,
        "dimension": event.dimension,
        "value": event.value,
        "threshold": event.threshold,
        "condition": event.condition,
        "window_start": event.window_start.isoformat(),
        "window_end": event.window_end.isoformat(),
        "alert_id": event.alert_id,
    }
    if event.p_value is not None:
        details["p_value"] = event.p_value
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": episode_key(event.project, event.monitor_id, event.model),
        "client": CLIENT,
        "payload": {
            "summary": _alert_summary(event),
            "severity": _SEVERITY[event.severity],
            "source": f"loopwatch/{event.project}/{event.model}",
            "component": event.model,
            "group": event.project,
            "class": event.kind,
            "timestamp": event.fired_at.isoformat(),
            "custom_details": details,
        },
        "links": _links(("Open alert", event.alert_url), ("Open window", event.window_url)),
    }
    if event.alert_url:
        body["client_url"] = event.alert_url
    return body
