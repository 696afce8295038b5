"""The ClickHouse sink: buffer validated events per table, write each buffer as one insert.

Shape borrowed from quix-streams' sinks: ``add`` is cheap and in memory, ``flush`` does the I/O. A
buffer is cleared only after its insert succeeded, so a failed flush can be retried (embedded mode) or
the offsets stay uncommitted and Kafka redelivers (distributed mode); event ids make both harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import structlog
from pydantic import TypeAdapter

from schemas.events import DeadLetter, FeedbackEvent, InferenceEvent
from streams.storage import Storage

log = structlog.get_logger(__name__)

_INFERENCES: TypeAdapter[list[InferenceEvent]] = TypeAdapter(list[InferenceEvent])
_DEAD: TypeAdapter[list[DeadLetter]] = TypeAdapter(list[DeadLetter])


def feedback_rows_json(events: Sequence[FeedbackEvent]) -> bytes:
    """Feedback rows: ``value`` split into a number column and a label column for cheap aggregates."""
    rows = [
        {
            "project": event.project,
            "feedback_id": event.feedback_id,
            "inference_id": event.inference_id,
            "timestamp": event.timestamp.isoformat(),
            "kind": event.kind.value,
            "value": event.numeric_value,
            "label": event.label_value,
            "name": event.name or "",
            "text": event.text or "",
            "source": event.source.value,
            "user_id": event.user_id or "",
        }
        for event in events
    ]
    return orjson.dumps(rows)


@dataclass(frozen=True, slots=True)
class FlushStats:
    inferences: int = 0
    feedback: int = 0
    dead_letters: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.inferences + self.feedback + self.dead_letters


class EventSink:
    """Buffers for the raw-event tables; thread-safe so the API and processors can share one."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._inferences: list[InferenceEvent] = []
        self._feedback: list[FeedbackEvent] = []
        self._dead: list[DeadLetter] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._inferences) + len(self._feedback) + len(self._dead)

    def add_inferences(self, events: Sequence[InferenceEvent]) -> None:
        with self._lock:
            self._inferences.extend(events)

    def add_feedback(self, events: Sequence[FeedbackEvent]) -> None:
        with self._lock:
            self._feedback.extend(events)

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self._dead.extend(letters)

    def flush(self) -> FlushStats:
        """Write every buffer. On error the unwritten buffers are kept and the error propagates."""
        with self._flush_lock:
            started = time.perf_counter()
            with self._lock:
                inferences, feedback, dead = self._inferences, self._feedback, self._dead
                self._inferences, self._feedback, self._dead = [], [], []
            try:
                if inferences:
                    self._storage.insert_json("inferences", _INFERENCES.dump_json(inferences))
                    inferences_done, inferences = len(inferences), []
                else:
                    inferences_done = 0
                if feedback:
                    self._storage.insert_json("feedback", feedback_rows_json(feedback))
                    feedback_done, feedback = len(feedback), []
                else:
                    feedback_done = 0
                if dead:
                    self._storage.insert_json("dead_letters", _DEAD.dump_json(dead))
                    dead_done, dead = len(dead), []
                else:
                    dead_done = 0
            finally:
                if inferences or feedback or dead:  # put back what was not written, in front
                    with self._lock:
                        self._inferences[:0] = inferences
                        self._feedback[:0] = feedback
                        self._dead[:0] = dead
            stats = FlushStats(inferences_done, feedback_done, dead_done, time.perf_counter() - started)
            if stats.total:
                log.debug(
                    "sink_flushed",
                    inferences=stats.inferences,
                    feedback=stats.feedback,
                    dead_letters=stats.dead_letters,
                    seconds=round(stats.seconds, 4),
                )
            return stats
