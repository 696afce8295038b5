"""The ClickHouse sink: buffer validated events per table, write each buffer as one insert.

Shape borrowed from quix-streams' sinks: ``add`` is cheap and in memory, ``flush`` does the I/O. A
buffer is cleared only after its insert succeeded, so a failed flush can be retried (embedded mode) or
the offsets stay uncommitted and Kafka redelivers (distributed mode); event ids make both harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import structlog
from pydantic import TypeAdapter

from schemas.events import DeadLetter
from schemas.records import FeedbackRecord, InferenceRecord, encode_records
from streams import metrics
from streams.storage import Storage

log = structlog.get_logger(__name__)

_DEAD: TypeAdapter[list[DeadLetter]] = TypeAdapter(list[DeadLetter])


def feedback_rows_json(events: Sequence[FeedbackRecord]) -> bytes:
    """Feedback rows: ``value`` split into a number column and a label column for cheap aggregates."""
    rows = [
        {
            "project": event.project,
            "feedback_id": event.feedback_id,
            "inference_id": event.inference_id,
            "timestamp": event.timestamp.isoformat(),
            "kind": event.kind,
            "value": event.numeric_value,
            "label": event.label_value,
            "name": event.name or "",
            "text": event.text or "",
            "source": event.source,
            "user_id": event.user_id or "",
        }
        for event in events
    ]
    return orjson.dumps(rows)


@dataclass(frozen=True, slots=True)
class FlushStats:
    """What a flush wrote. The records themselves feed the window bookkeeping: windows must only
    see events that are stored."""

    written_inferences: Sequence[InferenceRecord] = field(default=(), repr=False)
    written_feedback: Sequence[FeedbackRecord] = field(default=(), repr=False)
    dead_letters: int = 0
    seconds: float = 0.0
    # the tokens handed to ``add_*`` with events this flush wrote (every one of their events is stored)
    acks: Sequence[object] = field(default=(), repr=False)

    @property
    def inferences(self) -> int:
        return len(self.written_inferences)

    @property
    def feedback(self) -> int:
        return len(self.written_feedback)

    @property
    def total(self) -> int:
        return self.inferences + self.feedback + self.dead_letters


class EventSink:
    """Buffers for the raw-event tables; thread-safe so the API and processors can share one.

    A caller that must know when its events are stored (the embedded runner's durable 202) passes an
    ack token with them: it is taken out together with the events, under the same lock, and comes back
    in the ``FlushStats.acks`` of the flush that wrote all of them (or is put back with them on failure).
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._inferences: list[InferenceRecord] = []
        self._feedback: list[FeedbackRecord] = []
        self._dead: list[DeadLetter] = []
        self._acks: list[object] = []
        self._since: float | None = None  # when the oldest buffered event came (time.monotonic)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._unreported: tuple[list[InferenceRecord], list[FeedbackRecord]] = ([], [])

    @property
    def pending(self) -> int:
        return len(self._inferences) + len(self._feedback) + len(self._dead)

    @property
    def waiting(self) -> bool:
        """True while a buffered event's ack token waits for its write."""
        return bool(self._acks)

    def pending_for(self, now: float) -> float:
        """Seconds the oldest buffered event has waited (0 when nothing is buffered)."""
        since = self._since
        return 0.0 if since is None else now - since

    def add_inferences(self, events: Sequence[InferenceRecord], ack: object | None = None) -> None:
        with self._lock:
            self._inferences.extend(events)
            self._added(ack)

    def add_feedback(self, events: Sequence[FeedbackRecord], ack: object | None = None) -> None:
        with self._lock:
            self._feedback.extend(events)
            self._added(ack)

    def _added(self, ack: object | None) -> None:
        if self._since is None:
            self._since = time.monotonic()
        if ack is not None:
            self._acks.append(ack)

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self._dead.extend(letters)
            self._added(None)

    def flush(self) -> FlushStats:
        """Write every buffer. On error the unwritten buffers are kept and the error propagates."""
        with self._flush_lock:
            started = time.perf_counter()
            with self._lock:
                inferences, feedback, dead, acks = self._inferences, self._feedback, self._dead, self._acks
                self._inferences, self._feedback, self._dead, self._acks = [], [], [], []
                since, self._since = self._since, None
            # written by an earlier flush that then failed on another table: reported now
            written_inferences, written_feedback = self._unreported
            self._unreported = ([], [])
            dead_done = 0
            try:
                if inferences:
                    self._storage.insert_json("inferences", encode_records(inferences))
                    written_inferences, inferences = written_inferences + inferences, []
                if feedback:
                    self._storage.insert_json("feedback", feedback_rows_json(feedback))
                    written_feedback, feedback = written_feedback + feedback, []
                if dead:
                    self._storage.insert_json("dead_letters", _DEAD.dump_json(dead))
                    dead_done, dead = len(dead), []
            except BaseException:
                metrics.flush_failed()
                self._unreported = (written_inferences, written_feedback)
                raise
            finally:
                if inferences or feedback or dead:  # put back what was not written, in front
                    with self._lock:
                        self._inferences[:0] = inferences
                        self._feedback[:0] = feedback
                        self._dead[:0] = dead
                        self._acks[:0] = acks  # settled only once all of their events are written
                        if since is not None:
                            self._since = since if self._since is None else min(since, self._since)
                    acks = []
            stats = FlushStats(written_inferences, written_feedback, dead_done, time.perf_counter() - started, acks)
            metrics.flushed(stats)
            if stats.total:
                log.debug(
                    "sink_flushed",
                    inferences=stats.inferences,
                    feedback=stats.feedback,
                    dead_letters=stats.dead_letters,
                    seconds=round(stats.seconds, 4),
                )
            return stats
