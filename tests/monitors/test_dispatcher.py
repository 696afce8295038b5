"""AlertDispatcher against real loopback receivers: retries, failures, Slack, signatures, recovery."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from loopwatch.demo.receiver import WebhookReceiver
from schemas.events import AlertEvent, RetrainEvent
from schemas.monitors import MonitorCreate
from schemas.topics import Topics
from streams.delivery import SIGNATURE_HEADER, verify
from streams.monitors import EvaluationResult, Monitoring, topic_publisher
from streams.storage import alerts as alert_rows
from streams.storage import deliveries, retrain_requests
from tests.delivery.delivery_receiver import Receiver, Reply
from tests.monitors.conftest import SECRET, drift_rows, webhook
from tests.waiting import wait_until

DRIFT = {
    "name": "Dataset drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
}


def _fire(monitoring: Monitoring, channels: list[dict[str, Any]], *, n: int = 0, **spec: Any) -> EvaluationResult:
    monitoring.store.create("shop", MonitorCreate.model_validate({**DRIFT, **spec, "channels": channels}))
    result = monitoring.engine.evaluate(drift_rows(n))
    assert len(result.alerts) == 1
    return result


def _dispatch(monitoring: Monitoring, result: EvaluationResult) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return await monitoring.dispatcher.dispatch(result.alerts, result.retrains, result.monitors)
        finally:
            await monitoring.dispatcher.aclose()

    return asyncio.run(run())


class TestWebhookDelivery:
    """Retries until delivered, every attempt stored; a dead receiver ends 'failed', alert kept."""

    def test_delivered_on_third_attempt(self, monitoring: Monitoring, receiver: WebhookReceiver) -> None:
        receiver.fail_first = 2
        result = _fire(monitoring, [webhook(receiver.url)])
        outcomes = _dispatch(monitoring, result)
        assert [(o.status, o.attempts) for o in outcomes] == [("delivered", 3)]
        alert_id = result.alerts[0].alert_id
        attempts = deliveries.attempts(monitoring.alerts.storage, "shop", [alert_id])
        assert [(a.attempt, a.status_code, a.succeeded, a.final) for a in attempts] == [
            (1, 503, False, False),
            (2, 503, False, False),
            (3, 200, True, True),
        ]
        assert all(a.url == receiver.url and a.channel == "webhook" for a in attempts)
        assert {r.idempotency_key for r in receiver.requests} == {alert_id}  # one key for every retry
        alert = alert_rows.detail(monitoring.alerts.storage, "shop", alert_id)
        assert alert is not None
        delivery = alert.delivery
        assert (delivery.status, delivery.attempts, delivery.targets[0].status) == (
            "delivered",
            3,
            "delivered",
        )

    def test_always_failing_ends_failed_and_alert_stays(
        self, monitoring: Monitoring, receiver: WebhookReceiver
    ) -> None:
        receiver.fail_first = 1000
        result = _fire(monitoring, [webhook(receiver.url)])
        outcomes = _dispatch(monitoring, result)
        max_attempts = monitoring.settings.delivery_max_attempts
        assert [(o.status, o.attempts, o.status_code) for o in outcomes] == [("failed", max_attempts, 503)]
        alert = alert_rows.detail(monitoring.alerts.storage, "shop", result.alerts[0].alert_id)
        assert alert is not None
        assert alert.status == "open"
        assert alert.delivery.status == "failed"
        assert len(alert.attempts) == max_attempts == len(receiver.requests)
        assert [a.final for a in alert.attempts] == [False] * (max_attempts - 1) + [True]
        assert (alert.attempts[-1].error or "").startswith("HTTP 503")

    def test_signature_verifies_with_the_secret_only(self, monitoring: Monitoring, receiver: WebhookReceiver) -> None:
        result = _fire(monitoring, [webhook(receiver.url)])
        _dispatch(monitoring, result)
        (request,) = receiver.wait_for(1)
        assert request.verified is True
        assert request.event_type == "alert"
        header = request.headers[SIGNATURE_HEADER.lower()]
        assert verify(SECRET, request.body, header)
        assert not verify("a-wrong-secret-0123456789", request.body, header)
        assert not verify(SECRET, request.body.replace(b"m1", b"m2"), header)
        body = AlertEvent.model_validate_json(request.body)
        assert body == result.alerts[0]

    def test_wrong_secret_at_the_receiver_is_a_final_failure(self, monitoring: Monitoring) -> None:
        with WebhookReceiver(secret="the-receivers-own-secret") as other:  # noqa: S106
            result = _fire(monitoring, [webhook(other.url)])
            outcomes = _dispatch(monitoring, result)
            assert [(o.status, o.attempts, o.status_code) for o in outcomes] == [("failed", 1, 401)]
            assert other.requests[0].verified is False


class TestSlackAndFanOut:
    """Slack gets valid Block Kit; every channel is delivered independently; retrains go out too."""

    def test_slack_block_kit_and_webhook_together(self, monitoring: Monitoring, receiver: WebhookReceiver) -> None:
        with WebhookReceiver() as slack:
            slack_url = slack.url.replace("/hooks/loopwatch", "/services/T000/B000/XXXXXXXX")
            result = _fire(
                monitoring,
                [{"type": "slack", "webhook_url": slack_url}, webhook(receiver.url)],
                severity="critical",
                retrain_after=1,
            )
            assert len(result.retrains) == 1
            outcomes = _dispatch(monitoring, result)
            assert sorted((o.channel, o.status) for o in outcomes) == [
                ("slack", "delivered"),
                ("slack", "delivered"),
                ("webhook", "delivered"),
                ("webhook", "delivered"),
            ]
            by_type = {r.event_type: r.json for r in slack.wait_for(2)}
        alert_payload = by_type["alert"]
        for payload in by_type.values():
            assert payload["text"]
            for block in payload["blocks"]:
                parsed = Block.parse(block)
                assert parsed is not None
                parsed.validate_json()
                assert parsed.to_dict() == block
        text = json.dumps(alert_payload)
        assert "Drift detected: m1" in text
        assert "feature.country" in text
        assert "Open alert" in text
        assert "Retraining requested: m1" in json.dumps(by_type["retrain"])
        retrain = RetrainEvent.model_validate_json(next(r.body for r in receiver.requests if r.event_type == "retrain"))
        assert retrain == result.retrains[0]
        stored = retrain_requests.listed(monitoring.alerts.storage, "shop")[0]
        assert stored.delivery.status == "delivered"
        assert stored.delivery.channels == 2


class TestPublishAndRecovery:
    """Distributed mode publishes every event; a broken bus never stops delivery; lost hand-offs resume."""

    def test_publish_callable_gets_alerts_and_retrains(
        self, storage: Any, settings: Any, receiver: WebhookReceiver
    ) -> None:
        published: list[tuple[str, str]] = []

        async def publish(kind: str, event: Any) -> None:
            published.append((kind, event.project))
            raise ConnectionError("broker down")  # must not stop channel delivery

        monitoring = Monitoring(storage, settings, publish=publish, sweep_seconds=None)
        result = _fire(monitoring, [webhook(receiver.url)], retrain_after=1)
        outcomes = _dispatch(monitoring, result)
        assert sorted(published) == [("alerts", "shop"), ("retrain", "shop")]
        assert [o.status for o in outcomes] == ["delivered", "delivered"]

    def test_topic_publisher_keys_by_project_and_model(self, monitoring: Monitoring) -> None:
        sent: list[tuple[str, bytes, bytes]] = []

        async def send(topic: str, value: bytes, key: bytes) -> None:
            sent.append((topic, value, key))

        result = _fire(monitoring, [], retrain_after=1)
        publish = topic_publisher(send, Topics("lw"))
        asyncio.run(publish("alerts", result.alerts[0]))
        asyncio.run(publish("retrain", result.retrains[0]))
        assert [(topic, key) for topic, _, key in sent] == [("lw.alerts", b"shop/m1"), ("lw.retrain", b"shop/m1")]
        assert AlertEvent.model_validate_json(sent[0][1]) == result.alerts[0]

    def test_undelivered_alerts_are_resumed(self, monitoring: Monitoring, receiver: WebhookReceiver) -> None:
        result = _fire(monitoring, [webhook(receiver.url)], retrain_after=1)  # stored, never handed over
        assert asyncio.run(_resume(monitoring)) == 2
        by_type = {r.event_type: r for r in receiver.wait_for(2)}
        assert by_type["alert"].idempotency_key == result.alerts[0].alert_id
        # rebuilt from storage: the same events (stored times keep milliseconds)
        resent_alert = AlertEvent.model_validate_json(by_type["alert"].body)
        assert resent_alert.model_dump(exclude={"fired_at"}) == result.alerts[0].model_dump(exclude={"fired_at"})
        assert abs(resent_alert.fired_at - result.alerts[0].fired_at) < timedelta(milliseconds=1)
        resent_retrain = RetrainEvent.model_validate_json(by_type["retrain"].body)
        assert resent_retrain.model_dump(exclude={"created_at"}) == result.retrains[0].model_dump(
            exclude={"created_at"}
        )
        alert = alert_rows.detail(monitoring.alerts.storage, "shop", result.alerts[0].alert_id)
        assert alert is not None
        assert alert.delivery.status == "delivered"
        assert asyncio.run(_resume(monitoring)) == 0  # complete now: nothing to resume

    def test_submit_from_a_worker_thread(self, monitoring: Monitoring, receiver: WebhookReceiver) -> None:
        monitoring.store.create("shop", MonitorCreate.model_validate({**DRIFT, "channels": [webhook(receiver.url)]}))

        async def run() -> None:
            await monitoring.start()
            worker = threading.Thread(target=monitoring.on_rows, args=(drift_rows(0),))  # the stats hook
            worker.start()
            await asyncio.to_thread(worker.join)
            await monitoring.stop()  # waits for the in-flight delivery

        asyncio.run(run())
        assert len(receiver.requests) == 1
        assert receiver.requests[0].verified

    def test_close_waits_for_a_delivery_submitted_just_before(
        self, monitoring: Monitoring, receiver: WebhookReceiver
    ) -> None:
        result = _fire(monitoring, [webhook(receiver.url)])

        async def run() -> list[Any]:
            monitoring.dispatcher.bind()
            future = monitoring.dispatcher.submit(result.alerts, result.retrains, result.monitors)
            assert future is not None
            await monitoring.dispatcher.aclose()  # the submitted dispatch has not started yet
            assert future.done()
            return list(future.result())

        outcomes = asyncio.run(run())
        assert [(o.status, o.attempts) for o in outcomes] == [("delivered", 1)]
        assert len(receiver.requests) == 1

    def test_submit_after_close_is_refused(self, monitoring: Monitoring) -> None:
        result = _fire(monitoring, [webhook("http://127.0.0.1:9/hook")])

        async def run() -> object:
            monitoring.dispatcher.bind()
            await monitoring.dispatcher.aclose()
            return monitoring.dispatcher.submit(result.alerts, result.retrains, result.monitors)

        assert asyncio.run(run()) is None

    def test_a_delivery_starting_after_close_gathered_its_tasks_is_left_to_resume(
        self, monitoring: Monitoring, receiver: WebhookReceiver
    ) -> None:
        """``submit`` passed its check on another thread just before ``aclose``; the loop ran its task
        only after ``aclose`` had gathered the tasks to wait for: nothing may start (an HTTP client would
        be made that nobody closes), the alert stays stored for ``resume_pending``."""
        result = _fire(monitoring, [webhook(receiver.url)])
        dispatcher = monitoring.dispatcher

        async def run() -> object:
            dispatcher.bind()
            late = dispatcher._dispatch_tracked(result.alerts, result.retrains, list(result.monitors))  # as queued
            await dispatcher.aclose()
            return await late

        assert asyncio.run(run()) == []
        assert receiver.requests == []
        assert dispatcher._client is None  # no client left open
        assert asyncio.run(_resume(monitoring)) == 1  # still owed, resumed later
        assert len(receiver.requests) == 1


async def _resume(monitoring: Monitoring) -> int:
    try:
        return await monitoring.resume_pending(older_than=timedelta(0))
    finally:
        await monitoring.dispatcher.aclose()


class TestResume:
    """Resuming sends only what is still owed: not to acked alerts, 2xx'd channels or deliveries in flight."""

    def test_acked_alert_is_never_resumed(self, monitoring: Monitoring, receiver: WebhookReceiver) -> None:
        result = _fire(monitoring, [webhook(receiver.url)])
        monitoring.alerts.ack("shop", result.alerts[0].alert_id, by="oncall")
        assert asyncio.run(_resume(monitoring)) == 0
        assert receiver.requests == []

    def test_only_channels_without_a_2xx_are_resumed(self, monitoring: Monitoring) -> None:
        with WebhookReceiver(secret=SECRET) as first, WebhookReceiver(secret=SECRET) as second:
            result = _fire(monitoring, [webhook(first.url), webhook(second.url)])
            alert_id = result.alerts[0].alert_id

            async def first_only() -> None:  # the process died before channel 1 was tried
                try:
                    await monitoring.dispatcher.dispatch(result.alerts, [], result.monitors, only={alert_id: [0]})
                finally:
                    await monitoring.dispatcher.aclose()

            asyncio.run(first_only())
            assert asyncio.run(_resume(monitoring)) == 1
            assert asyncio.run(_resume(monitoring)) == 0
            assert (len(first.requests), len(second.requests)) == (1, 1)

    def test_channel_in_flight_here_is_not_resent(self, monitoring: Monitoring) -> None:
        slow = Receiver()
        slow.script = [Reply(delay=1.0)]
        slow.start()
        try:
            result = _fire(monitoring, [webhook(slow.url)])

            async def run() -> int:
                monitoring.dispatcher.bind()
                delivery = monitoring.dispatcher.spawn(
                    monitoring.dispatcher.dispatch(result.alerts, [], result.monitors)
                )
                # the first attempt is on the wire (the receiver holds its answer), its outcome not stored yet
                await asyncio.to_thread(wait_until, lambda: slow.requests, "the first attempt to reach the receiver")
                resumed = await monitoring.resume_pending(older_than=timedelta(0))
                await delivery
                await monitoring.dispatcher.aclose()
                return resumed

            assert asyncio.run(run()) == 0
            assert len(slow.requests) == 1
        finally:
            slow.stop()


@pytest.mark.parametrize("status", [404, 410])
def test_non_retryable_status_is_final_at_once(monitoring: Monitoring, receiver: WebhookReceiver, status: int) -> None:
    receiver.fail_first, receiver.fail_status = 10, status
    result = _fire(monitoring, [webhook(receiver.url)])
    assert [(o.status, o.attempts) for o in _dispatch(monitoring, result)] == [("failed", 1)]
