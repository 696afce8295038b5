"""The embedded runner: the pipeline fed by the in-process bus, inside the API's event loop.

One consumer task takes batches off the queue, hands them to the pipeline and flushes when the buffer
is large or old enough; a ``WindowCloser`` computes window statistics beside it. A failed flush is
retried with backoff (the buffers are kept), and ``stop`` drains the queue and flushes, so an orderly
shutdown loses nothing that was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from schemas.settings import Settings
from streams.bus import Envelope, InProcessBus
from streams.closer import WindowCloser
from streams.pipeline import Pipeline
from streams.storage import StorageError

log = structlog.get_logger(__name__)


class EmbeddedRunner:
    """Owns the in-process bus and the task that drains it into the pipeline."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.bus = InProcessBus(settings.queue_max_batches)
        self._max_events = settings.batch_max_events
        self._max_seconds = settings.batch_max_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_flush = time.monotonic()
        self.failed_flushes = 0
        self.closer = WindowCloser(pipeline, max(1.0, self._max_seconds * 2))

    async def start(self) -> None:
        if self.pipeline.stats is not None:
            await asyncio.to_thread(self.pipeline.stats.recover)
        self._task = asyncio.create_task(self._run(), name="loopwatch-embedded-runner")
        self.closer.start()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Drain everything accepted so far into storage, then stop."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        self._drain_queue()
        await self._flush(final=True)
        await self.closer.stop()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every accepted event is written and due windows are closed (tests and the demo
        read back after this)."""
        deadline = time.monotonic() + timeout
        while self.bus.queue.qsize() or self.pipeline.pending:
            if time.monotonic() > deadline:
                raise TimeoutError("embedded runner did not go idle")
            await asyncio.sleep(0.02)
        await self._flush()
        await self.closer.close_now()

    def _handle(self, envelope: Envelope) -> None:
        if envelope.kind == "inference":
            self.pipeline.accept_inferences(envelope.events)  # type: ignore[arg-type]
        else:
            self.pipeline.accept_feedback(envelope.events)  # type: ignore[arg-type]

    def _drain_queue(self) -> None:
        while not self.bus.queue.empty():
            self._handle(self.bus.queue.get_nowait())

    async def _run(self) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                getter = asyncio.create_task(self.bus.queue.get())
                done, _ = await asyncio.wait({getter, stopping}, timeout=self._max_seconds / 2,
                                             return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if getter in done:
                    self._handle(getter.result())
                    self._drain_queue()
                else:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if getter.done() and not getter.cancelled():  # got an item while being cancelled
                        self._handle(getter.result())
                due = time.monotonic() - self._last_flush >= self._max_seconds
                if not self._stopping.is_set() and (self.pipeline.pending >= self._max_events or due):
                    await self._flush()
        finally:
            stopping.cancel()

    async def _flush(self, *, final: bool = False) -> None:
        delay = 0.2
        while True:
            try:
                written = await asyncio.to_thread(self.pipeline.flush, close_windows=False)
                self._last_flush = time.monotonic()
                if written.inferences or written.feedback:
                    self.closer.wake()
                return
            except StorageError as exc:
                self.failed_flushes += 1
                log.error("flush_failed", error=str(exc)[:500], pending=self.pipeline.pending, final=final)
                if final and self.failed_flushes > 20:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
