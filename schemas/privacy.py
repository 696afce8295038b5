"""A project's redaction policy: what is looked for in which fields, and what is done with it."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RedactionMode = Literal["off", "detect", "mask", "pseudonymize", "drop"]
DetectorName = Literal["email", "phone", "card", "iban", "ip", "secret", "url_credentials"]
ScannedField = Literal["prompt", "response", "feedback_text", "tags", "features"]

ALL_DETECTORS: tuple[DetectorName, ...] = ("url_credentials", "secret", "email", "iban", "card", "ip", "phone")
DEFAULT_FIELDS: tuple[ScannedField, ...] = ("prompt", "response", "feedback_text")
MAX_CUSTOM_PATTERNS = 20


class CustomPattern(BaseModel):
    """A project's own entity: matches of ``regex`` become ``<NAME>`` (or ``<NAME:…>``)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,31}$", description="placeholder name, e.g. ORDER_ID")]
    regex: Annotated[
        str,
        Field(
            min_length=1,
            max_length=500,
            description="a Python regular expression that compiles and never matches the empty string (else 422)",
        ),
    ]

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        if compiled.match(""):
            raise ValueError("the regular expression matches the empty string")
        return value


class RedactionPolicy(BaseModel):
    """``mode``: off; detect (count, change nothing); mask (``<EMAIL>``); pseudonymize (``<EMAIL:9f2c…>``,
    a keyed HMAC: the same value gives the same token); drop (a field with a finding is removed)."""

    model_config = ConfigDict(extra="forbid")

    mode: RedactionMode = Field(
        default="mask", description="pseudonymize needs LOOPWATCH_REDACTION_KEY set on the server (else 422)"
    )
    detectors: list[DetectorName] = Field(default_factory=lambda: list(ALL_DETECTORS))
    fields: list[ScannedField] = Field(default_factory=lambda: list(DEFAULT_FIELDS))
    custom: list[CustomPattern] = Field(default_factory=list, max_length=MAX_CUSTOM_PATTERNS)


RetentionKind = Literal["raw_text", "events", "feedback", "window_stats", "dead_letters", "alerts"]
RETENTION_KINDS: tuple[RetentionKind, ...] = (
    "raw_text",
    "events",
    "feedback",
    "window_stats",
    "dead_letters",
    "alerts",
)
RetentionDays = Annotated[int, Field(ge=1, le=36_500)]


class RetentionPolicy(BaseModel):
    """How many days a project keeps each kind of data (null: until the server's own limits). Expired
    raw text is blanked (the event's numbers and the statistics stay); the other kinds are deleted."""

    model_config = ConfigDict(extra="forbid")

    raw_text: RetentionDays | None = Field(
        default=None, description="prompts, responses, feedback texts and OTLP texts: blanked after this many days"
    )
    events: RetentionDays | None = Field(default=None, description="inference events: deleted")
    feedback: RetentionDays | None = Field(default=None, description="feedback: deleted")
    window_stats: RetentionDays | None = Field(default=None, description="per-window statistics: deleted")
    dead_letters: RetentionDays | None = Field(default=None, description="dead letters: deleted")
    alerts: RetentionDays | None = Field(default=None, description="alerts, their deliveries, acks and resolutions")

    def days(self) -> dict[RetentionKind, int]:
        """The kinds the policy limits, with their days."""
        return {kind: value for kind in RETENTION_KINDS if (value := getattr(self, kind)) is not None}
