"""Where accepted events go next: an in-process queue (embedded mode) or Kafka (distributed mode).

The API only knows ``Publisher``; which transport sits behind it is a deployment choice, like an httpx
transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from schemas.records import FeedbackRecord, InferenceRecord

Kind = Literal["inference", "feedback"]


class Publisher(Protocol):
    """Accepts validated events for processing. Awaiting ``publish`` applies backpressure."""

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None: ...

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: Kind
    events: Sequence[InferenceRecord] | Sequence[FeedbackRecord]


class InProcessBus:
    """A bounded asyncio queue of event batches; full queue = the publisher waits (backpressure)."""

    def __init__(self, max_batches: int = 256) -> None:
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=max_batches)

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None:
        if events:
            await self.queue.put(Envelope("inference", events))

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        if events:
            await self.queue.put(Envelope("feedback", events))
