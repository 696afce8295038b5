"""The processing pipeline, written once and driven by either runner (embedded queue or faust agents).

Reads top to bottom like the data flow::

    raw bytes ─decode─▶ events ─price (cost)─▶ sink buffers ──flush──▶ ClickHouse (raw events)
                 └─▶ dead letters ──────────────────┘                │
                                     window tracker ◀── event times   ▼
                                                      due windows ─▶ statistics ─▶ window_stats ─▶ hooks

Everything here is synchronous: runners call it from worker threads, because chDB has no async client
and the statistics are CPU work.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence

import structlog

from schemas.events import DeadLetter
from schemas.records import FeedbackRecord, InferenceRecord
from schemas.settings import Settings
from streams import metrics
from streams.bus import Kind
from streams.decode import Decoded, EventTimePolicy, feedback_decoder, inference_decoder
from streams.evals.service import Sampler
from streams.pricing import Pricer
from streams.privacy import Privacy
from streams.privacy.retention import RetentionSweeper
from streams.privacy.seal import Headers, sealed
from streams.sink import REFUSED, EventSink, FlushStats
from streams.stats import StatsEngine
from streams.storage import Storage

log = structlog.get_logger(__name__)


def _windows_pending(pipeline: Pipeline) -> int | None:
    return None if pipeline.stats is None else pipeline.stats.windows_pending()


def _dead_lettered(letters: Sequence[DeadLetter]) -> None:
    """Count and log dead letters, whether decoding or storage set them aside."""
    metrics.dead_lettered(letters)
    for letter in letters:
        log.warning("dead_letter", source=letter.source, project=letter.project, error=_loggable(letter.error))


def _loggable(error: str) -> str:
    """ClickHouse's text for a refused row can quote its values (a constraint's "Column values: ...", a
    parse error's input): a prompt must not reach the logs, so they get the error's name only; the full
    text is in the ``dead_letters`` row. Decoding errors never include inputs (``problem_lines``)."""
    if not error.startswith(REFUSED):
        return error[:500]
    names = re.findall(r"\(([A-Z][A-Z_]+)\)", error)
    return f"{REFUSED}{names[-1] if names else 'see the dead_letters row'}"


class Pipeline:
    """Validated events in, rows and statistics out."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings
        self.sink = EventSink(storage)
        self.pricer = Pricer(settings)
        times = EventTimePolicy.of(settings)
        self.inference_decoder = inference_decoder(max_bytes=settings.max_body_bytes, times=times)
        self.feedback_decoder = feedback_decoder(max_bytes=settings.max_body_bytes, times=times)
        self.privacy = Privacy(storage, settings)
        self.retention = RetentionSweeper(storage, interval_seconds=settings.retention_sweep_seconds)
        self._next_sweep = time.monotonic()  # the first pass at the first closer run
        key = settings.envelope_key
        self._envelope_key = key.get_secret_value().encode() if key is not None else None
        self.stats: StatsEngine | None = StatsEngine(storage, settings) if settings.stats_enabled else None
        self._stats_lock = threading.Lock()
        self.sampler: Sampler | None = None  # online evaluations (streams.evals), set by streams.runtime
        metrics.watch_pipeline(self, lambda live: live.pending, _windows_pending)

    def start(self) -> None:
        """Start-up work, off the first event's path: load the price snapshot and re-track windows that
        have stored events but no statistics (a crash before they closed); load the redaction policies."""
        self.pricer.warm_up()
        self.privacy.refresh()
        if self.stats is not None:
            self.stats.recover()

    def accept_raw(
        self, kind: Kind, raw: bytes, headers: Headers | None = None
    ) -> Decoded[InferenceRecord] | Decoded[FeedbackRecord]:
        """Decode one message (an event or an array of events); bad items become dead letters.

        Raw messages come from Kafka, where the SDK may have sent them unredacted: redaction happens
        here, before the events are buffered (dead letters are redacted in ``accept_dead_letters``),
        unless ``headers`` carry the API's valid mark that it redacted this very body (``seal``)."""
        decoder = self.inference_decoder if kind == "inference" else self.feedback_decoder
        decoded = decoder.decode(raw)
        if sealed(self._envelope_key, raw, headers):
            metrics.redaction_scans("kafka_skipped", len(decoded.events))
        else:
            metrics.redaction_scans("kafka", len(decoded.events))
            if kind == "inference":
                self.privacy.inferences(decoded.events)  # type: ignore[arg-type]
            else:
                self.privacy.feedback(decoded.events)  # type: ignore[arg-type]
        if kind == "inference":
            self.accept_inferences(decoded.events)  # type: ignore[arg-type]
        else:
            self.accept_feedback(decoded.events)  # type: ignore[arg-type]
        if decoded.dead_letters:
            decoded.dead_letters = self.accept_dead_letters(decoded.dead_letters)
        return decoded

    def accept_inferences(self, events: Sequence[InferenceRecord], ack: object | None = None) -> None:
        """Buffer ``events``; ``ack`` comes back in ``FlushStats.acks`` once all of them are stored."""
        self.pricer.price(events)
        self.sink.add_inferences(events, ack)

    def accept_feedback(self, events: Sequence[FeedbackRecord], ack: object | None = None) -> None:
        self.sink.add_feedback(events, ack)

    def accept_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Buffer dead letters, their payloads redacted first; returns them as buffered (redacted)."""
        redacted = self.privacy.dead_letters(letters)
        _dead_lettered(redacted)
        self.sink.add_dead_letters(redacted)
        return redacted

    @property
    def pending(self) -> int:
        return self.sink.pending

    def flush(self) -> FlushStats:
        """Write buffered events, then let the windows see them.

        Closing windows is not part of a flush: runners leave it to a ``WindowCloser`` so statistics
        never hold up writes. Raises with the buffers kept, so the caller may retry
        (``streams.writes``); events storage refuses for their content are not retried but come back
        as ``rejected`` dead letters (``EventSink``). A failure of the window bookkeeping is logged and
        does not fail the write (the rows are stored; repeating it would not help).
        """
        sampler = self.sampler
        bulk = sampler is not None and sampler.writing(self.sink.pending_ingest)  # a bulk write: evaluations hold
        try:
            written = self.sink.flush()
        finally:
            if bulk:
                assert sampler is not None
                sampler.written()
        if sampler is not None and (written.written_inferences or written.written_feedback):
            sampler.stored()  # wakes it: it reads what was stored, the writers' acks never wait for it
        _dead_lettered(written.rejected)  # events storage refused: dead letters written by that flush
        if self.stats is not None:  # only stored events count towards a window, so a closed window is complete
            try:
                self.stats.observe_inferences(written.written_inferences)
                self.stats.observe_feedback(written.written_feedback)
            except Exception:
                log.exception("window_bookkeeping_failed", inferences=written.inferences, feedback=written.feedback)
        return written

    def sweep_retention(self) -> None:
        """Enforce projects' retention policies when a sweep interval has passed (the closer calls this
        after closing windows); errors are logged and the next interval tries again."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.retention.interval
        try:
            self.retention.sweep()
        except Exception:
            log.exception("retention_sweep_failed")

    def close_windows(self, *, force_quality: bool = False, force_all: bool = False) -> None:
        """Close due windows (``force_all``: every open window, e.g. at the end of a backfill).

        A window that fails is not lost: the engine keeps it pending and a later call (the closer runs
        periodically) tries it again with backoff, see ``streams.stats.retries``. Only errors outside
        any one window's computation get here, logged as ``statistics_failed``.
        """
        if self.stats is None:
            return
        with self._stats_lock:
            try:
                if force_all:
                    self.stats.force_close_all()
                self.stats.close_due(force_quality=force_quality)
            except Exception:
                log.exception("statistics_failed")
