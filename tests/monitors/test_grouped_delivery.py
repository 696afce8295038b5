"""Grouped notifications against real loopback receivers: the alerts one monitor fires for N models in
one window reach each Slack and webhook channel as ONE message listing them, also when two processes
deliver them; each alert keeps its own row and delivery log; PagerDuty stays one incident per alert."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.events import AlertEvent
from schemas.monitors import MonitorCreate
from schemas.settings import Settings
from streams.delivery import verify
from streams.monitors import AlertDispatcher, EvaluationResult, Monitoring
from streams.monitors.alerts import AlertStore
from streams.storage import Storage
from streams.storage import alerts as alert_rows
from tests.conftest import make_settings
from tests.delivery.delivery_receiver import Receiver
from tests.delivery.smtp_server import MailServer, self_signed, server_context
from tests.monitors.conftest import SECRET, drift_rows, webhook

MODELS = [f"model-{i:02d}" for i in range(6)]


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.01,
        delivery_max_attempts=3,
        delivery_timeout_seconds=2.0,
        group_wait_seconds=1.0,
        public_url="https://loopwatch.example.com",
    )


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    slack, hook = Receiver(), Receiver()
    slack.start()
    hook.start()
    try:
        yield slack, hook
    finally:
        slack.stop()
        hook.stop()


def _fire(monitoring: Monitoring, channels: list[dict[str, Any]]) -> list[EvaluationResult]:
    """One monitor for every model; each model's window closes (and is evaluated) on its own."""
    body = {
        "name": "Dataset drift",
        "family": "drift",
        "metric": "dataset_drift",
        "condition": {"type": "flagged"},
        "cooldown_seconds": 0,
        "channels": channels,
    }
    monitoring.store.create("shop", MonitorCreate.model_validate(body))
    results = [monitoring.engine.evaluate(drift_rows(0, model=model)) for model in MODELS]
    assert [len(result.alerts) for result in results] == [1] * len(MODELS)
    return results


def _alerts(results: list[EvaluationResult]) -> list[AlertEvent]:
    return [alert for result in results for alert in result.alerts]


class TestOneMessagePerWindow:
    """N models breach in one window → one Slack message and one webhook post listing N."""

    def test_one_message_lists_every_model(self, monitoring: Monitoring, receivers: tuple[Receiver, Receiver]) -> None:
        slack, hook = receivers
        channels = [{"type": "slack", "webhook_url": f"http://127.0.0.1:{slack.port}/s"}, webhook(hook.url)]
        results = _fire(monitoring, channels)

        async def run() -> None:
            try:  # windows close one by one: each evaluation is dispatched as it comes
                await asyncio.gather(*(monitoring.dispatcher.dispatch(r.alerts, [], r.monitors) for r in results))
            finally:
                await monitoring.dispatcher.aclose()

        asyncio.run(run())

        assert len(slack.requests) == 1
        message = json.loads(slack.requests[0].body)
        assert message["blocks"][0]["text"]["text"] == f"🟠 Dataset drift: {len(MODELS)} alerts, {len(MODELS)} models"
        listed = "\n".join(block["text"]["text"] for block in message["blocks"] if block["type"] == "section")
        assert all(f"*{model}*" in listed for model in MODELS)

        assert len(hook.requests) == 1
        request = hook.requests[0]
        assert verify(SECRET, request.body, request.headers["x-loopwatch-signature"])
        body = json.loads(request.body)
        assert body["event"] == "alert.group"
        assert request.headers["idempotency-key"] == body["group_id"]
        assert sorted(alert["model"] for alert in body["alerts"]) == MODELS

        for alert in _alerts(results):  # each alert on its own, with the group's attempt in its log
            stored = alert_rows.detail(monitoring.alerts.storage, "shop", alert.alert_id)
            assert stored is not None
            assert stored.delivery.status == "delivered"
            assert sorted((a.channel, a.succeeded) for a in stored.attempts) == [("slack", True), ("webhook", True)]

    def test_two_processes_send_one_message(
        self, monitoring: Monitoring, storage: Storage, settings: Settings, receivers: tuple[Receiver, Receiver]
    ) -> None:
        _, hook = receivers
        results = _fire(monitoring, [webhook(hook.url)])
        a, b = (AlertDispatcher(AlertStore(storage, owner=owner), settings) for owner in ("test-a:1:x", "test-b:2:y"))

        async def run() -> None:
            try:  # the models' windows closed on two workers, half each
                await asyncio.gather(
                    *(
                        (a if i % 2 else b).dispatch(result.alerts, [], result.monitors)
                        for i, result in enumerate(results)
                    )
                )
            finally:
                await asyncio.gather(a.aclose(), b.aclose())

        asyncio.run(run())
        assert len(hook.requests) == 1
        assert sorted(alert["model"] for alert in json.loads(hook.requests[0].body)["alerts"]) == MODELS

    def test_lone_alert_is_sent_as_itself(self, monitoring: Monitoring, receivers: tuple[Receiver, Receiver]) -> None:
        _, hook = receivers
        monitoring.store.create(
            "shop",
            MonitorCreate.model_validate(
                {
                    "name": "Dataset drift",
                    "family": "drift",
                    "metric": "dataset_drift",
                    "condition": {"type": "flagged"},
                    "channels": [webhook(hook.url)],
                }
            ),
        )
        result = monitoring.engine.evaluate(drift_rows(0))

        async def run() -> None:
            try:
                await monitoring.dispatcher.dispatch(result.alerts, [], result.monitors)
            finally:
                await monitoring.dispatcher.aclose()

        asyncio.run(run())
        assert len(hook.requests) == 1
        assert json.loads(hook.requests[0].body)["alert_id"] == result.alerts[0].alert_id


@pytest.fixture
def mail_server(tmp_path: Path) -> Iterator[MailServer]:
    cert, key = self_signed(tmp_path)
    server = MailServer(server_context(cert, key))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TestEmailDigest:
    """``digest_minutes``: the alerts of one period go out as one email when it ends, once across processes."""

    def test_one_digest_per_period(
        self, storage: Storage, settings: Settings, data_dir: Path, tmp_path: Path, mail_server: MailServer
    ) -> None:
        smtp = {"smtp_host": "127.0.0.1", "smtp_port": mail_server.port, "smtp_ca_file": tmp_path / "cert.pem"}
        settings = settings.model_copy(update={**smtp, "smtp_from": "loopwatch@example.com"})
        monitoring = Monitoring(storage, settings, sweep_seconds=None)
        channel = {"type": "email", "to": ["oncall@example.com"], "digest_minutes": 5}
        body = {
            "name": "Dataset drift",
            "family": "drift",
            "metric": "dataset_drift",
            "condition": {"type": "flagged"},
            "channels": [channel],
        }
        monitor = monitoring.store.create("shop", MonitorCreate.model_validate(body))
        # Alerts of three models fired in a period that has ended (10:00–10:05), in two windows.
        period = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
        alerts = [
            AlertEvent(
                project="shop",
                monitor_id=monitor.monitor_id,
                monitor_name=monitor.name,
                model=model,
                kind="drift",
                window_start=period - timedelta(minutes=5 * (i % 2 + 1)),
                window_end=period - timedelta(minutes=5 * (i % 2)),
                metric="dataset_drift",
                value=0.6,
                threshold=0.5,
                summary=f"{model}: 3 of 5 columns drifted",
                alert_url=f"https://loopwatch.example.com/ui/alerts/{model}",
                fired_at=period + timedelta(minutes=i + 1),
                dedup_key=f"{monitor.monitor_id}:{model}",
            )
            for i, model in enumerate(MODELS[:3])
        ]
        alert_rows.insert(monitoring.alerts.storage, alerts, {alert.alert_id: 1 for alert in alerts})
        a, b = (AlertDispatcher(AlertStore(storage, owner=owner), settings) for owner in ("test-a:1:x", "test-b:2:y"))

        async def run() -> None:
            try:  # two workers each deliver the alerts they fired
                await asyncio.gather(a.dispatch(alerts[:2], [], [monitor]), b.dispatch(alerts[2:], [], [monitor]))
            finally:
                await asyncio.gather(a.aclose(), b.aclose())

        asyncio.run(run())
        (got,) = mail_server.received
        assert got.tls
        assert got.rcpt_tos == ["oncall@example.com"]
        assert got.message["Subject"] == "[loopwatch] warning: Dataset drift: 3 alerts in the last 5 minutes (shop)"
        text = got.message.get_body(("plain",))
        assert text is not None
        for model in MODELS[:3]:
            assert f"{model}: 3 of 5 columns drifted" in text.get_content()
            assert f"Open alert: https://loopwatch.example.com/ui/alerts/{model}" in text.get_content()
        for alert in alerts:
            stored = alert_rows.detail(monitoring.alerts.storage, "shop", alert.alert_id)
            assert stored is not None
            assert [(t.channel, t.succeeded) for t in stored.attempts] == [("email", True)]
