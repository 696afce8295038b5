"""Delivery over real HTTP to a loopback receiver: retries, reporting, signing, idempotency, safety."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from schemas.events import AlertEvent, RetrainEvent
from schemas.settings import Settings
from streams.delivery import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Deliverer,
    DeliveryAttempt,
    DeliveryOutcome,
    SlackChannel,
    WebhookChannel,
    url_guard,
    verify,
)
from tests.delivery.delivery_dns import fake_dns
from tests.delivery.delivery_receiver import TLS_NAME, Receiver, Reply

SECRET = "whsec_0123456789abcdef"  # noqa: S105 - test-only signing secret
SLACK_TOKEN_PATH = "/services/T0000/B0000/XXXXSECRETTOKENXXXX"  # noqa: S105 - fake token


def deliver(
    event: AlertEvent | RetrainEvent,
    channel: SlackChannel | WebhookChannel,
    **options: Any,
) -> tuple[DeliveryOutcome, list[DeliveryAttempt]]:
    """Run one delivery with fast test defaults; return the outcome and every reported attempt."""
    attempts: list[DeliveryAttempt] = []
    settings: dict[str, Any] = {
        "max_attempts": 3,
        "backoff_seconds": 0.01,
        "timeout_seconds": 2.0,
        "allow_private": True,
    }
    settings.update(options)

    async def run() -> DeliveryOutcome:
        async with Deliverer(on_attempt=attempts.append, **settings) as deliverer:
            return await deliverer.deliver(event, channel)

    return asyncio.run(run()), attempts


def webhook(receiver: Receiver, **fields: Any) -> WebhookChannel:
    return WebhookChannel(url=receiver.url, secret=SecretStr(SECRET), **fields)


def slack(receiver: Receiver) -> SlackChannel:
    return SlackChannel(webhook_url=f"http://127.0.0.1:{receiver.port}{SLACK_TOKEN_PATH}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestWebhookRequest:
    """What a webhook receiver gets: the event JSON, signed, with stable idempotency key."""

    def test_delivered_once(self, receiver: Receiver, alert: AlertEvent) -> None:
        outcome, attempts = deliver(alert, webhook(receiver, headers={"X-Team": "ml-platform"}))

        assert outcome == DeliveryOutcome(
            target_id="alert-7f3a",
            channel="webhook",
            status="delivered",
            attempts=1,
            status_code=200,
            error=None,
        )
        [request] = receiver.requests
        assert request.path == "/hooks/loopwatch"
        assert request.body == alert.model_dump_json().encode()
        assert AlertEvent.model_validate_json(request.body) == alert
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("loopwatch")
        assert request.headers[IDEMPOTENCY_HEADER.lower()] == "alert-7f3a"
        assert request.headers["x-loopwatch-event"] == "alert"
        assert request.headers["x-team"] == "ml-platform"

        [attempt] = attempts
        assert (attempt.target_id, attempt.event_type, attempt.channel) == ("alert-7f3a", "alert", "webhook")
        assert attempt.url == receiver.url
        assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)
        assert attempt.succeeded
        assert attempt.final
        assert attempt.latency_ms > 0
        assert attempt.at.tzinfo is UTC

    def test_signature_verifies_only_with_the_right_secret_body_and_time(
        self, receiver: Receiver, alert: AlertEvent
    ) -> None:
        deliver(alert, webhook(receiver))
        [request] = receiver.requests
        header = request.headers[SIGNATURE_HEADER.lower()]
        timestamp = int(header.split(",")[0].removeprefix("t="))

        assert verify(SECRET, request.body, header)
        assert not verify("whsec_wrong_secret_000", request.body, header)
        assert not verify(SECRET, request.body.replace(b"0.4375", b"0.0001"), header)
        assert not verify(SECRET, request.body, header, now=timestamp + 301)

    def test_retrain_event(self, receiver: Receiver, retrain: RetrainEvent) -> None:
        outcome, attempts = deliver(retrain, webhook(receiver))
        assert outcome.status == "delivered"
        assert outcome.target_id == "retrain-19"
        [request] = receiver.requests
        assert RetrainEvent.model_validate_json(request.body) == retrain
        assert request.headers[IDEMPOTENCY_HEADER.lower()] == "retrain-19"
        assert request.headers["x-loopwatch-event"] == "retrain"
        assert attempts[0].event_type == "retrain"


class TestRetries:
    """Transient failures are retried with backoff; permanent ones are not; every attempt is reported."""

    def test_fail_twice_then_deliver(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.fail_first(2, status=500)
        outcome, attempts = deliver(alert, webhook(receiver))

        assert outcome.status == "delivered"
        assert outcome.attempts == 3
        assert [a.status_code for a in attempts] == [500, 500, 200]
        assert [a.attempt for a in attempts] == [1, 2, 3]
        assert [a.final for a in attempts] == [False, False, True]
        assert [a.succeeded for a in attempts] == [False, False, True]
        assert attempts[0].error == "HTTP 500: nope"
        keys = {r.headers[IDEMPOTENCY_HEADER.lower()] for r in receiver.requests}
        assert keys == {"alert-7f3a"}
        assert len({r.body for r in receiver.requests}) == 1
        for request in receiver.requests:  # each retry is signed afresh and verifies
            assert verify(SECRET, request.body, request.headers[SIGNATURE_HEADER.lower()])

    def test_always_failing_gives_up_after_max_attempts(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.always(503)
        outcome, attempts = deliver(alert, webhook(receiver), max_attempts=4)

        assert outcome.status == "failed"
        assert outcome.attempts == 4
        assert outcome.status_code == 503
        assert outcome.error == "HTTP 503: nope"
        assert len(receiver.requests) == 4
        assert [a.status_code for a in attempts] == [503] * 4
        assert [a.final for a in attempts] == [False, False, False, True]
        assert not any(a.succeeded for a in attempts)

    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
    def test_transient_statuses_retried(self, receiver: Receiver, alert: AlertEvent, status: int) -> None:
        receiver.fail_first(1, status=status)
        outcome, attempts = deliver(alert, webhook(receiver))
        assert outcome.status == "delivered"
        assert [a.status_code for a in attempts] == [status, 200]

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
    def test_client_errors_not_retried(self, receiver: Receiver, alert: AlertEvent, status: int) -> None:
        receiver.always(status)
        outcome, attempts = deliver(alert, webhook(receiver))
        assert outcome.status == "failed"
        assert outcome.attempts == 1
        assert len(receiver.requests) == 1
        [attempt] = attempts
        assert attempt.final
        assert not attempt.succeeded
        assert attempt.status_code == status

    def test_redirect_not_followed(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.default = Reply(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        outcome, attempts = deliver(alert, webhook(receiver))
        assert outcome.status == "failed"
        assert outcome.attempts == 1
        assert "redirects are not followed" in (attempts[0].error or "")
        assert len(receiver.requests) == 1

    def test_retry_after_honoured(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.fail_first(1, status=429, headers={"Retry-After": "1"})
        outcome, _ = deliver(alert, webhook(receiver), max_retry_after_seconds=5)
        assert outcome.status == "delivered"
        first, second = receiver.requests
        assert second.at - first.at >= 0.95  # backoff alone would be ~0.01 s

    def test_retry_after_capped(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.fail_first(1, status=503, headers={"Retry-After": "3600"})
        outcome, _ = deliver(alert, webhook(receiver), max_retry_after_seconds=0.2)
        assert outcome.status == "delivered"
        first, second = receiver.requests
        assert 0.18 <= second.at - first.at < 2

    def test_timeout_retried(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.script = [Reply(delay=1.0)]
        outcome, attempts = deliver(alert, webhook(receiver), timeout_seconds=0.2)
        assert outcome.status == "delivered"
        assert outcome.attempts == 2
        assert attempts[0].status_code is None
        assert "Timeout" in (attempts[0].error or "")
        assert attempts[0].latency_ms < 1000

    def test_connection_refused_retried_then_failed(self, alert: AlertEvent) -> None:
        channel = WebhookChannel(url=f"http://127.0.0.1:{closed_port()}/h", secret=SecretStr(SECRET))
        outcome, attempts = deliver(alert, channel)
        assert outcome.status == "failed"
        assert outcome.attempts == 3
        assert all(a.status_code is None and "ConnectError" in (a.error or "") for a in attempts)
        assert [a.final for a in attempts] == [False, False, True]

    def test_single_attempt_setting(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.always(500)
        outcome, attempts = deliver(alert, webhook(receiver), max_attempts=1)
        assert outcome.attempts == 1
        assert attempts[0].final


class TestSlack:
    """Slack gets the Block Kit payload; its secret URL is never stored or logged."""

    def test_payload_and_redacted_url(self, receiver: Receiver, alert: AlertEvent) -> None:
        with structlog.testing.capture_logs() as logs:
            outcome, attempts = deliver(alert, slack(receiver))
        assert outcome.status == "delivered"
        [request] = receiver.requests
        assert request.path == SLACK_TOKEN_PATH
        payload = json.loads(request.body)
        assert payload["blocks"][0]["type"] == "header"
        assert "fraud-scorer" in payload["text"]
        assert request.headers[IDEMPOTENCY_HEADER.lower()] == "alert-7f3a"
        assert SIGNATURE_HEADER.lower() not in request.headers
        assert attempts[0].url == f"http://127.0.0.1:{receiver.port}/…"
        assert logs
        assert all(entry.get("alert_id") == "alert-7f3a" for entry in logs)
        assert "XXXXSECRETTOKENXXXX" not in repr(logs) + repr(attempts) + repr(outcome)

    def test_failure_messages_carry_no_secret(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.default = Reply(status=404, body=f"no_service for {SLACK_TOKEN_PATH}".encode())
        with structlog.testing.capture_logs() as logs:
            outcome, attempts = deliver(alert, slack(receiver))
        assert outcome.status == "failed"
        assert outcome.error == "HTTP 404: no_service for /…"
        assert "XXXXSECRETTOKENXXXX" not in repr(logs) + repr(attempts) + repr(outcome)

    def test_retrain_to_slack(self, receiver: Receiver, retrain: RetrainEvent) -> None:
        outcome, _ = deliver(retrain, slack(receiver))
        assert outcome.status == "delivered"
        assert "Retraining requested" in json.loads(receiver.requests[0].body)["text"]

    def test_webhook_secret_never_logged(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.always(500)
        with structlog.testing.capture_logs() as logs:
            _, attempts = deliver(alert, webhook(receiver, headers={"Authorization": "Bearer tok3n-value-123"}))
        assert SECRET not in repr(logs) + repr(attempts)
        assert "tok3n-value-123" not in repr(logs) + repr(attempts)
        assert {entry["event"] for entry in logs} >= {"delivery.attempt", "delivery.failed"}
        assert [entry["attempt"] for entry in logs if entry["event"] == "delivery.attempt"] == [1, 2, 3]


class TestTargetSafety:
    """The guard runs at send time, and the request goes to the address it vetted."""

    def test_private_target_refused_without_sending(self, receiver: Receiver, alert: AlertEvent) -> None:
        outcome, attempts = deliver(alert, webhook(receiver), allow_private=False)
        assert outcome.status == "failed"
        assert outcome.attempts == 1
        assert "loopback" in (attempts[0].error or "")
        assert attempts[0].final
        assert receiver.requests == []

    def test_connects_to_the_vetted_address(
        self, receiver: Receiver, alert: AlertEvent, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A second lookup would fail (rebinding stand-in): only the guard's answer may be used."""
        answers = {"hooks.example.test": ["127.0.0.1"]}
        fake_dns(monkeypatch, answers)
        real_resolve = url_guard.resolve_target

        def resolve_once(url: str, *, allow_private: bool) -> Any:
            try:
                return real_resolve(url, allow_private=allow_private)
            finally:
                answers["hooks.example.test"] = []  # any later lookup of the name now fails

        monkeypatch.setattr("streams.delivery.sender.resolve_target", resolve_once)
        channel = WebhookChannel(url=f"http://hooks.example.test:{receiver.port}/h", secret=SecretStr(SECRET))
        outcome, attempts = deliver(alert, channel, max_attempts=1)
        assert outcome.status == "delivered", attempts
        assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"
        assert attempts[0].url == f"http://hooks.example.test:{receiver.port}/h"

    def test_https_keeps_the_name_for_sni_and_certificate_checks(
        self,
        tls_receiver: Receiver,
        tls_cert: tuple[Path, Path],
        alert: AlertEvent,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Pinning the address must not break TLS: the certificate is valid for the name only."""
        fake_dns(monkeypatch, {TLS_NAME: ["127.0.0.1"]})
        trust = ssl.create_default_context(cafile=str(tls_cert[0]))
        channel = WebhookChannel(url=f"https://{TLS_NAME}:{tls_receiver.port}/h", secret=SecretStr(SECRET))

        async def run() -> DeliveryOutcome:
            async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
                deliverer = Deliverer(client=client, allow_private=True, max_attempts=1)
                return await deliverer.deliver(alert, channel)

        outcome = asyncio.run(run())
        assert outcome.status == "delivered", outcome
        assert tls_receiver.tls_server_names == [TLS_NAME]
        assert tls_receiver.requests[0].headers["host"] == f"{TLS_NAME}:{tls_receiver.port}"

    def test_https_certificate_still_verified(
        self, tls_receiver: Receiver, tls_cert: tuple[Path, Path], alert: AlertEvent
    ) -> None:
        """Reaching the same server by IP fails verification: pinning does not weaken TLS checks."""
        trust = ssl.create_default_context(cafile=str(tls_cert[0]))
        channel = WebhookChannel(url=tls_receiver.url, secret=SecretStr(SECRET))

        async def run() -> DeliveryOutcome:
            async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
                deliverer = Deliverer(client=client, allow_private=True, max_attempts=3, backoff_seconds=0.01)
                return await deliverer.deliver(alert, channel)

        outcome = asyncio.run(run())
        assert outcome.status == "failed"
        assert outcome.attempts == 1  # a certificate will not fix itself between retries
        assert "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
        assert tls_receiver.requests == []

    def test_name_resolving_to_private_refused(
        self, receiver: Receiver, alert: AlertEvent, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake_dns(monkeypatch, {"rebound.example.test": ["10.0.0.7"]})
        channel = WebhookChannel(url="https://rebound.example.test/h", secret=SecretStr(SECRET))
        outcome, attempts = deliver(alert, channel, allow_private=False)
        assert outcome.status == "failed"
        assert "10.0.0.7" in (attempts[0].error or "")

    def test_name_resolving_to_a_tunnel_into_loopback_refused(
        self, alert: AlertEvent, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The embedded-IPv4 rule holds at send time too: 2002:7f00:1:: is 6to4 for 127.0.0.1.

        The client's transport only records: were the guard to let the address through, the test must
        fail without a packet leaving loopback.
        """
        fake_dns(monkeypatch, {"tunnel.example.test": ["2002:7f00:1::"]})
        sent: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(200)

        async def run() -> DeliveryOutcome:
            async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
                deliverer = Deliverer(client=client, allow_private=False, max_attempts=3, backoff_seconds=0.01)
                channel = WebhookChannel(url="https://tunnel.example.test/h", secret=SecretStr(SECRET))
                return await deliverer.deliver(alert, channel)

        outcome = asyncio.run(run())
        assert outcome.status == "failed"
        assert outcome.attempts == 1  # a refusal is final, not retried
        assert "embeds loopback address 127.0.0.1" in (outcome.error or "")
        assert sent == []

    def test_unresolvable_name_is_retried(self, alert: AlertEvent, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"gone.example.test": []})
        channel = WebhookChannel(url="https://gone.example.test/h", secret=SecretStr(SECRET))
        outcome, attempts = deliver(alert, channel)
        assert outcome.status == "failed"
        assert outcome.attempts == 3
        assert "does not resolve" in (attempts[0].error or "")


class TestCallerContract:
    """Callbacks may be sync or async, may fail, and clients are closed only by their owner."""

    def test_async_callback(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.fail_first(1)
        seen: list[DeliveryAttempt] = []

        async def record(attempt: DeliveryAttempt) -> None:
            await asyncio.sleep(0)
            seen.append(attempt)

        async def run() -> DeliveryOutcome:
            async with Deliverer(on_attempt=record, backoff_seconds=0.01, allow_private=True) as deliverer:
                return await deliverer.deliver(alert, webhook(receiver))

        assert asyncio.run(run()).status == "delivered"
        assert [a.status_code for a in seen] == [500, 200]

    def test_failing_callback_does_not_stop_delivery(self, receiver: Receiver, alert: AlertEvent) -> None:
        receiver.fail_first(1)

        def broken(attempt: DeliveryAttempt) -> None:
            raise RuntimeError("clickhouse is down")

        async def run() -> DeliveryOutcome:
            async with Deliverer(on_attempt=broken, backoff_seconds=0.01, allow_private=True) as deliverer:
                return await deliverer.deliver(alert, webhook(receiver))

        with structlog.testing.capture_logs() as logs:
            outcome = asyncio.run(run())
        assert outcome.status == "delivered"
        assert outcome.attempts == 2
        assert sum(entry["event"] == "delivery.on_attempt_failed" for entry in logs) == 2

    def test_unserialisable_event_reported_not_raised(self, receiver: Receiver, alert: AlertEvent) -> None:
        odd = alert.model_copy(update={"details": {"features": object()}})
        outcome, attempts = deliver(odd, webhook(receiver))
        assert outcome.status == "failed"
        assert outcome.attempts == 1
        assert attempts[0].final
        assert "could not build the request" in (attempts[0].error or "")
        assert receiver.requests == []

    def test_injected_client_left_open(self, receiver: Receiver, alert: AlertEvent) -> None:
        async def run() -> tuple[DeliveryOutcome, bool]:
            async with httpx.AsyncClient() as client:
                async with Deliverer(client=client, allow_private=True) as deliverer:
                    outcome = await deliverer.deliver(alert, webhook(receiver))
                return outcome, client.is_closed

        outcome, closed = asyncio.run(run())
        assert outcome.status == "delivered"
        assert not closed

    def test_from_settings(self, receiver: Receiver, alert: AlertEvent) -> None:
        settings = Settings(  # type: ignore[call-arg]  # _env_file is pydantic-settings' init-only option
            _env_file=None,
            allow_private_webhooks=True,
            delivery_max_attempts=2,
            delivery_backoff_seconds=0.01,
            delivery_timeout_seconds=1.0,
        )
        receiver.always(500)
        attempts: list[DeliveryAttempt] = []

        async def run() -> DeliveryOutcome:
            async with Deliverer.from_settings(settings, on_attempt=attempts.append) as deliverer:
                return await deliverer.deliver(alert, webhook(receiver))

        assert asyncio.run(run()).attempts == 2
        assert len(receiver.requests) == 2

    def test_invalid_configuration_refused(self) -> None:
        with pytest.raises(ValueError, match="max_attempts"):
            Deliverer(max_attempts=0)
