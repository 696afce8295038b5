"""Where accepted events go next: an in-process queue (embedded mode) or Kafka (distributed mode).

The API only knows ``Publisher``; which transport sits behind it is a deployment choice, like an httpx
transport. Both keep the same promise: when ``publish`` returns, the events are durable — Kafka has
them (``acks=all``), or ClickHouse has written them (embedded mode's default, ``ingest_ack="written"``).
Embedded mode can opt out (``ingest_ack="queued"``): ``publish`` then returns once the events are in
the queue, which is faster per request but loses them if the process dies before the next flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from schemas.records import FeedbackRecord, InferenceRecord
from streams.storage import StorageError

Kind = Literal["inference", "feedback"]


class NotWrittenYet(StorageError):
    """The events were accepted but not written within ``ack_timeout_seconds``: they may still be
    written (or lost, if the process dies), so the client must resend; ids make that harmless."""


class EventsRefused(Exception):
    """Storage refused some of a request's events for their content (``reasons``: event id → error).

    They are dead letters now and the request's other events are stored; sending the same events
    again would be refused again, so this is the client's error, not an outage to retry."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)
        event_id, reason = next(iter(self.reasons.items()))
        super().__init__(f"{len(self.reasons)} event(s) refused by storage, first {event_id!r}: {reason}")


class Publisher(Protocol):
    """Accepts validated events for processing. Awaiting ``publish`` applies backpressure and, once it
    returns, the events are durable (see the module docstring for the embedded opt-out)."""

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None: ...

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    """A batch of events of one kind; ``written`` (if any) resolves once they are in ClickHouse."""

    kind: Kind
    events: Sequence[InferenceRecord] | Sequence[FeedbackRecord]
    written: asyncio.Future[None] | None = None


class InProcessBus:
    """A bounded asyncio queue of event batches; full queue = the publisher waits (backpressure).

    With ``wait_for_write`` the publisher also waits for the group commit that writes its batch (the
    embedded runner resolves ``Envelope.written`` after the flush), up to ``ack_timeout`` seconds.
    """

    def __init__(self, max_batches: int = 256, *, wait_for_write: bool = True, ack_timeout: float = 30.0) -> None:
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=max_batches)
        self._wait_for_write = wait_for_write
        self._ack_timeout = ack_timeout

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None:
        await self._publish("inference", events)

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        await self._publish("feedback", events)

    async def _publish(self, kind: Kind, events: Sequence[InferenceRecord] | Sequence[FeedbackRecord]) -> None:
        if not events:
            return
        if not self._wait_for_write:
            await self.queue.put(Envelope(kind, events))
            return
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put(Envelope(kind, events, written))
        try:  # shield: a client that hangs up must not cancel the write others share
            await asyncio.wait_for(asyncio.shield(written), self._ack_timeout)
        except TimeoutError as exc:
            raise NotWrittenYet(f"{len(events)} events not written within {self._ack_timeout:g} s") from exc
