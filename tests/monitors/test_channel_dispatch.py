"""New channel types through the dispatcher against real loopback servers: a PagerDuty alert triggers
then resolves, once each, with one dedup key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.monitors import MonitorCreate
from streams.monitors import AlertDispatcher, EvaluationResult, Monitoring
from streams.storage import alerts as alert_rows
from tests.delivery.delivery_receiver import Receiver
from tests.monitors.conftest import drift_rows

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"  # noqa: S105 - a test routing key


@pytest.fixture
def pd_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    return ROUTING_KEY


@pytest.fixture
def pd_receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _run(dispatcher: AlertDispatcher, result: EvaluationResult) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return await dispatcher.dispatch(result.alerts, result.retrains, result.monitors, resolved=result.resolved)
        finally:
            await dispatcher.aclose()

    return asyncio.run(run())


class TestDispatched:
    """A monitor with a PagerDuty channel: the alert triggers once, its resolution resolves once."""

    def test_trigger_then_resolve_once_each(self, monitoring: Monitoring, pd_receiver: Receiver, pd_key: str) -> None:
        body = {
            "name": "Dataset drift",
            "family": "drift",
            "metric": "dataset_drift",
            "condition": {"type": "flagged"},
            "cooldown_seconds": 0,
            "channels": [{"type": "pagerduty", "routing_key_env": "PD_KEY", "url": pd_receiver.url}],
        }
        monitor = monitoring.store.create("shop", MonitorCreate.model_validate(body))
        fired = monitoring.engine.evaluate(drift_rows(0))
        assert [o.status for o in _run(monitoring.dispatcher, fired)] == ["delivered"]
        for n in (1, 2):
            calm = monitoring.engine.evaluate(drift_rows(n, drifted=False))
        assert len(calm.resolved) == 1
        assert [o.status for o in _run(AlertDispatcher(monitoring.alerts, monitoring.settings), calm)] == ["delivered"]

        sent = [json.loads(request.body) for request in pd_receiver.requests]
        assert [event["event_action"] for event in sent] == ["trigger", "resolve"]
        assert sent[0]["dedup_key"] == sent[1]["dedup_key"] == f"loopwatch/shop/{monitor.monitor_id}/m1"
        stored = alert_rows.detail(monitoring.alerts.storage, "shop", fired.alerts[0].alert_id)
        assert stored is not None
        assert [(a.channel, a.event, a.succeeded) for a in stored.attempts] == [
            ("pagerduty", "alert", True),
            ("pagerduty", "alert.resolved", True),
        ]
