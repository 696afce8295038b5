"""The monitor form follows the monitor contract: every contract field has an input, and a monitor
shown in the form and saved back is the same monitor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from api.ui.monitors import CHANNEL_FIELDS, FIELDS, ChannelRow, _body, _form_from_monitor, channel_rows
from schemas.monitors import Monitor, MonitorCreate

TEMPLATE = Path(__file__).parents[2] / "api" / "ui" / "templates" / "monitor_form.html"
# A monitor with every contract field set (none left to its default), for each kind of condition.
FULL: dict[str, Any] = {
    "monitor_id": "age-drift",
    "name": "age drifts",
    "scope": "checkout-*",
    "family": "drift",
    "metric": "column_drift",
    "dimension": "feature.age",
    "min_samples": 50,
    "cooldown_seconds": 600,
    "severity": "critical",
    "channels": [
        {
            "type": "webhook",
            "url": "http://127.0.0.1:9/hook",
            "secret": "s3cret-value-of-16-chars",
            "headers": {"X-Team": "ml"},
        },
        {"type": "slack", "webhook_url": "http://127.0.0.1:9/services/T0/B0/XX"},
        {"type": "pagerduty", "routing_key_env": "PD_ONCALL", "url": "http://127.0.0.1:9/v2/enqueue"},
        {"type": "email", "to": ["oncall@example.com", "ml@example.com"], "digest_minutes": 15},
    ],
    "retrain_after": 3,
    "resolve_after": 4,
    "enabled": False,
}
CONDITIONS = [
    {"type": "threshold", "operator": "gte", "value": 0.25},
    {"type": "p_value", "alpha": 0.01, "direction": "up"},
    {"type": "flagged"},
]
# the same monitor judged per tag value over a rolling day, and a no-data monitor per route
PER_ENTITY: dict[str, Any] = {
    **FULL,
    "family": "cost",
    "metric": "cost_usd",
    "dimension": "",
    "group_by": "user_id",
    "window": "24h",
    "condition": {"type": "threshold", "operator": "gt", "value": 20},
}
NO_DATA: dict[str, Any] = {
    **FULL,
    "family": "latency",
    "metric": "count",
    "dimension": "",
    "group_by": "route",
    "condition": {"type": "no_data", "for": "15m"},
}


def test_every_contract_field_is_in_the_form() -> None:
    spec = MonitorCreate.model_validate(PER_ENTITY)
    assert spec.model_fields_set == set(MonitorCreate.model_fields), "FULL must set every contract field"
    inputs = set(re.findall(r'name="(\w+)"', TEMPLATE.read_text()))
    assert inputs == {*FIELDS, *CHANNEL_FIELDS, "enabled"}


@pytest.mark.parametrize(
    "monitor",
    [*({**FULL, "condition": c} for c in CONDITIONS), PER_ENTITY, NO_DATA],
    ids=[*(c["type"] for c in CONDITIONS), "group_by-window", "no_data"],
)
def test_a_monitor_survives_the_form(monitor: dict[str, Any]) -> None:
    spec = MonitorCreate.model_validate(monitor)
    shown = Monitor.model_validate({**spec.model_dump(), "project": "shop"}).public_json()
    form, channels = _form_from_monitor(shown)
    assert set(form) == set(FIELDS)
    body = {**_body(form, shown["enabled"], channels), "monitor_id": form["monitor_id"]}
    assert body["channels"] == shown["channels"]  # masked: saving keeps the stored secrets (the API merges)
    saved = MonitorCreate.model_validate({**body, "channels": FULL["channels"]})
    assert saved == spec


def test_channel_rows_are_read_by_position_and_empty_rows_dropped() -> None:
    """Each channel row posts its four inputs; the empty row the form always offers adds nothing."""
    fields = {
        "channel_type": ["webhook", "", "slack"],
        "channel_url": ["https://a.example/hook", "", "https://hooks.slack.com/services/T/B/X"],
        "channel_secret": ["a-secret-of-16-chars", "", ""],
        "channel_headers": ["X-One: 1\nX-Two: two words", "", ""],
    }
    rows = channel_rows(fields)
    assert [row.type for row in rows] == ["webhook", "slack"]
    assert rows[0].body() == {
        "type": "webhook",
        "url": "https://a.example/hook",
        "secret": "a-secret-of-16-chars",
        "headers": {"X-One": "1", "X-Two": "two words"},
    }
    assert rows[1].body() == {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X"}
    assert ChannelRow(url="https://x.example").body()["type"] is None  # no type: the API names the field


def test_pagerduty_and_email_rows() -> None:
    """A PagerDuty row posts the routing key's variable (the URL only when given); an email row its
    recipients, one a line or comma separated, and the digest period (empty: one message per alert)."""
    fields = {
        "channel_type": ["pagerduty", "email", "email"],
        "channel_url": ["", "", ""],
        "channel_key_env": ["PD_KEY", "", ""],
        "channel_to": ["", "a@example.com\nb@example.com", "c@example.com, d@example.com"],
        "channel_digest": ["", "30", ""],
    }
    pagerduty, digest, each = (row.body() for row in channel_rows(fields))
    assert pagerduty == {"type": "pagerduty", "routing_key_env": "PD_KEY"}
    assert digest == {"type": "email", "to": ["a@example.com", "b@example.com"], "digest_minutes": 30}
    assert each == {"type": "email", "to": ["c@example.com", "d@example.com"], "digest_minutes": None}
    assert ChannelRow(type="email", to="a@example.com", digest="soon").body()["digest_minutes"] == "soon"
