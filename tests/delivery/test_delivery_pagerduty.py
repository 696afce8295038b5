"""PagerDuty channels against a real loopback receiver: Events API v2 trigger and resolve bodies, one
dedup key per alert episode, the routing key read from the environment and never stored or logged,
the webhooks' retries; end to end through the dispatcher: tests/monitors/test_channel_dispatch.py."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import AlertEvent, AlertResolved
from streams.delivery import Deliverer, DeliveryAttempt, DeliveryOutcome, PagerDutyChannel, parse_channel
from streams.delivery.pagerduty import episode_key
from tests.delivery.delivery_receiver import Receiver, Reply

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"  # noqa: S105 - a test routing key


def deliver(
    event: AlertEvent | AlertResolved, channel: PagerDutyChannel, **options: Any
) -> tuple[DeliveryOutcome, list[DeliveryAttempt]]:
    attempts: list[DeliveryAttempt] = []
    settings: dict[str, Any] = {"max_attempts": 3, "backoff_seconds": 0.01, "timeout_seconds": 2.0}
    settings.update(options)

    async def run() -> DeliveryOutcome:
        async with Deliverer(on_attempt=attempts.append, allow_private=True, **settings) as deliverer:
            return await deliverer.deliver(event, channel)

    return asyncio.run(run()), attempts


def resolution(alert: AlertEvent) -> AlertResolved:
    return AlertResolved(
        resolution_id="res-1",
        alert_id=alert.alert_id,
        project=alert.project,
        monitor_id=alert.monitor_id,
        monitor_name=alert.monitor_name,
        model=alert.model,
        severity=alert.severity,
        summary=alert.summary,
        fired_window_start=alert.window_start,
        calm_since=datetime(2025, 3, 4, 10, 5, tzinfo=UTC),
        calm_windows=2,
        resolved_window_end=datetime(2025, 3, 4, 10, 15, tzinfo=UTC),
        alert_url=alert.alert_url,
    )


@pytest.fixture
def pd_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    return ROUTING_KEY


class TestEvents:
    """A trigger with the breach in words and links, then a resolve with the same dedup key."""

    def test_trigger_then_resolve(self, receiver: Receiver, alert: AlertEvent, pd_key: str) -> None:
        channel = PagerDutyChannel(routing_key_env="PD_KEY", url=receiver.url)
        fired, _ = deliver(alert.model_copy(update={"summary": "share drifted 44 % > 30 %"}), channel)
        resolved, _ = deliver(resolution(alert), channel)
        assert (fired.status, resolved.status) == ("delivered", "delivered")

        trigger, resolve = (json.loads(request.body) for request in receiver.requests)
        assert trigger["routing_key"] == pd_key
        assert trigger["event_action"] == "trigger"
        assert trigger["dedup_key"] == "loopwatch/checkout/mon-42/fraud-scorer"
        payload = trigger["payload"]
        assert payload["summary"] == "Feature drift (PSI) on fraud-scorer: share drifted 44 % > 30 %"
        assert payload["severity"] == "critical"
        assert payload["source"] == "loopwatch/checkout/fraud-scorer"
        assert payload["custom_details"]["alert_id"] == "alert-7f3a"
        assert payload["custom_details"]["value"] == pytest.approx(0.4375)
        assert trigger["links"] == [
            {"href": alert.alert_url, "text": "Open alert"},
            {"href": alert.window_url, "text": "Open window"},
        ]
        assert resolve == {"routing_key": pd_key, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}

    def test_dedup_key_is_the_episode(self) -> None:
        assert episode_key("p", "m", "model") == "loopwatch/p/m/model"
        long_key = episode_key("p", "m", "x" * 300)
        assert len(long_key) <= 255
        assert long_key == episode_key("p", "m", "x" * 300)


class TestRetries:
    """5xx answers are retried with the same body; 400 is final and the echoed key is scrubbed."""

    def test_retried_on_5xx(self, receiver: Receiver, alert: AlertEvent, pd_key: str) -> None:
        receiver.fail_first(2, status=502)
        outcome, attempts = deliver(alert, PagerDutyChannel(routing_key_env="PD_KEY", url=receiver.url))
        assert (outcome.status, outcome.attempts) == ("delivered", 3)
        assert [a.status_code for a in attempts] == [502, 502, 200]
        assert len({request.body for request in receiver.requests}) == 1
        assert all(a.channel == "pagerduty" for a in attempts)

    def test_bad_request_final_and_key_scrubbed(self, receiver: Receiver, alert: AlertEvent, pd_key: str) -> None:
        receiver.default = Reply(status=400, body=f'{{"status":"invalid","routing_key":"{pd_key}"}}'.encode())
        outcome, attempts = deliver(alert, PagerDutyChannel(routing_key_env="PD_KEY", url=receiver.url))
        assert (outcome.status, len(attempts)) == ("failed", 1)
        assert outcome.error is not None
        assert "invalid" in outcome.error
        assert pd_key not in outcome.error

    def test_missing_routing_key_is_a_final_failure(
        self, receiver: Receiver, alert: AlertEvent, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("PD_SOMEWHERE_ELSE", raising=False)
        outcome, attempts = deliver(alert, PagerDutyChannel(routing_key_env="PD_SOMEWHERE_ELSE", url=receiver.url))
        assert (outcome.status, len(attempts)) == ("failed", 1)
        assert outcome.error == (
            "environment variable PD_SOMEWHERE_ELSE (the PagerDuty routing key) is not set in the process that delivers"
        )
        assert receiver.requests == []


class TestChannel:
    """The routing key is named, never stored; only PD_/PAGERDUTY_ variables may be named."""

    def test_defaults_to_pagerduty(self) -> None:
        channel = parse_channel({"type": "pagerduty", "routing_key_env": "PAGERDUTY_ONCALL"})
        assert isinstance(channel, PagerDutyChannel)
        assert channel.url == "https://events.pagerduty.com/v2/enqueue"

    @pytest.mark.parametrize(
        "data",
        [
            {"type": "pagerduty", "routing_key_env": "LOOPWATCH_ADMIN_KEY"},
            {"type": "pagerduty", "routing_key_env": "AWS_SECRET_ACCESS_KEY"},
            {"type": "pagerduty", "routing_key_env": "pd_key"},
            {"type": "pagerduty", "routing_key": ROUTING_KEY},
            {"type": "pagerduty", "routing_key_env": "PD_KEY", "url": "file:///etc/passwd"},
        ],
    )
    def test_invalid(self, data: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            parse_channel(data)
