"""The ClickHouse sink: buffer validated events per table, write each buffer as one insert (the
table's module under ``streams/storage/`` writes it; the sink decides batching only).

Shape borrowed from quix-streams' sinks: ``add`` is cheap and in memory, ``flush`` does the I/O. A
buffer is cleared only after its insert succeeded, so a failed flush can be retried (embedded mode) or
the offsets stay uncommitted and Kafka redelivers (distributed mode); event ids make both harmless.

An insert that ClickHouse refuses because of the data itself (``StorageRejectedError``: a value it
cannot store, a violated constraint) would fail again on every retry, so it is not retried whole: the
rows are halved until each refused row is alone, the rest is stored, and each refused row becomes a
dead letter carrying the storage error, written in the same flush.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from schemas.events import DeadLetter
from schemas.records import FeedbackRecord, InferenceRecord, encode_record
from streams import metrics
from streams.decode import dead_letter
from streams.storage import Storage, StorageRejectedError, dead_letters
from streams.storage import feedback as feedback_table
from streams.storage import inferences as inference_table

log = structlog.get_logger(__name__)

REFUSED = "refused by storage: "  # how a dead letter's error starts when ClickHouse refused the row
REFUSAL_INSERTS = 64  # inserts per table and flush spent on finding the rows storage refuses

Row = TypeVar("Row", InferenceRecord, FeedbackRecord, DeadLetter)


@dataclass(frozen=True, slots=True)
class Refused:
    """An ack token some of whose events storage refused (they are dead letters now; the others are
    stored): ``reasons`` maps each refused event's id to the storage error."""

    ack: object
    reasons: Mapping[str, str]


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
    # the dead letters of events storage refused (stored, and counted in ``dead_letters``), and the
    # tokens whose events include one of them (not in ``acks``)
    rejected: Sequence[DeadLetter] = field(default=(), repr=False)
    refused: Sequence[Refused] = field(default=(), repr=False)

    @property
    def inferences(self) -> int:
        return len(self.written_inferences)

    @property
    def feedback(self) -> int:
        return len(self.written_feedback)

    @property
    def total(self) -> int:
        return self.inferences + self.feedback + self.dead_letters


@dataclass(slots=True)
class _Unreported:
    """What a flush that then failed had already done: reported by the next flush that succeeds."""

    inferences: list[InferenceRecord] = field(default_factory=list)
    feedback: list[FeedbackRecord] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


class EventSink:
    """Buffers for the raw-event tables; thread-safe so the API and processors can share one.

    A caller that must know when its events are stored (the embedded runner's durable 202) passes an
    ack token with them: it is taken out together with the events, under the same lock, and comes back
    in the ``FlushStats.acks`` of the flush that wrote all of them (or is put back with them on failure),
    or in ``FlushStats.refused`` if storage refused one of them.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._inferences: list[InferenceRecord] = []
        self._feedback: list[FeedbackRecord] = []
        self._dead: list[DeadLetter] = []
        self._acks: list[tuple[object, Sequence[InferenceRecord] | Sequence[FeedbackRecord]]] = []
        self._since: float | None = None  # when the oldest buffered event came (time.monotonic)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._unreported = _Unreported()

    @property
    def pending(self) -> int:
        return len(self._inferences) + len(self._feedback) + len(self._dead)

    @property
    def pending_ingest(self) -> int:
        """Buffered calls and feedback, the evaluators' own scores left out (what ingest is made of)."""
        return len(self._inferences) + sum(1 for item in self._feedback if item.source != "evaluator")

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
            self._added(ack, events)

    def add_feedback(self, events: Sequence[FeedbackRecord], ack: object | None = None) -> None:
        with self._lock:
            self._feedback.extend(events)
            self._added(ack, events)

    def _added(self, ack: object | None, events: Sequence[InferenceRecord] | Sequence[FeedbackRecord]) -> None:
        if self._since is None:
            self._since = time.monotonic()
        if ack is not None:
            self._acks.append((ack, events))

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self._dead.extend(letters)
            self._added(None, ())

    def flush(self) -> FlushStats:
        """Write every buffer. On error the unwritten buffers are kept and the error propagates."""
        with self._flush_lock:
            started = time.perf_counter()
            with self._lock:
                inferences, feedback, dead, acks = self._inferences, self._feedback, self._dead, self._acks
                self._inferences, self._feedback, self._dead, self._acks = [], [], [], []
                since, self._since = self._since, None
            # done by an earlier flush that then failed on another table: reported now
            done, self._unreported = self._unreported, _Unreported()
            dead_done = 0
            try:
                if inferences:
                    refused = self._insert("inferences", inferences, inference_table.insert)
                    done.inferences += _without(inferences, refused)
                    inferences, acks = [], self._refuse("inference", refused, acks, done, dead)
                if feedback:
                    refused_feedback = self._insert("feedback", feedback, feedback_table.insert)
                    done.feedback += _without(feedback, refused_feedback)
                    feedback, acks = [], self._refuse("feedback", refused_feedback, acks, done, dead)
                if dead:
                    dead_done = len(dead) - len(self._insert_dead_letters(dead))
                    dead = []
            except BaseException:
                metrics.flush_failed()
                self._unreported = done
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
            stats = FlushStats(
                done.inferences,
                done.feedback,
                dead_done,
                time.perf_counter() - started,
                [ack for ack, _ in acks],
                done.rejected,
                done.refused,
            )
            metrics.flushed(stats)
            if stats.total:
                log.debug(
                    "sink_flushed",
                    inferences=stats.inferences,
                    feedback=stats.feedback,
                    dead_letters=stats.dead_letters,
                    refused=len(stats.rejected),
                    seconds=round(stats.seconds, 4),
                )
            return stats

    def _insert(
        self,
        table: str,
        rows: list[Row],
        insert: Callable[[Storage, list[Row]], None],
        budget: list[int] | None = None,
    ) -> list[tuple[Row, str]]:
        """Insert ``rows`` with the table module's ``insert`` (one insert); the rows storage refuses
        (found by halving) with the error, the rest stored.

        A refusal costs about two inserts per halving step of each refused row, all under the flush
        lock: at most ``REFUSAL_INSERTS`` per table and flush (a batch whose every row is refused would
        otherwise take one insert per row while every waiting request times out). Once they are spent, a
        refused part becomes dead letters whole, good rows included (their payloads can be replayed).
        Any other error propagates (rows stored by then are stored again on the retry: ids)."""
        budget = [REFUSAL_INSERTS] if budget is None else budget
        try:
            insert(self._storage, rows)
        except StorageRejectedError as exc:
            if len(rows) == 1:
                return [(rows[0], str(exc))]
            if budget[0] <= 0:
                whole = f"{exc} (refused together with {len(rows) - 1} other rows, not narrowed down)"
                return [(row, whole) for row in rows]
            budget[0] -= 2
            log.debug("insert_refused_halving", table=table, rows=len(rows), code=exc.code)
            middle = len(rows) // 2
            return self._insert(table, rows[:middle], insert, budget) + self._insert(
                table, rows[middle:], insert, budget
            )
        return []

    def _refuse(
        self,
        source: str,
        refused: list[tuple[InferenceRecord, str]] | list[tuple[FeedbackRecord, str]],
        acks: list[tuple[object, Sequence[InferenceRecord] | Sequence[FeedbackRecord]]],
        done: _Unreported,
        dead: list[DeadLetter],
    ) -> list[tuple[object, Sequence[InferenceRecord] | Sequence[FeedbackRecord]]]:
        """Turn refused rows into dead letters (into ``dead``, written next) and take the ack tokens of
        their events out of ``acks`` (into ``done.refused``); returns the remaining tokens."""
        if not refused:
            return acks
        reasons: dict[int, tuple[str, str]] = {}
        for row, error in refused:
            event_id = row.event_id if isinstance(row, InferenceRecord) else row.feedback_id
            letter = dead_letter(source, f"{REFUSED}{error}", encode_record(row), row.project)
            done.rejected.append(letter)
            dead.append(letter)
            reasons[id(row)] = (event_id, letter.error)
        kept = []
        for ack, events in acks:
            mine = dict(reasons[id(event)] for event in events if id(event) in reasons)
            if mine:
                done.refused.append(Refused(ack, mine))
            else:
                kept.append((ack, events))
        return kept

    def _insert_dead_letters(self, dead: list[DeadLetter]) -> list[tuple[DeadLetter, str]]:
        """Dead letters storage refuses have nowhere left to go: logged (without payload) and dropped."""
        refused = self._insert("dead_letters", dead, dead_letters.store)
        for letter, error in refused:
            log.error(
                "dead_letter_refused",
                source=letter.source,
                project=letter.project,
                error=letter.error[:500],
                storage_error=error[:500],
            )
        return refused


def _without(rows: list[Row], refused: Sequence[tuple[Row, str]]) -> list[Row]:
    """``rows`` but the refused ones (by identity: equal events may be sent twice)."""
    if not refused:
        return rows
    out = {id(row) for row, _ in refused}
    return [row for row in rows if id(row) not in out]
