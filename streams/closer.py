"""Window statistics computed beside the write path, not on it.

Closing a window runs a handful of ClickHouse queries and the detectors: a few hundred milliseconds.
Done inside a flush, that stalled ingest (the embedded queue filled up) and, in Kafka mode, held back
the next batch and its offset commit. Flushes now only ``wake`` the closer; it runs one computation at
a time, so wakes during a run coalesce into one more run. A periodic run closes the windows of models
that went quiet (wall-time rule in ``WindowTracker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from streams.pipeline import Pipeline

log = structlog.get_logger(__name__)


class WindowCloser:
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        # Twice the longest a batch lingers before its write (at least a second): each write wakes the
        # closer anyway, so this only bounds how late a window of a model that went quiet closes.
        self._interval = max(1.0, pipeline.settings.batch_max_seconds * 2)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._pipeline.stats is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="loopwatch-window-closer")

    def wake(self) -> None:
        self._wake.set()

    async def close_now(self) -> None:
        """Close due windows before returning (tests, the demo and shutdown want them settled)."""
        await asyncio.to_thread(self._pipeline.close_windows)

    async def stop(self, grace_seconds: float) -> None:
        """Finish the current run, then close what is due one last time — for at most ``grace_seconds``:
        a backlog of thousands of windows is left to the next start-up's recovery instead of holding up
        the shutdown for minutes."""
        self._stopping = True  # a flag, not cancel(): 3.11's wait_for can swallow a cancel racing a wake
        if self._pipeline.stats is not None:
            self._pipeline.stats.finish_by(time.monotonic() + grace_seconds)
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.close_now()
        if self._pipeline.stats is not None:
            self._pipeline.stats.finish_by(None)  # a later close (a restarted runner, tests) is not cut short

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            if not self._stopping:
                await asyncio.to_thread(self._pipeline.close_windows)  # logs and swallows its own errors
                await asyncio.to_thread(self._pipeline.sweep_retention)  # at most once an interval; logs its errors
