"""Alerts resolve: after ``resolve_after`` evaluated calm windows an alert is resolved once, across
processes, and each channel that got it is told once (Slack: a message naming it; webhooks: a signed,
idempotent ``alert.resolved`` event). A snoozed monitor's breaches are stored, not delivered."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopwatch.demo.receiver import WebhookReceiver
from schemas.events import AlertEvent, AlertResolved
from schemas.monitors import MonitorCreate
from schemas.settings import Settings
from streams.monitors import AlertDispatcher, EvaluationResult, Monitoring
from streams.monitors.alerts import AlertStore
from streams.monitors.evaluation import MonitorEngine
from streams.monitors.store import MonitorStore
from streams.storage import Storage
from streams.storage import alerts as alert_rows
from tests.delivery.delivery_receiver import Receiver
from tests.monitors.conftest import SECRET, drift_rows, webhook

DRIFT = {
    "name": "Dataset drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
}


def _create(monitoring: Monitoring, channels: list[dict[str, Any]], **spec: Any) -> str:
    body = MonitorCreate.model_validate({**DRIFT, **spec, "channels": channels})
    return monitoring.store.create("shop", body).monitor_id


def _deliver(dispatcher: AlertDispatcher, result: EvaluationResult) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return await dispatcher.dispatch(result.alerts, result.retrains, result.monitors, resolved=result.resolved)
        finally:
            await dispatcher.aclose()

    return asyncio.run(run())


def _engine(storage: Storage, settings: Settings, owner: str) -> MonitorEngine:
    """Another process's engine: its own claims owner, the same storage."""
    return MonitorEngine(MonitorStore(storage, settings, ttl_seconds=0), AlertStore(storage, owner=owner), settings)


class TestResolution:
    """Firing until ``resolve_after`` evaluated windows no longer breach; then resolved once."""

    def test_resolved_once_and_each_channel_told_once(
        self, monitoring: Monitoring, storage: Storage, settings: Settings, receiver: WebhookReceiver
    ) -> None:
        slack = Receiver()
        slack.start()
        try:
            channels = [webhook(receiver.url), {"type": "slack", "webhook_url": f"http://127.0.0.1:{slack.port}/s"}]
            _create(monitoring, channels, name="Checkout drift")
            fired = monitoring.engine.evaluate(drift_rows(0))
            assert len(fired.alerts) == 1
            alert = fired.alerts[0]
            _deliver(AlertDispatcher(monitoring.alerts, settings), fired)
            assert len(receiver.wait_for(1)) == 1

            one_calm = monitoring.engine.evaluate(drift_rows(1, drifted=False))
            assert one_calm.resolved == []  # 1 of the default 2 calm windows
            stored = alert_rows.detail(monitoring.alerts.storage, "shop", alert.alert_id)
            assert stored is not None
            assert stored.resolution is None

            # Two processes evaluate the second calm window at once: one resolution, announced once.
            a, b = (_engine(storage, settings, owner) for owner in ("test-a:1:x", "test-b:2:y"))
            results = [engine.evaluate(drift_rows(2, drifted=False)) for engine in (a, b)]
            announced = [r for result in results for r in result.resolved]
            assert [r.alert_id for r in announced] == [alert.alert_id]
            assert monitoring.alerts.resolutions.count("shop", alert.alert_id) == 1
            winner = next(result for result in results if result.resolved)
            _deliver(AlertDispatcher(monitoring.alerts, settings), winner)

            hooks = receiver.wait_for(2)
            resolved = hooks[1]
            assert resolved.event_type == "alert.resolved"
            assert resolved.verified
            event = AlertResolved.model_validate_json(resolved.body)
            assert (event.event, event.alert_id, event.calm_windows) == ("alert.resolved", alert.alert_id, 2)
            assert resolved.idempotency_key == event.resolution_id
            assert event.summary == alert.summary
            assert event.alert_url == alert.alert_url
            slack_bodies = [json.loads(r.body) for r in slack.requests]
            assert len(slack_bodies) == 2  # the alert, then its resolution
            text = json.dumps(slack_bodies[1])
            assert "Resolved: Checkout drift on m1" in text
            assert alert.alert_id in text

            # Later calm windows resolve nothing again; the alert page's record says resolved.
            assert monitoring.engine.evaluate(drift_rows(3, drifted=False)).resolved == []
            stored = alert_rows.detail(monitoring.alerts.storage, "shop", alert.alert_id)
            assert stored is not None
            assert stored.resolution is not None
            assert stored.resolution.calm_since == drift_rows(1)[0].window_start
            events = [t.event for t in stored.attempts]
            assert events.count("alert") == 2
            assert events.count("alert.resolved") == 2  # one per channel
            assert len(receiver.requests) == 2
            assert len(slack.requests) == 2
        finally:
            slack.stop()

    def test_a_breach_in_the_calm_streak_starts_it_again(
        self, monitoring: Monitoring, receiver: WebhookReceiver
    ) -> None:
        _create(monitoring, [webhook(receiver.url)], resolve_after=3)
        first = monitoring.engine.evaluate(drift_rows(0)).alerts[0]
        assert not monitoring.engine.evaluate(drift_rows(1, drifted=False)).resolved
        second = monitoring.engine.evaluate(drift_rows(2)).alerts[0]  # breaches again (no cooldown)
        assert not monitoring.engine.evaluate(drift_rows(3, drifted=False)).resolved
        assert not monitoring.engine.evaluate(drift_rows(4, drifted=False)).resolved
        resolved = monitoring.engine.evaluate(drift_rows(5, drifted=False)).resolved
        assert sorted(r.alert_id for r in resolved) == sorted([first.alert_id, second.alert_id])
        assert {r.calm_since for r in resolved} == {drift_rows(3)[0].window_start}

    def test_a_breach_after_resolution_is_a_new_alert_despite_the_cooldown(self, monitoring: Monitoring) -> None:
        _create(monitoring, [], cooldown_seconds=3600)
        first = monitoring.engine.evaluate(drift_rows(0)).alerts[0]
        assert not monitoring.engine.evaluate(drift_rows(1)).alerts  # still firing: the cooldown holds
        for n in (2, 3):
            monitoring.engine.evaluate(drift_rows(n, drifted=False))
        stored = alert_rows.detail(monitoring.alerts.storage, "shop", first.alert_id)
        assert stored is not None
        assert stored.resolution is not None
        again = monitoring.engine.evaluate(drift_rows(4)).alerts  # within the hour, but a new breach
        assert len(again) == 1
        assert again[0].alert_id != first.alert_id

    def test_resolved_after_a_crash_is_resent_to_the_channels_still_owed(
        self, monitoring: Monitoring, receiver: WebhookReceiver, settings: Settings
    ) -> None:
        _create(monitoring, [webhook(receiver.url)], resolve_after=1)
        fired = monitoring.engine.evaluate(drift_rows(0))
        _deliver(AlertDispatcher(monitoring.alerts, settings), fired)
        resolved = monitoring.engine.evaluate(drift_rows(1, drifted=False)).resolved
        assert len(resolved) == 1  # stored and announced, but the process dies before delivering it

        async def resume() -> int:
            dispatcher = AlertDispatcher(monitoring.alerts, settings)
            dispatcher.bind()
            try:
                return await dispatcher.resume_pending(monitoring.store.get, fired_before=datetime.now(UTC))
            finally:
                await dispatcher.aclose()

        assert asyncio.run(resume()) == 1
        hooks = receiver.wait_for(2)
        assert hooks[1].event_type == "alert.resolved"
        assert hooks[1].idempotency_key == resolved[0].resolution_id


class TestSnooze:
    """A snoozed monitor's breaches are stored, not delivered; other models are not snoozed."""

    def test_snoozed_model_stored_not_delivered(
        self, monitoring: Monitoring, receiver: WebhookReceiver, settings: Settings
    ) -> None:
        monitor_id = _create(monitoring, [webhook(receiver.url, SECRET)], scope="*")
        until = datetime.now(UTC) + timedelta(hours=1)
        monitoring.alerts.snoozes.put("shop", monitor_id, "m1", until, by="test")
        snoozed = monitoring.engine.evaluate(drift_rows(0, model="m1"))
        other = monitoring.engine.evaluate(drift_rows(0, model="m2"))
        assert snoozed.alerts == []
        assert [a.model for a in other.alerts] == ["m2"]
        stored = {a.model: a for a in alert_rows.listed(monitoring.alerts.storage, "shop")}
        assert stored["m1"].snoozed_until is not None
        assert abs(stored["m1"].snoozed_until - until) < timedelta(milliseconds=2)
        assert stored["m1"].delivery.status == "none"
        assert stored["m2"].snoozed_until is None
        # nothing owes the snoozed alert a delivery, now or after a restart
        pending = monitoring.alerts.pending(since=datetime.now(UTC) - timedelta(hours=1), until=datetime.now(UTC))
        assert [p.event.model for p in pending] == ["m2"]
        _deliver(AlertDispatcher(monitoring.alerts, settings), other)
        hooks = receiver.wait_for(1)
        assert [json.loads(h.body)["model"] for h in hooks] == ["m2"]

    def test_an_alert_fired_elsewhere_is_resolved_too(
        self, monitoring: Monitoring, storage: Storage, settings: Settings
    ) -> None:
        """A process that knew of no firing alert still resolves one another process fired (it asks
        again at the latest after ``QUIET_SECONDS``; a new process asks at once)."""
        _create(monitoring, [], resolve_after=1)
        assert not monitoring.engine.evaluate(drift_rows(0, drifted=False)).resolved  # quiet: nothing firing
        other = _engine(storage, settings, "test-c:3:z")
        alert = other.evaluate(drift_rows(1)).alerts[0]
        monitoring.engine._quiet.clear()  # what QUIET_SECONDS of waiting does
        monitoring.engine.evaluate(drift_rows(2, drifted=False))
        stored = alert_rows.detail(monitoring.alerts.storage, "shop", alert.alert_id)
        assert stored is not None
        assert stored.resolution is not None  # stored; no channel to tell (the monitor has none)
        assert stored.resolution.calm_since == drift_rows(2)[0].window_start

    def test_lifted_snooze_delivers_again(self, monitoring: Monitoring) -> None:
        monitor_id = _create(monitoring, [])
        monitoring.alerts.snoozes.put("shop", monitor_id, "*", datetime.now(UTC) + timedelta(hours=1), by="test")
        assert monitoring.engine.evaluate(drift_rows(0)).alerts == []
        monitoring.alerts.snoozes.put("shop", monitor_id, "*", datetime.now(UTC), by="test")
        assert len(monitoring.engine.evaluate(drift_rows(1)).alerts) == 1


def test_racing_resolutions_are_stored_and_announced_once(
    monitoring: Monitoring,
    storage: Storage,
    settings: Settings,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each process's read of the firing alerts waits until the other made the same read, so both
    decide to resolve the same alert (the race a read-then-write check would lose)."""
    _create(monitoring, [webhook(receiver.url)], resolve_after=1)
    alert = monitoring.engine.evaluate(drift_rows(0)).alerts[0]
    barrier = threading.Barrier(2)
    read = alert_rows.firing

    def racing(storage: Storage, project: str, **which: str | None) -> list[AlertEvent]:
        found = read(storage, project, **which)
        barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(alert_rows, "firing", racing)
    engines = [
        MonitorEngine(MonitorStore(storage, settings, ttl_seconds=0), AlertStore(storage, owner=owner), settings)
        for owner in ("test-a:1:x", "test-b:2:y")
    ]
    results: list[EvaluationResult] = [EvaluationResult(), EvaluationResult()]

    def run(index: int) -> None:
        results[index] = engines[index].evaluate(drift_rows(1, drifted=False))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(len(result.resolved) for result in results) == [0, 1]
    assert monitoring.alerts.resolutions.count("shop", alert.alert_id) == 1
    for engine, result in zip(engines, results, strict=True):
        _deliver(AlertDispatcher(engine.alerts, settings), result)
    assert [r.event_type for r in receiver.requests] == ["alert.resolved"]  # the alert itself was never sent
