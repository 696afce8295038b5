"""Bytes → records, with every bad item turned into a dead letter instead of an exception.

A message may hold one event or a JSON array of events (the batched envelope the SDK and the API
produce). The fast path decodes the whole envelope with msgspec (``schemas.records``); an envelope it
cannot take is validated item by item with the pydantic contract, so one bad event never costs the
good ones around it and each dead letter says exactly what was wrong.

``EventDecoder.decode`` is total: any bytes (none at all, a tombstone, invalid UTF-8, nesting past the
parser's depth, numbers past 64 bits) give events or dead letters, and an exception nobody foresaw
becomes a dead letter naming it, so one message can neither vanish nor stop the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.events import EVENT_TIME, DeadLetter, EventTimeRules, FeedbackEvent, InferenceEvent, utc_now
from schemas.problems import problem_lines
from schemas.records import (
    FeedbackDecoder,
    FeedbackRecord,
    InferenceDecoder,
    InferenceRecord,
    RecordDecoder,
    feedback_record,
    inference_record,
)
from schemas.settings import Settings
from streams.bus import Kind

MAX_DEAD_PAYLOAD_CHARS = 16_000
MAX_DEAD_ERROR_CHARS = 4_000  # a dead letter stays one small Kafka message, whatever the reason

E = TypeVar("E", bound=BaseModel)
R = TypeVar("R", InferenceRecord, FeedbackRecord)


@dataclass(frozen=True, slots=True)
class EventTimePolicy:
    """The settings' event-time rules (``LOOPWATCH_MAX_FUTURE_SKEW_SECONDS``, ``_NAIVE_TIMESTAMPS``);
    ``rules()`` fixes them at the present moment for one request or message."""

    max_future: timedelta = timedelta(minutes=5)
    naive_utc: bool = True

    @classmethod
    def of(cls, settings: Settings) -> EventTimePolicy:
        return cls(timedelta(seconds=settings.max_future_skew_seconds), settings.naive_timestamps == "utc")

    def rules(self) -> EventTimeRules:
        return EventTimeRules(now=utc_now(), max_future=self.max_future, naive_utc=self.naive_utc)


@dataclass(frozen=True, slots=True)
class EventKind(Generic[E, R]):
    """One kind of event, as every ingest path decodes it: the msgspec fast path first, the pydantic
    contract when the fast path gives up (coercions, or to name each problem).

    HTTP ingest (``api.routes.ingest``: a batch is accepted or refused whole, with a 4xx) and the
    Kafka/embedded pipeline (``EventDecoder``: bad items become dead letters) both decode through it.
    """

    name: Kind
    model: type[E]
    fast: RecordDecoder[R]
    to_record: Callable[[E], R]
    id_field: str  # the idempotency key of this kind's events
    adapter: TypeAdapter[E] = field(init=False, repr=False)
    many: TypeAdapter[list[E]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", TypeAdapter(self.model))
        object.__setattr__(self, "many", TypeAdapter(list[self.model]))  # type: ignore[name-defined]

    def validate(self, item: Any, rules: EventTimeRules | None = None) -> R:
        """One parsed item through the contract; raises ``ValidationError`` naming each problem.
        ``rules``: the server's event-time rules (none: any storable time, naive = UTC)."""
        return self.to_record(self.adapter.validate_python(item, context={EVENT_TIME: rules}))

    def validate_all(self, items: list[Any], rules: EventTimeRules | None = None) -> list[R]:
        """All items or a ``ValidationError`` whose locations carry each bad item's index."""
        return [self.to_record(event) for event in self.many.validate_python(items, context={EVENT_TIME: rules})]


INFERENCES: EventKind[InferenceEvent, InferenceRecord] = EventKind(
    "inference", InferenceEvent, InferenceDecoder(), inference_record, "event_id"
)
FEEDBACK: EventKind[FeedbackEvent, FeedbackRecord] = EventKind(
    "feedback", FeedbackEvent, FeedbackDecoder(), feedback_record, "feedback_id"
)


@dataclass(slots=True)
class Decoded(Generic[R]):
    events: list[R] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def describe(error: ValidationError, *, index: int | None = None) -> str:
    """One line per problem, naming the field path, e.g. ``[3].latency_ms: Input should be >= 0``
    (``index``: the item's place in the batch)."""
    return "; ".join(problem_lines(error, [] if index is None else [index]))


def _truncate(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:MAX_DEAD_PAYLOAD_CHARS]


class EventDecoder(Generic[E, R]):
    """Decodes envelopes of one event kind into records; every bad item becomes a dead letter."""

    def __init__(
        self,
        kind: EventKind[E, R],
        *,
        source: str | None = None,
        max_bytes: int = 16 * 1024 * 1024,
        times: EventTimePolicy | None = None,
    ) -> None:
        self._kind: EventKind[E, R] = kind
        self._source = source or kind.name
        self._max_bytes = max_bytes
        self._times = times  # None: any storable time (the contract alone)

    def decode(self, raw: bytes) -> Decoded[R]:
        """Events and dead letters for one message; never raises."""
        if not raw:
            return Decoded(dead_letters=[self._dead("empty message (no value, e.g. a tombstone)", b"")])
        try:
            return self._decode(raw)
        except Exception as exc:  # a bug or an input nobody foresaw: this message alone is set aside
            return Decoded(dead_letters=[unexpected_letter(self._source, exc, raw)])

    def _decode(self, raw: bytes) -> Decoded[R]:
        out: Decoded[R] = Decoded()
        if len(raw) > self._max_bytes:
            out.dead_letters.append(self._dead(f"message of {len(raw)} bytes exceeds {self._max_bytes}", raw))
            return out
        rules = self._times.rules() if self._times is not None else None
        records = self._kind.fast.decode(raw, rules)
        if records and all(record.project for record in records):  # no API key fills it in here
            out.events = records
            return out
        try:  # the slow path: pydantic decides, item by item, and names each problem
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            out.dead_letters.append(self._dead(f"invalid JSON: {exc}", raw))
            return out
        if parsed == []:
            out.dead_letters.append(self._dead("empty list: no events", raw))
            return out
        items = parsed if isinstance(parsed, list) else [parsed]
        for index, item in enumerate(items):
            self._validate_item(item, index if isinstance(parsed, list) else None, out, rules)
        return out

    def _validate_item(self, item: Any, index: int | None, out: Decoded[R], rules: EventTimeRules | None) -> None:
        try:
            out.events.append(self._kind.validate(item, rules))
        except ValidationError as exc:
            project = item.get("project", "") if isinstance(item, dict) else ""
            out.dead_letters.append(
                self._dead(describe(exc, index=index), orjson.dumps(item), project=str(project)[:64])
            )

    def _dead(self, error: str, raw: bytes, project: str = "") -> DeadLetter:
        return dead_letter(self._source, error, raw, project)


def dead_letter(source: str, error: str, raw: bytes, project: str = "") -> DeadLetter:
    """A dead letter with its reason and payload cut to size."""
    return DeadLetter(source=source, error=error[:MAX_DEAD_ERROR_CHARS], payload=_truncate(raw), project=project)


def unexpected_letter(source: str, exc: Exception, raw: bytes) -> DeadLetter:
    """The dead letter of a message whose processing raised: the exception is the reason."""
    return dead_letter(source, f"unexpected error: {type(exc).__name__}: {exc}", raw)


# What the workers decode from Kafka: as ``INFERENCES`` / ``FEEDBACK``, and the ``pii`` counts the API publishes with
# its events are taken (the pipeline keeps them only from the API, see ``streams.privacy``).
INFERENCES_FROM_KAFKA: EventKind[InferenceEvent, InferenceRecord] = EventKind(
    "inference", InferenceEvent, InferenceDecoder(server_fields=True), inference_record, "event_id"
)


FEEDBACK_FROM_KAFKA: EventKind[FeedbackEvent, FeedbackRecord] = EventKind(
    "feedback", FeedbackEvent, FeedbackDecoder(server_fields=True), feedback_record, "feedback_id"
)


def inference_decoder(
    *, max_bytes: int = 16 * 1024 * 1024, times: EventTimePolicy | None = None
) -> EventDecoder[InferenceEvent, InferenceRecord]:
    return EventDecoder(INFERENCES_FROM_KAFKA, max_bytes=max_bytes, times=times)


def feedback_decoder(
    *, max_bytes: int = 16 * 1024 * 1024, times: EventTimePolicy | None = None
) -> EventDecoder[FeedbackEvent, FeedbackRecord]:
    return EventDecoder(FEEDBACK_FROM_KAFKA, max_bytes=max_bytes, times=times)
