"""The statistics engine the pipeline calls: enrich events, track windows, close them into rows.

Flow per flush (after the raw events are in ClickHouse)::

    tracker.due() ──▶ close_window(key) ──▶ latency / cost / drift / quality rows ──▶ window_stats ──▶ hooks
    late feedback ──▶ windows it belongs to ──(debounced)──▶ quality rows again ──▶ window_stats ──▶ hooks
                                                            + privacy rows of feedback texts (correction, comment)
                 failed ──▶ pending (retried with backoff, see streams.stats.retries) ──┘

Everything is computed from stored rows, so any worker can close any window (after a rebalance or a
crash) and get the same numbers; ``window_stats`` keeps the newest computation of each key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import structlog

from detectors.family_drift import ColumnEvidence, embedding_evidence
from schemas.records import FeedbackRecord, InferenceRecord
from schemas.settings import Settings
from schemas.stats import StatRow, WindowKey
from streams import metrics
from streams.stats import families
from streams.stats.judge_agreement import JudgeCalibrations
from streams.stats.pacing import Pacer
from streams.stats.quality_data import CLOCK_SKEW, fetch_quality, fetch_quality_by_version
from streams.stats.references import Reference, ReferenceStore
from streams.stats.retries import PendingWindows, RetryPolicy
from streams.stats.tracker import WindowTracker
from streams.stats.window_data import (
    WindowRows,
    fetch_drift_columns,
    fetch_embeddings,
    fetch_window_rows,
)
from streams.storage import Storage, StorageError, feedback, inferences, window_stats

log = structlog.get_logger(__name__)

REFERENCE_QUALITY_TTL = 60.0  # seconds
EMBEDDING_SAMPLE_ROWS = 1000  # per side and window: bounds the embedding test's memory and time
VERSION_MIN_ROWS = 30  # a model version's drift rows need this many sampled rows of it in the window

RowsHook = Callable[[list[StatRow]], None]
WindowWork = Callable[[WindowKey], list[StatRow]]


def _by_version(events: WindowRows) -> list[tuple[str, WindowRows]]:
    """The window's events of each named model version ('' = unnamed, only in the model-wide rows)."""
    labels = np.asarray(events.versions, dtype=object)
    return [(version, events.select(labels == version)) for version in sorted(set(events.versions) - {""})]


def _oldest_first(key: WindowKey) -> tuple[datetime, str, str]:
    return key.start, key.project, key.model


class StatsEngine:
    def __init__(self, storage: Storage, settings: Settings, *, retry: RetryPolicy | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.tracker = WindowTracker(settings.window_seconds, settings.allowed_lateness_seconds)
        # The process's one reference store: the API reads and saves through it too (streams.runtime).
        self.references = ReferenceStore(storage)
        self.on_rows: list[RowsHook] = []
        self._feedback_targets: list[tuple[str, str]] = []
        self._dirty_quality: set[WindowKey] = set()
        self._last_quality_refresh = 0.0
        # Windows not stored yet: due windows whose close failed, and dirty windows whose refresh failed.
        retry = retry or RetryPolicy()
        self._unclosed = PendingWindows(retry)
        self._unrefreshed = PendingWindows(retry)
        self._spend: dict[tuple[str, str], list[tuple[datetime, float]]] = {}  # see _spend_history
        self._reference_quality_cache: dict[WindowKey, tuple[float, dict[str, Any]]] = {}
        self._reference_embeddings: dict[WindowKey, np.ndarray] = {}
        self.calibrations = JudgeCalibrations(storage)  # judges' scores → estimated thumbs-up rates
        self.pacer = Pacer(settings.close_share_under_ingest)  # ingest first while a backlog is worked off
        # Set by ``finish_by`` when the process stops: windows still due then are left to start-up recovery.
        self._deadline: float | None = None
        # Guards the in-memory bookkeeping only: flushes observe events while a window is being computed.
        self._bookkeeping = threading.Lock()

    # ---------------------------------------------------------------- ingest side (cheap, in memory)

    def observe_inferences(self, events: Sequence[InferenceRecord]) -> None:
        if events:
            self.pacer.ingest_seen()
        by_model: dict[tuple[str, str], list[datetime]] = {}
        for event in events:
            by_model.setdefault((event.project, event.model), []).append(event.timestamp)
        with self._bookkeeping:
            for (project, model), stamps in by_model.items():
                self.tracker.observe(project, model, stamps)

    def observe_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        targets = [(event.project, event.inference_id) for event in events]
        with self._bookkeeping:
            self._feedback_targets.extend(targets)

    @property
    def retrying(self) -> int:
        """Windows whose statistics failed to compute or store and wait for another try."""
        return len(self._unclosed) + len(self._unrefreshed)

    def windows_pending(self) -> int:
        """Windows whose statistics are not stored yet: open, due, or waiting for a retry (the backlog)."""
        with self._bookkeeping:
            tracked = self.tracker.pending()
        return tracked + self.retrying

    def _due(self, now: float | None = None) -> list[WindowKey]:
        with self._bookkeeping:
            return self.tracker.due(now=now)

    # ------------------------------------------------ closing side (the closer thread: reads and writes storage)

    def close_due(self, *, force_quality: bool = False) -> list[StatRow]:
        """Close due windows (and failed ones whose backoff passed), then refresh the quality (and the
        privacy counts of feedback texts) of windows that got late feedback. A window that fails stays
        pending (rule in ``streams.stats.retries``)."""
        due = set(self._due()) | set(self._unclosed.ready(time.monotonic()))
        rows, _ = self._attempt(sorted(due, key=_oldest_first), self._unclosed, self.close_window, "close")
        self._collect_feedback_windows()
        interval = self.settings.quality_refresh_seconds
        if self._dirty_quality and (force_quality or time.monotonic() - self._last_quality_refresh >= interval):
            now = time.monotonic()
            picked = sorted(
                (k for k in self._dirty_quality if not self._unrefreshed.waiting(k, now)), key=_oldest_first
            )
            self._dirty_quality.difference_update(picked)
            quality, unfinished = self._attempt(picked, self._unrefreshed, self._refresh_quality, "quality")
            self._dirty_quality.update(unfinished)
            rows += quality
            self._last_quality_refresh = time.monotonic()
        return rows

    def finish_by(self, deadline: float | None) -> None:
        """Stop computing windows at ``deadline`` (``time.monotonic()``), even mid-run: a stopping process
        must not spend minutes on a backlog. Windows not reached stay pending here and, in the next
        process, ``recover`` re-tracks them (they have events and no statistics)."""
        self._deadline = deadline

    def force_close_all(self) -> list[StatRow]:
        """Close every open window now (shutdown of a demo or a backfill), regardless of lateness."""
        keys = self._due(now=float("inf"))
        return self._attempt(keys, self._unclosed, self.close_window, "close")[0]

    def _attempt(
        self, keys: list[WindowKey], pending: PendingWindows, work: WindowWork, what: str
    ) -> tuple[list[StatRow], list[WindowKey]]:
        """Run ``work`` for each window, oldest first; returns its rows and the windows left pending.

        Storage down: stop here and keep this window and the rest pending, uncounted. A failure of one
        window: count it (and give up after ``RetryPolicy.max_failures``), then go on with the others.
        """
        rows: list[StatRow] = []
        unfinished: list[WindowKey] = []
        for index, key in enumerate(keys):
            if self._deadline is not None and time.monotonic() >= self._deadline:
                rest = keys[index:]
                pending.keep(rest, time.monotonic())
                log.warning("windows_left_for_recovery", what=what, windows=len(rest))
                return rows, unfinished + rest
            started = time.monotonic()
            try:
                rows += work(key)
            except Exception as exc:
                now = time.monotonic()
                context = {
                    "what": what,
                    "project": key.project,
                    "model": key.model,
                    "window_start": key.start.isoformat(),
                    "error": str(exc)[:500],
                }
                if isinstance(exc, StorageError) and not self.storage.ping():
                    rest = keys[index:]
                    log.warning(
                        "window_retry",
                        reason="storage_unavailable",
                        windows=len(rest),
                        retry_in=pending.storage_down(rest, now),
                        **context,
                    )
                    return rows, unfinished + rest
                retry_in = pending.failed(key, now)
                if retry_in is None:
                    log.exception("window_abandoned", attempts=pending.policy.max_failures, **context)
                else:
                    log.exception("window_retry", reason="window_failed", retry_in=retry_in, **context)
                    unfinished.append(key)
            else:
                pending.written(key)
                if index + 1 < len(keys) and self._overdue(key):  # catching up: ingest first
                    self.pacer.pause(time.monotonic() - started)
        return rows, unfinished

    def _overdue(self, key: WindowKey) -> bool:
        """Due for longer than a window: part of a backlog (a backfill, a restart), not a window closing
        on time. Only those give way to ingest, so steady traffic never slows the usual closes."""
        due_at = key.end + timedelta(seconds=self.settings.allowed_lateness_seconds + self.settings.window_seconds)
        return datetime.now(UTC) > due_at

    @metrics.timed_window_close
    def close_window(self, key: WindowKey) -> list[StatRow]:
        started = time.perf_counter()
        events = fetch_window_rows(self.storage, key, self.settings.cost_tag_keys)
        if not len(events):
            return []  # nothing stored in the window (e.g. a window re-tracked after its rows expired)
        versions = _by_version(events)
        rows = self._latency(key, events, versions)
        rows += self._cost(key, events, versions)
        rows += self._privacy(key, events, versions)
        rows += self._text_privacy(key)
        rows += self._drift(key)
        rows += self._quality(key)
        self._write(rows)
        log.info(
            "window_closed",
            project=key.project,
            model=key.model,
            window_start=key.start.isoformat(),
            rows=len(rows),
            seconds=round(time.perf_counter() - started, 3),
        )
        return rows

    def _refresh_quality(self, key: WindowKey) -> list[StatRow]:
        """A closed window's rows that come from its feedback: quality, and the privacy counts of
        feedback texts (their fields, ``correction`` and ``comment``, are the calls' own)."""
        rows = self._quality(key) + self._text_privacy(key)
        self._write(rows)
        return rows

    def _write(self, rows: list[StatRow]) -> None:
        """Run the hooks (the monitors store their alerts), then store the rows.

        Stored rows mark the window done: start-up recovery re-computes only windows without them. So
        the hooks come first: a process killed between the two re-computes the window and evaluates it
        again (alert ids are deterministic and claimed once, so nothing doubles), where the opposite
        order lost that window's alerts for good. A hook that raises is logged, not retried here (hooks
        keep their own retries, as ``Monitoring`` does)."""
        if rows:
            for hook in self.on_rows:
                try:
                    hook(rows)
                except Exception:
                    log.exception("stats_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)), rows=len(rows))
            window_stats.insert(self.storage, rows)

    def _latency(self, key: WindowKey, events: WindowRows, versions: list[tuple[str, WindowRows]]) -> list[StatRow]:
        """Model-wide rows, plus the same per model version when the window has named versions."""
        rows = families.latency_rows(key, events.latencies, events.statuses)
        for version, part in versions:
            rows += [
                replace(row, model_version=version) for row in families.latency_rows(key, part.latencies, part.statuses)
            ]
        return rows

    def _cost(self, key: WindowKey, events: WindowRows, versions: list[tuple[str, WindowRows]]) -> list[StatRow]:
        totals = families.cost_totals(events)
        history = self._spend_history(key)
        rows = families.cost_rows(key, totals, families.cost_by_tag(events), [value for _, value in history])
        self._spend[(key.project, key.model)] = [*history, (key.start, totals["cost_usd"])][
            -self.settings.spend_history_windows :
        ]
        for version, part in versions:
            version_rows = families.cost_rows(key, families.cost_totals(part), [], [])
            rows += [replace(row, model_version=version) for row in version_rows]
        return rows

    def _privacy(self, key: WindowKey, events: WindowRows, versions: list[tuple[str, WindowRows]]) -> list[StatRow]:
        rows = families.privacy_rows(key, events.pii)
        for version, part in versions:
            rows += [replace(row, model_version=version) for row in families.privacy_rows(key, part.pii)]
        return rows

    def _text_privacy(self, key: WindowKey) -> list[StatRow]:
        """The privacy rows of the corrections and comments on the window's calls (fields ``correction``,
        ``comment``), model-wide and per version of the call they are about."""
        texts = feedback.window_text_counts(self.storage, key, key.start - CLOCK_SKEW)
        rows = families.privacy_rows(key, [text.pii for text in texts])
        for version in sorted({text.model_version for text in texts} - {""}):
            part = [text.pii for text in texts if text.model_version == version]
            rows += [replace(row, model_version=version) for row in families.privacy_rows(key, part)]
        return rows

    def _spend_history(self, key: WindowKey) -> list[tuple[datetime, float]]:
        """The model's spend in the windows before ``key``, oldest first (the spend-anomaly baseline).

        Windows close in order, so the history is usually the one this engine left after the previous
        window: read from ``window_stats`` only when that is not the window right before (a gap, a
        rebalance, a recomputation, the first window after start-up)."""
        known = self._spend.get((key.project, key.model))
        if known and known[-1][0] == key.start - (key.end - key.start):
            return known
        return window_stats.spend_history(self.storage, key, self.settings.spend_history_windows)

    def _drift(self, key: WindowKey) -> list[StatRow]:
        current = fetch_drift_columns(self.storage, key, self.settings.drift_sample_rows)
        if not current.columns:
            return []
        reference = self.references.get(key.project, key.model)
        if reference is None:
            if current.rows < self.settings.reference_min_rows:
                return []
            reference = self.references.ensure_first_window(
                key.project, key.model, current, range_start=key.start, range_end=key.end
            )
        if reference.kind == "first_window" and reference.range_start == key.start:
            return []  # the reference window itself
        rows, _ = families.drift_rows(
            key,
            reference,
            current,
            drift_share=self.settings.drift_share,
            correction=self.settings.drift_correction,
            embedding=self._embedding_evidence(key, reference),
        )
        labels = np.asarray(current.versions, dtype=object)
        for version in sorted(set(current.versions) - {""}):
            part = current.select(labels == version)
            if part.rows < VERSION_MIN_ROWS:
                continue
            # the family verdicts only: the per-column Evidently rows are model-wide (a third of the cost)
            version_rows = families.family_rows(key, families.family_verdicts(reference, part), part.rows)
            rows += [replace(row, model_version=version) for row in version_rows]
        return rows

    def _embedding_evidence(self, key: WindowKey, reference: Reference) -> ColumnEvidence | None:
        """The window's embeddings against the reference period's (both sampled to
        ``EMBEDDING_SAMPLE_ROWS``); ``None`` when either side has none or the dimensions differ.
        A reference without a stored period (an uploaded profile) has no embeddings to compare with."""
        if reference.range_start is None or reference.range_end is None:
            return None
        current = fetch_embeddings(self.storage, key, EMBEDDING_SAMPLE_ROWS)
        if current.shape[0] < 2:
            return None
        ref_key = WindowKey(key.project, key.model, reference.range_start, reference.range_end)
        ref = self._reference_embeddings.get(ref_key)
        if ref is None:
            ref = fetch_embeddings(self.storage, ref_key, EMBEDDING_SAMPLE_ROWS)
            if len(self._reference_embeddings) >= 64:
                self._reference_embeddings.clear()
            self._reference_embeddings[ref_key] = ref
        if ref.shape[0] < 2 or ref.shape[1] != current.shape[1]:
            return None
        return embedding_evidence("embedding", ref, current)

    def _quality(self, key: WindowKey) -> list[StatRow]:
        """Model-wide quality rows, and the same per model version, each against the reference's feedback."""
        current, by_version = fetch_quality_by_version(self.storage, key)
        if not current["feedback_count"]:
            return []
        reference_data = None
        reference = self.references.get(key.project, key.model)
        if reference is not None and reference.range_start and reference.range_end:
            ref_key = WindowKey(key.project, key.model, reference.range_start, reference.range_end)
            if ref_key.start != key.start:
                reference_data = self._reference_quality(ref_key)
        reference_judged = reference_data["judge_scores"] if reference_data else None
        fits = self.calibrations.window_fits(key, current["judge_scores"])  # one read for every version
        rows = families.quality_rows(key, current, reference_data)
        rows += families.estimate_rows(
            key, self.calibrations.estimates(key, current["judge_scores"], reference_judged, fits)
        )
        for version, data in by_version.items():
            version_rows = families.quality_rows(key, data, reference_data)
            version_rows += families.estimate_rows(
                key, self.calibrations.estimates(key, data["judge_scores"], reference_judged, fits)
            )
            rows += [replace(row, model_version=version) for row in version_rows]
        return rows

    def _reference_quality(self, ref_key: WindowKey) -> dict[str, Any]:
        """The reference period's feedback, read at most once a ``REFERENCE_QUALITY_TTL`` per reference
        (it was re-read for every window; its late feedback still counts after the TTL)."""
        now = time.monotonic()
        cached = self._reference_quality_cache.get(ref_key)
        if cached is not None and now - cached[0] < REFERENCE_QUALITY_TTL:
            return cached[1]
        data = fetch_quality(self.storage, ref_key)
        if len(self._reference_quality_cache) >= 1024:
            self._reference_quality_cache.clear()
        self._reference_quality_cache[ref_key] = (now, data)
        return data

    def _collect_feedback_windows(self) -> None:
        """Map late feedback to the closed windows of its inferences (open ones, and ones waiting for a
        close retry, get quality at close). If storage fails, the feedback is kept for the next run."""
        with self._bookkeeping:
            targets, self._feedback_targets = self._feedback_targets, []
        if not targets:
            return
        try:
            self._mark_feedback_windows(targets)
        except StorageError as exc:
            with self._bookkeeping:
                self._feedback_targets[:0] = targets
            log.warning("feedback_windows_deferred", feedback=len(targets), error=str(exc)[:500])

    def _mark_feedback_windows(self, targets: list[tuple[str, str]]) -> None:
        by_project: dict[str, set[str]] = {}
        for project, inference_id in targets:
            by_project.setdefault(project, set()).add(inference_id)
        for project, ids in by_project.items():
            for key in inferences.windows_of(self.storage, project, sorted(ids), self.settings.window_seconds):
                with self._bookkeeping:
                    still_open = self.tracker.is_open(key)
                if not still_open and key not in self._unclosed:
                    self._dirty_quality.add(key)

    def recover(self, *, lookback_hours: int = 24) -> int:
        """Re-track windows that have events but no statistics (a crash before they closed)."""
        keys = window_stats.windows_without_stats(self.storage, self.settings.window_seconds, lookback_hours)
        for key in keys:
            with self._bookkeeping:
                self.tracker.reopen(key)
        return len(keys)


__all__ = ["StatsEngine"]
