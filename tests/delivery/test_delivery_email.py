"""Email channels against a real SMTP server on loopback that requires STARTTLS (aiosmtpd, a throwaway
self-signed certificate the client is told to trust): recipients, subject, text and escaped HTML with
dashboard links, the resolved message, retries on 4xx, and the refusals (untrusted certificate, a
loopback server without the operator's setting, no SMTP server configured)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import AlertEvent, AlertResolved
from streams.delivery import Deliverer, DeliveryAttempt, DeliveryOutcome, EmailChannel, parse_channel
from streams.delivery.mail import SmtpServer
from tests.delivery.smtp_server import MailServer, self_signed, server_context

TO = ["oncall@example.com", "ml-team@example.com"]


@pytest.fixture(scope="session")
def smtp_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def mail_server(smtp_cert: tuple[Path, Path]) -> Iterator[MailServer]:
    server = MailServer(server_context(*smtp_cert))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def smtp(server: MailServer, cert: Path | None) -> SmtpServer:
    return SmtpServer(host="127.0.0.1", port=server.port, sender="loopwatch@example.com", ca_file=cert)


def deliver(
    event: AlertEvent | AlertResolved, channel: EmailChannel, smtp_server: SmtpServer | None, **options: Any
) -> tuple[DeliveryOutcome, list[DeliveryAttempt]]:
    attempts: list[DeliveryAttempt] = []
    settings: dict[str, Any] = {
        "max_attempts": 3,
        "backoff_seconds": 0.01,
        "timeout_seconds": 5.0,
        "allow_private": True,
    }
    settings.update(options)

    async def run() -> DeliveryOutcome:
        async with Deliverer(on_attempt=attempts.append, smtp=smtp_server, **settings) as deliverer:
            return await deliverer.deliver(event, channel)

    return asyncio.run(run()), attempts


class TestAlertMail:
    """One message per alert over STARTTLS, to the channel's recipients, with the breach and links."""

    def test_sent_over_starttls(self, mail_server: MailServer, smtp_cert: tuple[Path, Path], alert: AlertEvent) -> None:
        alert = alert.model_copy(update={"summary": "share drifted 44 % > 30 %"})
        outcome, attempts = deliver(alert, EmailChannel(to=TO), smtp(mail_server, smtp_cert[0]))
        assert (outcome.status, outcome.attempts, outcome.status_code) == ("delivered", 1, 250)
        assert attempts[0].url == "mailto:oncall@example.com,ml-team@example.com"
        assert attempts[0].channel == "email"

        (got,) = mail_server.received
        assert got.tls
        assert got.mail_from == "loopwatch@example.com"
        assert got.rcpt_tos == TO
        message = got.message
        assert (
            message["Subject"] == "[loopwatch] critical: Feature drift (PSI) on fraud-scorer: share drifted 44 % > 30 %"
        )
        assert message["To"] == "oncall@example.com, ml-team@example.com"
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert "share drifted 44 % > 30 %" in text.get_content()
        assert f"Open alert: {alert.alert_url}" in text.get_content()
        assert f"Open window: {alert.window_url}" in text.get_content()
        assert (
            f'<a href="{alert.alert_url.replace("&", "&amp;") if alert.alert_url else ""}">Open alert</a>'
            in html.get_content()
        )

    def test_html_escapes_names(self, mail_server: MailServer, smtp_cert: tuple[Path, Path], alert: AlertEvent) -> None:
        alert = alert.model_copy(update={"model": "<script>alert(1)</script>", "summary": "a < b & c"})
        outcome, _ = deliver(alert, EmailChannel(to=TO[:1]), smtp(mail_server, smtp_cert[0]))
        assert outcome.status == "delivered"
        html = mail_server.received[0].message.get_body(("html",))
        assert html is not None
        body = html.get_content()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "<script>" not in body
        assert "a &lt; b &amp; c" in body

    def test_resolved_message(self, mail_server: MailServer, smtp_cert: tuple[Path, Path], alert: AlertEvent) -> None:
        resolved = AlertResolved(
            resolution_id="res-1",
            alert_id=alert.alert_id,
            project=alert.project,
            monitor_id=alert.monitor_id,
            monitor_name=alert.monitor_name,
            model=alert.model,
            summary="share drifted 44 % > 30 %",
            fired_window_start=alert.window_start,
            calm_since=datetime(2025, 3, 4, 10, 5, tzinfo=UTC),
            calm_windows=2,
            resolved_window_end=datetime(2025, 3, 4, 10, 15, tzinfo=UTC),
            alert_url=alert.alert_url,
        )
        outcome, _ = deliver(resolved, EmailChannel(to=TO[:1]), smtp(mail_server, smtp_cert[0]))
        assert outcome.status == "delivered"
        message = mail_server.received[0].message
        assert message["Subject"] == "[loopwatch] Resolved: Feature drift (PSI) on fraud-scorer"
        text = message.get_body(("plain",))
        assert text is not None
        assert "No breach in 2 evaluated windows since 2025-03-04 10:05:00 UTC" in text.get_content()


class TestFailures:
    """4xx replies are retried; an untrusted certificate, a refused host or a missing server are final."""

    def test_retried_on_4xx(self, mail_server: MailServer, smtp_cert: tuple[Path, Path], alert: AlertEvent) -> None:
        mail_server.fail_next = 1
        outcome, attempts = deliver(alert, EmailChannel(to=TO[:1]), smtp(mail_server, smtp_cert[0]))
        assert (outcome.status, [a.status_code for a in attempts]) == ("delivered", [451, 250])
        assert len(mail_server.received) == 1

    def test_untrusted_certificate(self, mail_server: MailServer, alert: AlertEvent) -> None:
        outcome, attempts = deliver(alert, EmailChannel(to=TO[:1]), smtp(mail_server, None))
        assert (outcome.status, len(attempts)) == ("failed", 1)
        assert outcome.error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
        assert mail_server.received == []

    def test_loopback_server_needs_the_operator_setting(
        self, mail_server: MailServer, smtp_cert: tuple[Path, Path], alert: AlertEvent
    ) -> None:
        outcome, _ = deliver(alert, EmailChannel(to=TO[:1]), smtp(mail_server, smtp_cert[0]), allow_private=False)
        assert outcome.status == "failed"
        assert outcome.error is not None
        assert "LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS" in outcome.error
        assert mail_server.received == []

    def test_no_smtp_server_configured(self, alert: AlertEvent) -> None:
        outcome, _ = deliver(alert, EmailChannel(to=TO[:1]), None)
        assert (outcome.status, outcome.error) == (
            "failed",
            "email channels need an SMTP server: set LOOPWATCH_SMTP_HOST",
        )


class TestChannel:
    """Recipients are plain addresses: no lists, display names or header line breaks."""

    def test_valid(self) -> None:
        channel = parse_channel({"type": "email", "to": TO, "digest_minutes": 30})
        assert isinstance(channel, EmailChannel)
        assert channel.digest_minutes == 30

    @pytest.mark.parametrize(
        "data",
        [
            {"type": "email", "to": []},
            {"type": "email", "to": "oncall@example.com"},
            {"type": "email", "to": ["a@example.com, b@example.com"]},
            {"type": "email", "to": ["Ops <ops@example.com>"]},
            {"type": "email", "to": ["ops@example.com\r\nBcc: x@evil.test"]},
            {"type": "email", "to": ["not-an-address"]},
            {"type": "email", "to": ["ops@example.com"], "digest_minutes": 0},
        ],
    )
    def test_invalid(self, data: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            parse_channel(data)
