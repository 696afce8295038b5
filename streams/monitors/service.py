"""Monitoring as one object a process starts and stops: store, engine, dispatcher, and the stats hook.

::

    StatsEngine.on_rows ──▶ Monitoring.on_rows (worker thread) ──▶ MonitorEngine.evaluate ──▶ alerts,
                                                                   retrain_requests (stored)
                             └──▶ AlertDispatcher.submit ──▶ event loop: publish + deliver ──▶ alert_deliveries
    timer (LOOPWATCH_NO_DATA_CHECK_SECONDS) ──▶ NoDataWatch.check ──▶ no-data alerts ──▶ AlertDispatcher.submit
    timer (LOOPWATCH_QUEUE_FILL_SECONDS) ──▶ QueueFiller.run ──▶ review queues take what arrived (streams.queues)

If evaluation fails (storage down), the rows are kept and evaluated again with the next window's rows;
dedup keys make a repeated evaluation harmless, so no window's alert is lost to a transient error.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from schemas.monitors import ANY
from schemas.settings import Settings
from schemas.stats import StatRow
from streams.monitors.alerts import AlertStore
from streams.monitors.dispatcher import STALE_AFTER, AlertDispatcher, Publish
from streams.monitors.evaluation import EvaluationResult, MonitorEngine
from streams.monitors.no_data import NoDataWatch
from streams.monitors.store import MonitorStore
from streams.queues import QueueFiller
from streams.storage import Storage, StorageError
from streams.storage.inferences import has_model, model_names

log = structlog.get_logger(__name__)

MAX_RETRY_ROWS = 50_000
SWEEP_SECONDS = 300.0


class Monitoring:
    """The monitors feature of one process. Routes read ``store`` and ``alerts``; workers call ``on_rows``."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        publish: Publish | None = None,
        client: httpx.AsyncClient | None = None,
        sweep_seconds: float | None = SWEEP_SECONDS,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.store = MonitorStore(storage, settings)
        self.alerts = AlertStore(storage)
        self.engine = MonitorEngine(self.store, self.alerts, settings)
        self.dispatcher = AlertDispatcher(self.alerts, settings, publish=publish, client=client)
        self.no_data = NoDataWatch(self.store, self.alerts, settings)
        self.queue_filler = QueueFiller(storage, settings)
        self._sweep_seconds = sweep_seconds
        self._retry: list[StatRow] = []
        self._retry_lock = threading.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._silences: asyncio.Task[None] | None = None
        self._queues: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind delivery to the running loop, load ``LOOPWATCH_MONITORS_FILE``, resume unfinished
        deliveries at once and start the resend sweeper (unless ``sweep_seconds`` is None: a process
        that never delivers, such as an API-only replica, resumes nothing).

        Everything stored before this call that still owes a channel a delivery (the previous process
        was killed mid-delivery, or evaluated before delivery was bound) is resent now, in the
        background; later passes every ``sweep_seconds`` pick up lost hand-offs. An invalid monitors
        file stops start-up (``MonitorFileError`` names every problem).
        """
        started = datetime.now(UTC)
        self.dispatcher.bind()
        if self.settings.monitors_file is not None:
            await asyncio.to_thread(self.store.load_file, self.settings.monitors_file)
        if self._sweep_seconds:
            self.dispatcher.spawn(self.dispatcher.resume_pending(self.store.get, fired_before=started))
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(self._sweep_seconds))
            self._silences = asyncio.get_running_loop().create_task(self._watch_silences())
            self._queues = asyncio.get_running_loop().create_task(self._fill_queues())

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop sweeping; let deliveries in flight (resumed ones too) finish for up to ``timeout`` s."""
        for task in (self._sweeper, self._silences, self._queues):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.dispatcher.aclose(timeout)

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.dispatcher.resume_pending(self.store.get, older_than=STALE_AFTER)

    async def _watch_silences(self) -> None:
        while True:
            await asyncio.sleep(self.settings.no_data_check_seconds)
            await asyncio.to_thread(self.check_silences)

    async def _fill_queues(self) -> None:
        while True:
            await asyncio.sleep(self.settings.queue_fill_seconds)
            await asyncio.to_thread(self.fill_queues)

    def fill_queues(self) -> int:
        """Let every rule-based review queue take what arrived since its last pass. Never raises."""
        try:
            return self.queue_filler.run()
        except Exception:
            log.exception("queue_fill_failed")
            return 0

    def check_silences(self) -> EvaluationResult:
        """Judge every no-data monitor now and hand what fired or resolved to delivery. Never raises."""
        try:
            result = self.no_data.check()
        except Exception:
            log.exception("no_data_check_failed")
            return EvaluationResult()
        if result:
            self.dispatcher.submit(result.alerts, result.retrains, result.monitors, result.resolved)
        return result

    def scope_warnings(self, project: str, scope: str) -> list[str]:
        """What a person should hear about ``scope`` before relying on the monitor: a scope naming a
        model the project has never sent judges nothing (a typo, or a model not deployed yet). Empty for
        ``*``, for models with events, and when storage cannot tell (the monitor is stored already)."""
        if scope == ANY:
            return []
        try:
            if has_model(self.storage, project, scope):
                return []
            sent = model_names(self.storage, project)
        except StorageError as exc:
            log.warning("monitor_scope_unchecked", project=project, error=type(exc).__name__)
            return []
        log.info("monitor_scope_unknown", project=project, scope=scope)
        message = (
            f"scope {scope!r} names no model this project has sent: the monitor judges nothing until its events arrive"
        )
        close = difflib.get_close_matches(scope, sent, n=3, cutoff=0.6)
        if close:
            message += f"; did you mean {' or '.join(repr(name) for name in close)}?"
        elif sent:
            shown = ", ".join(repr(name) for name in sent[:5])
            message += f"; models sent: {shown}{', …' if len(sent) > 5 else ''}"
        else:
            message += "; the project has sent no events yet"
        return [message]

    def evaluate(self, rows: Sequence[StatRow]) -> EvaluationResult:
        """Evaluate (with any rows a failed evaluation left behind) and hand the result to delivery.

        Synchronous and never raising: the ``StatsEngine.on_rows`` hook, called from worker threads.
        """
        with self._retry_lock:
            pending, self._retry = self._retry, []
        batch = [*pending, *rows]
        try:
            result = self.engine.evaluate(batch)
        except Exception:
            with self._retry_lock:
                self._retry = (batch + self._retry)[-MAX_RETRY_ROWS:]
            log.exception("monitor_evaluation_failed", rows=len(batch), kept_for_retry=len(self._retry))
            return EvaluationResult()
        if result:
            self.dispatcher.submit(result.alerts, result.retrains, result.monitors, result.resolved)
        return result

    def on_rows(self, rows: list[StatRow]) -> None:
        """``StatsEngine.on_rows`` hook."""
        self.evaluate(rows)

    async def resume_pending(self, *, older_than: timedelta = STALE_AFTER) -> int:
        """Resend now what fired more than ``older_than`` ago and still owes a channel a delivery."""
        return await self.dispatcher.resume_pending(self.store.get, older_than=older_than)
