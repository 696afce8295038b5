"""Events → Kafka messages / HTTP bodies: JSON arrays grouped by key and split by count and size.

The body is byte-for-byte what ``TypeAdapter(list[Event]).dump_json(events)`` produces (the worker and
the API decode exactly that), but each event is serialised on its own first, so a body can be cut at
any event boundary with its size known exactly instead of re-serialising to measure it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from schemas.events import FeedbackEvent, InferenceEvent

Kind = Literal["inference", "feedback"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message: a JSON array of ``count`` events of one kind sharing one key."""

    kind: Kind
    key: str
    body: bytes
    count: int


def pack(items: Sequence[bytes], *, max_events: int, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Join serialised events into ``[a,b,…]`` bodies of at most ``max_events`` and ``max_bytes``.

    An event that alone exceeds ``max_bytes`` still goes out on its own: the transport decides whether
    the receiver takes it, and the failure is counted there rather than silently here.
    """
    start, size = 0, 2  # the brackets
    for index, item in enumerate(items):
        count = index - start
        extra = len(item) + (1 if count else 0)  # the comma
        if count and (count >= max_events or size + extra > max_bytes):
            yield b"[" + b",".join(items[start:index]) + b"]", count
            start, size, extra = index, 2, len(item)
        size += extra
    if start < len(items):
        yield b"[" + b",".join(items[start:]) + b"]", len(items) - start


def inference_envelopes(
    project: str, events: Iterable[InferenceEvent], *, max_events: int, max_bytes: int
) -> Iterator[Envelope]:
    """Inference messages keyed ``project/model``: one key per message, so a model stays on one partition."""
    by_model: dict[str, list[bytes]] = {}
    for event in events:
        by_model.setdefault(event.model, []).append(event.model_dump_json().encode())
    for model, items in by_model.items():
        key = f"{project}/{model}"
        for body, count in pack(items, max_events=max_events, max_bytes=max_bytes):
            yield Envelope("inference", key, body, count)


def feedback_envelopes(
    project: str, events: Iterable[FeedbackEvent], *, max_events: int, max_bytes: int
) -> Iterator[Envelope]:
    """Feedback messages keyed by project (feedback does not name its model; the join happens later)."""
    items = [event.model_dump_json().encode() for event in events]
    for body, count in pack(items, max_events=max_events, max_bytes=max_bytes):
        yield Envelope("feedback", project, body, count)
