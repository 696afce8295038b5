"""Channel models: a discriminated union that validates shape and keeps secrets out of reprs."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

import streams.delivery
from streams.delivery import SlackChannel, WebhookChannel, parse_channel

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"
SECRET = "whsec_0123456789abcdef"  # noqa: S105 - test-only signing secret


class TestParse:
    """``type`` selects the model; anything else is a validation error."""

    def test_slack(self) -> None:
        channel = parse_channel({"type": "slack", "webhook_url": SLACK_URL})
        assert isinstance(channel, SlackChannel)

    def test_webhook(self) -> None:
        channel = parse_channel(
            {"type": "webhook", "url": "https://example.com/h", "secret": SECRET, "headers": {"X-Team": "ml"}}
        )
        assert isinstance(channel, WebhookChannel)
        assert channel.secret.get_secret_value() == SECRET
        assert channel.headers == {"X-Team": "ml"}

    @pytest.mark.parametrize(
        "data",
        [
            {"type": "email", "to": "a@b.c"},
            {"webhook_url": SLACK_URL},
            {"type": "slack", "webhook_url": SLACK_URL, "extra": 1},
            {"type": "slack", "webhook_url": "file:///etc/passwd"},
            {"type": "webhook", "url": "https://example.com/h"},
            {"type": "webhook", "url": "https://example.com/h", "secret": "short"},
            {"type": "webhook", "url": "ftp://example.com/h", "secret": SECRET},
        ],
    )
    def test_invalid(self, data: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            parse_channel(data)


class TestHeaders:
    """Custom headers cannot override loopwatch's own or smuggle extra header lines."""

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-Loopwatch-Signature": "t=1,v1=00"},
            {"idempotency-key": "mine"},
            {"Content-Type": "text/plain"},
            {"Host": "internal"},
            {"X-Ok": "a\r\nX-Injected: 1"},
            {"Bad Name": "x"},
        ],
    )
    def test_refused(self, headers: dict[str, str]) -> None:
        with pytest.raises(ValidationError):
            WebhookChannel(url="https://example.com/h", secret=SecretStr(SECRET), headers=headers)


class TestSecretsStayHidden:
    """Logging a channel object reveals no credential."""

    def test_reprs(self) -> None:
        slack = SlackChannel(webhook_url=SLACK_URL)
        hook = WebhookChannel(
            url="https://example.com/h",
            secret=SecretStr(SECRET),
            headers={"Authorization": "Bearer tok3n-value"},
        )
        for text in (repr(slack), str(slack), repr(hook), str(hook)):
            assert "XXXXSECRETXXXX" not in text
            assert SECRET not in text
            assert "tok3n-value" not in text


def test_public_api_is_exactly_all() -> None:
    """The package's surface is its ``__all__``, and every name in it exists."""
    assert sorted(streams.delivery.__all__) == sorted(
        [
            "AnyChannel",
            "Channel",
            "ChannelConfigError",
            "EmailChannel",
            "PagerDutyChannel",
            "Deliverer",
            "DeliveryAttempt",
            "DeliveryOutcome",
            "IDEMPOTENCY_HEADER",
            "SIGNATURE_HEADER",
            "SlackChannel",
            "UnsafeTargetError",
            "WebhookChannel",
            "check_target",
            "parse_channel",
            "sign",
            "slack_message",
            "slack_resolved_message",
            "slack_retrain_message",
            "verify",
        ]
    )
    for name in streams.delivery.__all__:
        assert hasattr(streams.delivery, name)
