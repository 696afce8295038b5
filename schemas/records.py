"""Events as the pipeline carries them: msgspec structs decoded straight from JSON bytes.

The pydantic models in ``schemas.events`` are the contract: OpenAPI, the SDK and every error message
come from them. Validating through them costs ~7 µs an event, which on its own caps one core below
the ingest targets, so the hot paths (HTTP ingest, Kafka envelopes) decode into these structs instead
(~2 µs) and the pipeline, the sink and the envelopes work on them.

The rule that keeps two definitions honest: ``RecordDecoder.decode`` either returns exactly what the
pydantic model would have produced, or ``None`` (a miss) and the caller validates with pydantic, which
then accepts (a coercion the structs do not do, e.g. ``"34"`` for an int or unix-time timestamps, or
text to truncate) or names the problem. The structs are stricter, never laxer; a property test checks
this on generated input (``tests/schemas/test_records.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import GenericAlias
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas import limits
from schemas.events import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    EventTimeRules,
    FeedbackEvent,
    InferenceEvent,
    feedback_label,
    feedback_number,
    feedback_value,
    new_id,
    to_utc,
)

# Same limits as schemas.events. msgspec patterns use re.search, where "$" also matches before a
# trailing newline (pydantic's "$" does not), hence "\Z".
EventId = Annotated[str, Meta(min_length=1, max_length=limits.MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9._:\-]+\Z")]
ProjectName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*\Z")]
Name = Annotated[str, Meta(min_length=1, max_length=limits.MAX_NAME_LENGTH)]
OptionalName = Annotated[str, Meta(max_length=limits.MAX_NAME_LENGTH)] | None
Text = Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)] | None  # longer: a miss (pydantic truncates)
NonNegative = Annotated[float, Meta(ge=0)] | None
TokenCount = Annotated[int, Meta(ge=0, le=limits.MAX_TOKENS)] | None
# Past 64 bits a number is the slow path's to decide (orjson reads it as a float, or fails): unbounded
# here, it would reach ``float()`` when a feedback row is written (OverflowError) and stop every flush
# of its batch. msgspec bounds must fit in an int64.
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
FeatureValue = bool | Int64 | float | Annotated[str, Meta(max_length=limits.MAX_FEATURE_STRING_LENGTH)] | None
Features = Annotated[
    dict[Annotated[str, Meta(min_length=1, max_length=limits.MAX_FEATURE_NAME_LENGTH)], FeatureValue],
    Meta(max_length=limits.MAX_FEATURES),
]
Probabilities = Annotated[dict[str, float], Meta(max_length=limits.MAX_PROBABILITIES)] | None
Embedding = Annotated[list[float], Meta(min_length=1, max_length=limits.MAX_EMBEDDING_DIM)] | None
Tags = Annotated[
    dict[
        Annotated[str, Meta(min_length=1, max_length=limits.MAX_TAG_KEY_LENGTH)],
        Annotated[str, Meta(max_length=limits.MAX_TAG_VALUE_LENGTH)],
    ],
    Meta(max_length=limits.MAX_TAGS),
]
FeedbackKindName = Literal["thumbs", "rating", "label", "score", "correction", "comment"]
FeedbackSourceName = Literal["user", "annotator", "evaluator", "system"]

# "Not in the message": filled after decoding (the pydantic models use default factories). Compared by
# identity, so a sent value can never be mistaken for it; an explicit "" or null fails validation.
_NO_TIME = datetime(1, 1, 1)


class _Record(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Mutable on purpose: enrichment fills ``cost_usd`` in place instead of copying the event."""


class InferenceRecord(_Record, kw_only=True):
    event_id: EventId = ""
    project: ProjectName = ""  # "" = not given: the API fills in its key's project; Kafka rejects it
    model: Name
    model_version: OptionalName = None
    provider: OptionalName = None
    timestamp: datetime = _NO_TIME
    latency_ms: NonNegative = None
    status: Literal["ok", "error"] = "ok"
    error_type: OptionalName = None
    input_tokens: TokenCount = None
    output_tokens: TokenCount = None
    cached_tokens: TokenCount = None
    cost_usd: NonNegative = None
    prompt: Text = None
    response: Text = None
    features: Features = msgspec.field(default_factory=dict)
    prediction: FeatureValue = None
    probabilities: Probabilities = None
    embedding: Embedding = None
    tags: Tags = msgspec.field(default_factory=dict)
    # Set by the server's redaction, never by a sender (``SERVER_FIELDS``): entities found per scanned
    # field (``"response": 2``, 0 when scanned and clean) and per field and kind (``"response.EMAIL": 1``);
    # UNSET when redaction is off, and then left out of the JSON, so an envelope item has the contract's
    # shape exactly (the bytes the SDK sends). None only decoded from envelopes published before that
    # (``"pii":null``): it means UNSET. Counts only, no values: they are not personal data.
    pii: dict[str, int] | UnsetType | None = UNSET


# Fields of a record the server fills in, which the contract (``schemas.events``) does not have: what a
# sender puts there is replaced (``streams.privacy.Privacy.inferences``) before anything is stored.
SERVER_FIELDS: frozenset[str] = frozenset({"pii"})
# Feedback kinds whose text redaction counts, each as a field of the privacy statistics
FEEDBACK_TEXT_FIELDS: tuple[str, ...] = ("correction", "comment")


class FeedbackRecord(_Record, kw_only=True):
    feedback_id: EventId = ""
    project: ProjectName = ""
    inference_id: EventId
    timestamp: datetime = _NO_TIME
    kind: FeedbackKindName
    value: bool | Int64 | float | Annotated[str, Meta(max_length=limits.MAX_NAME_LENGTH)] | None = None
    name: OptionalName = None
    text: Annotated[str, Meta(max_length=limits.MAX_FEEDBACK_TEXT_CHARS)] | None = None
    source: FeedbackSourceName = "user"
    user_id: OptionalName = None
    # Set by the server's redaction, as ``InferenceRecord.pii``: what it found in a correction's or a
    # comment's text, under the feedback's kind (``"correction": 1``, ``"correction.EMAIL": 1``).
    pii: dict[str, int] | UnsetType | None = UNSET

    @property
    def numeric_value(self) -> float | None:
        return feedback_number(self.value)

    @property
    def label_value(self) -> str:
        return feedback_label(self.kind, self.value)


R = TypeVar("R", InferenceRecord, FeedbackRecord)

_ENCODER = msgspec.json.Encoder()


def encode_records(records: list[InferenceRecord] | list[FeedbackRecord]) -> bytes:
    """A JSON array of records (JSONEachRow inserts): the pydantic models' JSON shape."""
    return _ENCODER.encode(records)


def encode_record(record: InferenceRecord | FeedbackRecord) -> bytes:
    """One record as JSON, the pydantic model's shape: an item of a Kafka envelope (``loopwatch_sdk.wire``)."""
    return _ENCODER.encode(record)


def _utc(value: datetime) -> datetime | None:
    """``value`` in UTC as ``schemas.events`` stores it, or None where pydantic would reject it."""
    try:
        return to_utc(value)
    except ValueError:
        return None


class RecordDecoder(Generic[R]):
    """JSON bytes (one object or an array) → records, or None when pydantic has to decide.

    ``server_fields``: take ``pii`` as sent (the workers' decoder of Kafka envelopes, which the API
    publishes with its counts; ``streams.privacy`` decides whether to keep them). Otherwise a record
    that sends it is a miss, and the contract refuses the field by name."""

    record: type[R]

    def __init__(self, *, server_fields: bool = False) -> None:
        # built at run time from the subclass's record type (a value to the type checker, not a type)
        self._decoder = msgspec.json.Decoder(GenericAlias(list, (self.record,)) | self.record)
        self._server_fields = server_fields

    def decode(self, raw: bytes, rules: EventTimeRules | None = None) -> list[R] | None:
        """``rules``: the server's event-time rules; an event they refuse is a miss (pydantic words it)."""
        try:
            decoded = self._decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            # ValidationError is a DecodeError; invalid UTF-8 inside a string is a UnicodeDecodeError
            return None
        records = decoded if isinstance(decoded, list) else [decoded]
        if rules is None:
            return records if self._finish(records, datetime.now(UTC), naive_utc=True) else None
        if not self._finish(records, rules.now, naive_utc=rules.naive_utc):
            return None
        latest = rules.latest
        return records if all(record.timestamp <= latest for record in records) else None

    def _finish(self, records: list[R], now: datetime, *, naive_utc: bool) -> bool:
        """Apply the pydantic model's defaults and after-validators; False = a miss."""
        raise NotImplementedError

    def _server_counts(self, record: InferenceRecord | FeedbackRecord) -> bool:
        """False when ``record`` carries ``pii`` it may not; an explicit null (envelopes from before
        counts were left out when unset) reads as UNSET."""
        if record.pii is not UNSET:
            if not self._server_fields:
                return False
            if record.pii is None:
                record.pii = UNSET
        return True

    @staticmethod
    def _timestamp(record: InferenceRecord | FeedbackRecord, now: datetime, naive_utc: bool) -> bool:
        stamp = record.timestamp
        if stamp is _NO_TIME:
            record.timestamp = now
        elif stamp.tzinfo is None and not naive_utc:
            return False
        elif stamp.tzinfo is not UTC or not EARLIEST_TIMESTAMP <= stamp < LATEST_TIMESTAMP:
            utc = _utc(stamp)
            if utc is None:
                return False
            record.timestamp = utc
        return True


class InferenceDecoder(RecordDecoder[InferenceRecord]):
    record = InferenceRecord

    def _finish(self, records: list[InferenceRecord], now: datetime, *, naive_utc: bool) -> bool:
        for record in records:
            if not self._server_counts(record):
                return False
            if not record.event_id:
                record.event_id = new_id()
            if not self._timestamp(record, now, naive_utc):
                return False
        return True


class FeedbackDecoder(RecordDecoder[FeedbackRecord]):
    record = FeedbackRecord

    def _finish(self, records: list[FeedbackRecord], now: datetime, *, naive_utc: bool) -> bool:
        for record in records:
            if not self._server_counts(record):
                return False
            if not record.feedback_id:
                record.feedback_id = new_id()
            if not self._timestamp(record, now, naive_utc):
                return False
            try:
                record.value = feedback_value(record.kind, record.value, record.name, record.text)
            except ValueError:
                return False
        return True


_INFERENCE_FIELDS = tuple(name for name in InferenceRecord.__struct_fields__ if name not in SERVER_FIELDS)
_FEEDBACK_FIELDS = tuple(name for name in FeedbackRecord.__struct_fields__ if name not in SERVER_FIELDS)


def inference_record(event: InferenceEvent) -> InferenceRecord:
    """The record of an event pydantic validated (the slow path and the SDK's in-process callers)."""
    return InferenceRecord(**{name: getattr(event, name) for name in _INFERENCE_FIELDS})


def feedback_record(event: FeedbackEvent) -> FeedbackRecord:
    values: dict[str, Any] = {name: getattr(event, name) for name in _FEEDBACK_FIELDS}
    values["kind"], values["source"] = event.kind.value, event.source.value
    return FeedbackRecord(**values)
