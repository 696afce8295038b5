"""Where a monitor's alerts go: a Slack incoming webhook or a signed generic webhook (the contract).

Channels are stored with the monitor, so validation here is syntax only (no DNS, no I/O): reachability
and the private-network rule are ``streams.delivery.url_guard.check_target``'s job, at creation time
and again at send time.
Secrets (the whole Slack URL, the signing secret, custom header values) are kept out of reprs so a
logged channel leaks nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

ChannelType = Literal["slack", "webhook"]

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


Channel = Annotated[SlackChannel | WebhookChannel, Field(discriminator="type")]

_CHANNEL_ADAPTER: TypeAdapter[SlackChannel | WebhookChannel] = TypeAdapter(Channel)


def parse_channel(data: Any) -> SlackChannel | WebhookChannel:
    """Validate a stored or submitted channel dict (``{"type": "slack", ...}``) into its model."""
    return _CHANNEL_ADAPTER.validate_python(data)
