"""Where a monitor's alerts go: a Slack incoming webhook or a signed generic webhook.

Channels are stored with the monitor, so validation here is syntax only (no DNS): reachability and the
private-network rule are ``url_guard.check_target``'s job, at creation time and again at send time.
Secrets (the whole Slack URL, the signing secret, custom header values) are kept out of reprs so a
logged channel leaks nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

from streams.delivery.url_guard import parse_target

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
