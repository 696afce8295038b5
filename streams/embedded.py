"""The embedded runner: the pipeline fed by the in-process bus, inside the API's event loop.

Three tasks, so no step waits for another it does not depend on:

* the consumer moves batches off the queue into the pipeline's buffers (cheap, on the loop);
* the flusher writes the buffers whenever they are large or old enough, back to back while there is a
  backlog (the write runs in a thread and releases the GIL, so the loop keeps serving requests);
* a ``WindowCloser`` computes window statistics after the writes.

A failed flush is retried with backoff (the buffers are kept), and ``stop`` drains the queue and
flushes, so an orderly shutdown loses nothing that was accepted.
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
    """Owns the in-process bus and the tasks that drain it into storage."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.bus = InProcessBus(settings.queue_max_batches)
        self._max_events = settings.batch_max_events
        self._max_seconds = settings.batch_max_seconds
        self._consumer: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flush_due = asyncio.Event()
        self._stopping = False
        self.failed_flushes = 0
        self.closer = WindowCloser(pipeline, max(1.0, self._max_seconds * 2))

    async def start(self) -> None:
        if self.pipeline.stats is not None:
            await asyncio.to_thread(self.pipeline.stats.recover)
        self._consumer = asyncio.create_task(self._consume(), name="loopwatch-embedded-consumer")
        self._flusher = asyncio.create_task(self._flush_loop(), name="loopwatch-embedded-flusher")
        self.closer.start()

    @property
    def running(self) -> bool:
        return self._consumer is not None and not self._consumer.done()

    async def stop(self) -> None:
        """Drain everything accepted so far into storage, then stop."""
        self._stopping = True  # a flag, not cancel(), for the flusher: it may be mid-write
        if self._consumer is not None:
            self._consumer.cancel()  # it only ever waits in queue.get(), which loses nothing when cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        self._flush_due.set()
        if self._flusher is not None:
            await self._flusher
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
            self._flush_due.set()
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

    async def _consume(self) -> None:
        while True:
            self._handle(await self.bus.queue.get())
            self._drain_queue()
            if self.pipeline.pending >= self._max_events:
                self._flush_due.set()

    async def _flush_loop(self) -> None:
        """Flush when the buffers are full (woken) or ``batch_max_seconds`` old (timeout)."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_due.wait(), timeout=self._max_seconds)
            self._flush_due.clear()
            if self.pipeline.pending and not self._stopping:
                await self._flush()

    async def _flush(self, *, final: bool = False) -> None:
        delay = 0.2
        while True:
            try:
                written = await asyncio.to_thread(self.pipeline.flush, close_windows=False)
                if written.inferences or written.feedback:
                    self.closer.wake()
                return
            except StorageError as exc:
                self.failed_flushes += 1
                log.error("flush_failed", error=str(exc)[:500], pending=self.pipeline.pending, final=final)
                if final and self.failed_flushes > 20:
                    raise
                if self._stopping and not final:
                    return  # stop() makes the final attempt, with the buffers intact
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
