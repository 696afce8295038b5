"""Batched envelopes: one Kafka message carries a JSON array of events.

faust's per-message overhead caps a worker at a few thousand messages per second, so the producers
(the API and the SDK) pack events into messages bounded in count and bytes; the worker validates a
whole envelope in one decoding pass. Inference envelopes hold one (project, model) so the message key
routes every event of a model to one partition, and so to one worker's windows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TypeVar

from schemas.records import FeedbackRecord, InferenceRecord, encode_records

R = TypeVar("R", InferenceRecord, FeedbackRecord)


def inference_key(project: str, model: str) -> bytes:
    return f"{project}/{model}".encode()


def feedback_key(project: str) -> bytes:
    return project.encode()


def _chunks(events: Sequence[R], max_events: int, max_bytes: int) -> Iterator[bytes]:
    start = 0
    while start < len(events):
        stop = min(start + max_events, len(events))
        body = encode_records(list(events[start:stop]))
        while len(body) > max_bytes and stop - start > 1:  # halve until it fits
            stop = start + (stop - start) // 2
            body = encode_records(list(events[start:stop]))
        yield body
        start = stop


def inference_envelopes(
    events: Sequence[InferenceRecord], max_events: int, max_bytes: int
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) per message, grouped by (project, model)."""
    groups: dict[tuple[str, str], list[InferenceRecord]] = defaultdict(list)
    for event in events:
        groups[(event.project, event.model)].append(event)
    for (project, model), group in groups.items():
        for body in _chunks(group, max_events, max_bytes):
            yield inference_key(project, model), body


def feedback_envelopes(
    events: Sequence[FeedbackRecord], max_events: int, max_bytes: int
) -> Iterator[tuple[bytes, bytes]]:
    groups: dict[str, list[FeedbackRecord]] = defaultdict(list)
    for event in events:
        groups[event.project].append(event)
    for project, group in groups.items():
        for body in _chunks(group, max_events, max_bytes):
            yield feedback_key(project), body
