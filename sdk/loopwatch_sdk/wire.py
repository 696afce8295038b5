"""The Kafka wire format, for both ends: topic names, message keys and batched JSON envelopes.

One message carries a JSON array of events of one kind: faust's per-message overhead caps a worker at a
few thousand messages per second, so producers (apps through the SDK, the API in distributed mode) pack
events into messages bounded in count and bytes, and the worker validates a whole envelope in one
decoding pass. Inference envelopes hold one (project, model), so the message key ``project/model``
routes every event of a model to one partition, and so to one worker's windows.

The SDK serialises pydantic events and the server msgspec records, to the same JSON; each event is
serialised on its own first, so a body can be cut at any event boundary with its size known exactly.
The body is then byte-for-byte the JSON array of the events, which is what the worker and the API decode.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal, Protocol, TypeVar

Kind = Literal["inference", "feedback"]


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one deployment. One prefix (``LOOPWATCH_TOPIC_PREFIX``) so several can share a cluster."""

    prefix: str = "loopwatch"

    @property
    def inference(self) -> str:
        return f"{self.prefix}.inference"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}.feedback"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def retrain(self) -> str:
        return f"{self.prefix}.retrain"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def all(self) -> tuple[str, ...]:
        return (self.inference, self.feedback, self.alerts, self.retrain, self.dlq)


def model_key(project: str, model: str) -> str:
    """The message key of everything about one model (inferences, alerts, retrain requests)."""
    return f"{project}/{model}"


def project_key(project: str) -> str:
    """The message key of feedback, which does not name its model (the join happens later)."""
    return project


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message: a JSON array of ``count`` events of one kind sharing one key."""

    kind: Kind
    key: str
    body: bytes
    count: int


class ModelEvent(Protocol):
    """An inference as either end holds it (the SDK's pydantic model, the server's msgspec record)."""

    @property
    def project(self) -> str: ...

    @property
    def model(self) -> str: ...


class ProjectEvent(Protocol):
    """Feedback as either end holds it."""

    @property
    def project(self) -> str: ...


M = TypeVar("M", bound=ModelEvent)
P = TypeVar("P", bound=ProjectEvent)


def pack(items: Sequence[bytes], *, max_events: int, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Join serialised events into ``[a,b,…]`` bodies of at most ``max_events`` and ``max_bytes``.

    An event that alone exceeds ``max_bytes`` still goes out on its own: the transport decides whether
    the receiver takes it, and the failure is counted there rather than silently here. The cuts are
    found by bisecting running sizes (C loops), not by a Python step per event: the API's publisher
    packs every event it accepts in distributed mode.
    """
    # ends[i]: the size of items[:i] with one comma (or closing bracket) each, so the body of
    # items[start:stop] is ends[stop] - ends[start] + 1 bytes (its opening bracket).
    ends = [0, *accumulate(len(item) + 1 for item in items)]
    start = 0
    while start < len(items):
        fits = bisect_right(ends, ends[start] + max_bytes - 1, lo=start + 1) - 1
        stop = max(min(fits, start + max_events), start + 1)
        yield b"[" + b",".join(items[start:stop]) + b"]", stop - start
        start = stop


def inference_envelopes(
    events: Iterable[M], encode: Callable[[M], bytes], *, max_events: int, max_bytes: int
) -> Iterator[Envelope]:
    """Inference messages keyed ``project/model``: one key per message, so a model stays on one partition."""
    groups: dict[tuple[str, str], list[M]] = {}
    for event in events:
        groups.setdefault((event.project, event.model), []).append(event)
    for (project, model), group in groups.items():
        key = model_key(project, model)
        for body, count in pack(list(map(encode, group)), max_events=max_events, max_bytes=max_bytes):
            yield Envelope("inference", key, body, count)


def feedback_envelopes(
    events: Iterable[P], encode: Callable[[P], bytes], *, max_events: int, max_bytes: int
) -> Iterator[Envelope]:
    """Feedback messages keyed by project."""
    groups: dict[str, list[P]] = {}
    for event in events:
        groups.setdefault(event.project, []).append(event)
    for project, group in groups.items():
        key = project_key(project)
        for body, count in pack(list(map(encode, group)), max_events=max_events, max_bytes=max_bytes):
            yield Envelope("feedback", key, body, count)
