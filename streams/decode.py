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
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.events import DeadLetter, FeedbackEvent, InferenceEvent
from schemas.records import (
    FeedbackDecoder,
    FeedbackRecord,
    InferenceDecoder,
    InferenceRecord,
    RecordDecoder,
    feedback_record,
    inference_record,
)

MAX_DEAD_PAYLOAD_CHARS = 16_000
MAX_DEAD_ERROR_CHARS = 4_000  # a dead letter stays one small Kafka message, whatever the reason

E = TypeVar("E", bound=BaseModel)
R = TypeVar("R", InferenceRecord, FeedbackRecord)


@dataclass(slots=True)
class Decoded(Generic[R]):
    events: list[R] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def describe(error: ValidationError, *, index: int | None = None) -> str:
    """One line per problem, naming the field path, e.g. ``[3].latency_ms: Input should be >= 0``."""
    problems = []
    for item in error.errors(include_url=False, include_context=False):
        loc = list(item["loc"])
        prefix = f"[{index}]" if index is not None else ""
        path = ".".join(str(part) for part in loc if not isinstance(part, int) or part != index)
        problems.append(f"{prefix}{'.' if prefix and path else ''}{path}: {item['msg']}")
    return "; ".join(problems)


def _truncate(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:MAX_DEAD_PAYLOAD_CHARS]


class EventDecoder(Generic[E, R]):
    """Decodes envelopes of one event type into records."""

    def __init__(
        self,
        model: type[E],
        fast: RecordDecoder[R],
        to_record: Callable[[E], R],
        source: str,
        *,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._one: TypeAdapter[E] = TypeAdapter(model)
        self._fast: RecordDecoder[R] = fast
        self._to_record: Callable[[E], R] = to_record
        self._source = source
        self._max_bytes = max_bytes

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
        records = self._fast.decode(raw)
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
            self._validate_item(item, index if isinstance(parsed, list) else None, out)
        return out

    def _validate_item(self, item: Any, index: int | None, out: Decoded[R]) -> None:
        try:
            out.events.append(self._to_record(self._one.validate_python(item)))
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


def inference_decoder(source: str = "inference", **kwargs: Any) -> EventDecoder[InferenceEvent, InferenceRecord]:
    return EventDecoder(InferenceEvent, InferenceDecoder(), inference_record, source, **kwargs)


def feedback_decoder(source: str = "feedback", **kwargs: Any) -> EventDecoder[FeedbackEvent, FeedbackRecord]:
    return EventDecoder(FeedbackEvent, FeedbackDecoder(), feedback_record, source, **kwargs)
