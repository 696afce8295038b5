"""The inbound event contract: what an app sends (inference, feedback), as pydantic models.

The SDK validates with these models at call time, so a bad call is reported where it happens; the
server imports the same models (``schemas.events`` re-exports them) to validate HTTP bodies and Kafka
messages, so an event that is valid in one path is valid in every path. Validation is strict (unknown
fields are errors) and error locations name the field, so a 422 tells the sender exactly what to fix.
"""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from loopwatch_sdk import limits
from loopwatch_sdk.times import as_utc, iso_8601

EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)


TIMESTAMP_DOC = (
    "ISO 8601 with a time zone (a server may take one without as UTC), between 2000-01-01 and 2200-01-01 UTC "
    "and not ahead of the server's clock by more than its allowed skew; default: when received"
)
EVENT_TIME = "event_time"  # the validation context key a server passes its ``EventTimeRules`` under


@dataclass(frozen=True, slots=True)
class EventTimeRules:
    """How a server judges event time, passed to validation as ``context={EVENT_TIME: rules}``.

    Without them (the SDK validating an app's call) any time in range is taken and a time without a
    zone is UTC: the server's clock decides the rest when the event arrives.
    """

    now: datetime
    max_future: timedelta
    naive_utc: bool = True  # False: a date-time without a time zone is refused

    @property
    def latest(self) -> datetime:
        return self.now + self.max_future


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id() -> str:
    """A fresh event id for callers that did not bring their own (the SDK always does)."""
    return uuid.uuid4().hex


def to_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC; aware ones are converted, so storage holds one zone."""
    try:
        value = as_utc(value)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 has no UTC datetime
        raise ValueError("timestamp must be between 2000-01-01 and 2200-01-01 UTC") from None
    if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
        raise ValueError("timestamp must be between 2000-01-01 and 2200-01-01 UTC")
    return value


def event_time(value: datetime, info: ValidationInfo) -> datetime:
    """``to_utc``, then the server's ``EventTimeRules`` when it passed them: no time without a zone
    (if it says so) and none further ahead of its clock than the allowed skew."""
    rules = info.context.get(EVENT_TIME) if isinstance(info.context, dict) else None
    naive = value.tzinfo is None
    if naive and rules is not None and not rules.naive_utc:
        raise PydanticCustomError(
            "timezone_required",
            "this server refuses date-times without a time zone: add Z or an offset, e.g. 2026-12-07T13:00:00Z",
        )
    value = to_utc(value)
    if rules is not None and value > rules.latest:
        hint = " (a time without a zone is read as UTC: add its offset, e.g. +01:00)" if naive else ""
        raise PydanticCustomError(
            "timestamp_in_future",
            f"{_stamp(value)} is {_span(value - rules.now)} ahead of the server's clock ({_stamp(rules.now)}); "
            f"events may be at most {_span(rules.max_future)} in the future: check the sender's clock{hint}",
        )
    return value


def utc_now() -> datetime:
    """Now, in UTC: the default event time."""
    return datetime.now(UTC)


def _truncate_text(value: str | None) -> str | None:
    if value is not None and len(value) > limits.MAX_TEXT_CHARS:
        return value[: limits.MAX_TEXT_CHARS]
    return value


EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9._:\-]+$"),
]
ProjectName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME_LENGTH)]
OptionalName = Annotated[str, StringConstraints(max_length=limits.MAX_NAME_LENGTH)] | None
UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]
EventTime = Annotated[datetime, WrapValidator(iso_8601), AfterValidator(event_time)]
Text = Annotated[str | None, AfterValidator(_truncate_text)]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_FEATURE_NAME_LENGTH)]
FeatureValue = (
    bool | int | FiniteFloat | Annotated[str, StringConstraints(max_length=limits.MAX_FEATURE_STRING_LENGTH)] | None
)
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_TAG_KEY_LENGTH)]
TagValue = Annotated[str, StringConstraints(max_length=limits.MAX_TAG_VALUE_LENGTH)]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=limits.MAX_TAGS)]
TokenCount = Annotated[int, Field(ge=0, le=limits.MAX_TOKENS)]


class StrictModel(BaseModel):
    """Unknown fields are errors and models are frozen: one strictness for every event contract."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_field_meant(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """An unknown field's error suggests the field it resembles (``latency`` → ``latency_ms``)."""
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if not any(error["type"] == "extra_forbidden" for error in errors):
                raise
            raise ValidationError.from_exception_data(exc.title, [cls._suggest(error) for error in errors]) from None

    @classmethod
    def _suggest(cls, error: Any) -> InitErrorDetails:
        """The error as it was (type and message), an unknown field's with the field it resembles."""
        message = error["msg"]
        if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            name = str(error["loc"][0])
            close = difflib.get_close_matches(name, list(cls.model_fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(cls.model_fields)}"
            message = f"unknown field {name!r}: {hint}"
        return {"type": PydanticCustomError(error["type"], message), "loc": error["loc"], "input": error["input"]}


class InferenceEvent(StrictModel):
    """One model call as the app saw it. ``event_id`` is the idempotency key: resending is harmless."""

    event_id: EventId = Field(default_factory=new_id)
    project: ProjectName
    model: Name
    model_version: OptionalName = None
    provider: OptionalName = None
    timestamp: EventTime = Field(default_factory=utc_now, description=TIMESTAMP_DOC)
    latency_ms: Annotated[FiniteFloat, Field(ge=0)] | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: OptionalName = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    cached_tokens: TokenCount | None = None
    cost_usd: Annotated[FiniteFloat, Field(ge=0)] | None = None
    prompt: Text = None
    response: Text = None
    features: Annotated[dict[FeatureName, FeatureValue], Field(max_length=limits.MAX_FEATURES)] = Field(
        default_factory=dict
    )
    prediction: FeatureValue = None
    probabilities: Annotated[dict[str, FiniteFloat], Field(max_length=limits.MAX_PROBABILITIES)] | None = None
    embedding: Annotated[list[FiniteFloat], Field(min_length=1, max_length=limits.MAX_EMBEDDING_DIM)] | None = None
    tags: Tags = Field(default_factory=dict)


class FeedbackKind(StrEnum):
    THUMBS = "thumbs"
    RATING = "rating"
    LABEL = "label"
    SCORE = "score"
    CORRECTION = "correction"
    COMMENT = "comment"


class FeedbackSource(StrEnum):
    USER = "user"
    ANNOTATOR = "annotator"
    EVALUATOR = "evaluator"
    SYSTEM = "system"


def feedback_value(kind: str, value: Any, name: str | None, text: str | None) -> Any:
    """``value`` checked against ``kind`` (thumbs true/false become +1/-1); ValueError says what is wrong.

    One rule for the pydantic model and the server's fast decoder (``schemas.records``).
    """
    if kind == "thumbs":
        if isinstance(value, bool):
            return 1 if value else -1
        if value not in (1, -1) or isinstance(value, str):
            raise ValueError("thumbs feedback needs value +1 or -1 (or true/false)")
    elif kind == "rating":
        if isinstance(value, (bool, str)) or value is None or not 1 <= value <= 5:
            raise ValueError("rating feedback needs a numeric value from 1 to 5")
    elif kind == "label":
        if value is None or isinstance(value, bool):
            raise ValueError("label feedback needs the true label as value (string or number)")
    elif kind == "score":
        if isinstance(value, (bool, str)) or value is None:
            raise ValueError("score feedback needs a numeric value")
        if not name:
            raise ValueError("score feedback needs a name (the metric the score measures)")
    elif not text:  # correction, comment
        raise ValueError(f"{kind} feedback needs a non-empty text")
    return value


_NON_EMPTY = {"type": "string", "minLength": 1}
# ``feedback_value`` as JSON Schema, one branch per kind, so the OpenAPI says what each kind needs.
_VALUE_PER_KIND: dict[str, Any] = {
    "oneOf": [
        {"properties": {"kind": {"const": "thumbs"}, "value": {"enum": [True, False, 1, -1]}}, "required": ["value"]},
        {
            "properties": {"kind": {"const": "rating"}, "value": {"type": "number", "minimum": 1, "maximum": 5}},
            "required": ["value"],
        },
        {"properties": {"kind": {"const": "label"}, "value": {"type": ["string", "number"]}}, "required": ["value"]},
        {
            "properties": {"kind": {"const": "score"}, "value": {"type": "number"}, "name": _NON_EMPTY},
            "required": ["value", "name"],
        },
        {"properties": {"kind": {"enum": ["correction", "comment"]}, "text": _NON_EMPTY}, "required": ["text"]},
    ]
}


class FeedbackEvent(StrictModel):
    """Judgement on one inference, often hours late. ``value``'s meaning depends on ``kind``:

    thumbs: +1 / -1 (true/false accepted); rating: 1-5; label: the true label (string or number);
    score: a float with a ``name`` (an evaluator's metric); correction: ``text`` is the corrected
    response; comment: ``text`` is the comment.
    """

    model_config = ConfigDict(json_schema_extra=_VALUE_PER_KIND)

    feedback_id: EventId = Field(default_factory=new_id)
    project: ProjectName
    inference_id: EventId
    timestamp: EventTime = Field(default_factory=utc_now, description=TIMESTAMP_DOC)
    kind: FeedbackKind
    value: bool | int | FiniteFloat | Annotated[str, StringConstraints(max_length=limits.MAX_NAME_LENGTH)] | None = None
    name: OptionalName = None
    text: Annotated[str, StringConstraints(max_length=limits.MAX_FEEDBACK_TEXT_CHARS)] | None = None
    source: FeedbackSource = FeedbackSource.USER
    user_id: OptionalName = None

    @model_validator(mode="after")
    def _value_fits_kind(self) -> FeedbackEvent:
        value = feedback_value(self.kind, self.value, self.name, self.text)
        if value is not self.value:
            object.__setattr__(self, "value", value)
        return self
