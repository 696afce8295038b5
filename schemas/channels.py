"""Where a monitor's alerts go: Slack, a signed generic webhook, PagerDuty or email (the contract).

Channels are stored with the monitor, so validation here is syntax only (no DNS, no I/O): reachability
and the private-network rule are ``streams.delivery.url_guard.check_target``'s job, at creation time
and again at send time.
Secrets (the whole Slack URL, the signing secret, custom header values) are kept out of reprs so a
logged channel leaks nothing. PagerDuty's routing key is never stored at all: the channel names the
environment variable that holds it (``PD_…`` or ``PAGERDUTY_…`` only, so a monitor cannot make
loopwatch send any other variable of its environment to a URL of its choosing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

ChannelType = Literal["slack", "webhook", "pagerduty", "email"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_ALLOWED_SCHEMES = frozenset({"http", "https"})


class UnsafeTargetError(ValueError):
    """The URL may not be used as a delivery target; the message says why and how to allow it.

    A ``ValueError`` so pydantic validators can raise it and API layers can map it to a 422.
    """


def parse_target(url: str) -> httpx.URL:
    """Check the URL's shape (http/https, a host) without touching the network. httpx parses it, the
    same parser the sender uses, so the host checked is the host contacted."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeTargetError(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in _ALLOWED_SCHEMES:
        raise UnsafeTargetError(f"URL scheme {parsed.scheme or '(none)'!r} is not allowed; use http:// or https://")
    if not parsed.raw_host:
        raise UnsafeTargetError("URL has no host")
    return parsed


def safe_url(url: str, channel: ChannelType) -> str:
    """The URL with its secrets removed: no credentials or query; Slack keeps only scheme and host.

    A Slack incoming-webhook URL *is* its credential (the path is the token), so nothing after the
    host survives. Generic webhooks keep their path so operators can tell endpoints apart.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"  # netloc excludes user:password
    return f"{origin}/…" if channel == "slack" else origin + parsed.path


def mailto(recipients: Sequence[str]) -> str:
    """An email channel's target as the delivery log shows it."""
    return "mailto:" + ",".join(recipients)


# Headers loopwatch sets itself; letting a channel override them would break signing, idempotency or
# the HTTP framing.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "user-agent",
        "x-loopwatch-signature",
        "x-loopwatch-event",
        "idempotency-key",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackChannel(_Channel):
    """A Slack incoming webhook. The URL itself is the credential, so it never appears in a repr."""

    type: Literal["slack"] = "slack"
    webhook_url: str = Field(repr=False)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parse_target(value)
        return value


class WebhookChannel(_Channel):
    """A generic HTTP endpoint; bodies are signed with ``secret`` (see ``signing``)."""

    type: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr = Field(min_length=16)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parse_target(value)
        return value

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by loopwatch and cannot be overridden")
            if _HEADER_VALUE_FORBIDDEN.search(header_value):
                raise ValueError(f"header {name!r} value contains a line break or NUL")
        return value


_ROUTING_KEY_ENV = r"^(PD|PAGERDUTY)_[A-Z0-9_]{1,100}$"
# One address, as people type it: no display name, no list, nothing that could end a header line.
_ADDRESS = re.compile(
    r"^[^@\s<>,;:\"()\[\]\\]{1,64}@"  # local part: no spaces, lists, display names or quoting
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
MAX_RECIPIENTS = 20


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: a trigger when an alert fires, a resolve with the same ``dedup_key`` when
    it resolves. ``routing_key_env`` names the environment variable (of the process that delivers)
    holding the integration's routing key; ``url`` is overridable for a proxy or a test receiver."""

    type: Literal["pagerduty"] = "pagerduty"
    routing_key_env: str = Field(description="environment variable with the routing key: PD_… or PAGERDUTY_…")
    url: str = PAGERDUTY_EVENTS_URL

    @field_validator("routing_key_env")
    @classmethod
    def _routing_key_env(cls, value: str) -> str:
        if not re.match(_ROUTING_KEY_ENV, value):
            raise ValueError(
                f"{value[:100]!r} is not a PagerDuty routing key variable: name an environment variable "
                "starting with PD_ or PAGERDUTY_ (capitals, digits, _) that holds the key"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parse_target(value)
        return value


class EmailChannel(_Channel):
    """Email through the operator's SMTP server (``LOOPWATCH_SMTP_*``): one message per alert, or with
    ``digest_minutes`` one message for the alerts of each such period."""

    type: Literal["email"] = "email"
    to: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    digest_minutes: int | None = Field(default=None, ge=1, le=1440)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _ADDRESS.match(address):
                raise ValueError(f"{address[:100]!r} is not an email address (name@example.com, one per entry)")
        return value


AnyChannel = SlackChannel | WebhookChannel | PagerDutyChannel | EmailChannel
Channel = Annotated[AnyChannel, Field(discriminator="type")]

_CHANNEL_ADAPTER: TypeAdapter[AnyChannel] = TypeAdapter(Channel)


def channel_target(channel: AnyChannel) -> str:
    """Where a channel sends, safe to store and show (no credential, no query)."""
    if isinstance(channel, SlackChannel):
        return safe_url(channel.webhook_url, "slack")
    if isinstance(channel, EmailChannel):
        return mailto(channel.to)
    return safe_url(channel.url, channel.type)


def parse_channel(data: Any) -> AnyChannel:
    """Validate a stored or submitted channel dict (``{"type": "slack", ...}``) into its model."""
    return _CHANNEL_ADAPTER.validate_python(data)
