"""The embedded runner: the pipeline fed by the in-process bus, inside the API's event loop.

Three tasks, so no step waits for another it does not depend on:

* the consumer moves batches off the queue into the pipeline's buffers (cheap, on the loop);
* the flusher writes the buffers (the write runs in a thread and releases the GIL, so the loop keeps
  serving requests) and then acknowledges the requests whose events that write contained;
* a ``WindowCloser`` computes window statistics after the writes.

Group commit: in the default ``ingest_ack="written"`` mode every request waits for the write of its
events, so the flusher writes as soon as the oldest waiting request is ``commit_interval_seconds``
old (or the buffers are full); requests arriving during a write share the next one, so under load
writes grow instead of multiplying. With ``ingest_ack="queued"`` nobody waits and the buffers are
written when full or ``batch_max_seconds`` old.

A failed flush is retried with backoff (the buffers are kept, the requests keep waiting until their
``ack_timeout_seconds``); events storage refuses for their content are dead letters instead, and their
requests fail with ``EventsRefused`` (the API answers 422 with the reason). ``stop`` drains the queue
and flushes, so an orderly shutdown loses nothing that was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import cast

import structlog

from schemas.settings import Settings
from streams.bus import Envelope, EventsRefused, InProcessBus
from streams.closer import WindowCloser
from streams.pipeline import Pipeline
from streams.sink import Refused
from streams.writes import FINAL_ATTEMPTS, write_buffers

log = structlog.get_logger(__name__)


class EmbeddedRunner:
    """Owns the in-process bus and the tasks that drain it into storage."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.bus = InProcessBus(
            settings.queue_max_batches,
            wait_for_write=settings.ingest_ack == "written",
            ack_timeout=settings.ack_timeout_seconds,
        )
        self._max_events = settings.batch_max_events
        self._max_seconds = settings.batch_max_seconds
        self._commit_interval = settings.commit_interval_seconds
        self._stop_grace = settings.stop_grace_seconds
        self._consumer: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flush_due = asyncio.Event()
        self._stopping = False
        # Buffered events at most (more while storage is behind would only grow memory: the bounded
        # queue makes publishers wait instead).
        self._max_buffered = 4 * settings.batch_max_events
        self._room = asyncio.Event()
        self.closer = WindowCloser(pipeline)

    async def start(self) -> None:
        await asyncio.to_thread(self.pipeline.start)
        self._consumer = asyncio.create_task(self._consume(), name="loopwatch-embedded-consumer")
        self._flusher = asyncio.create_task(self._flush_loop(), name="loopwatch-embedded-flusher")
        self.closer.start()

    @property
    def running(self) -> bool:
        return all(task is not None and not task.done() for task in (self._consumer, self._flusher))

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
        await self.closer.stop(self._stop_grace)

    async def wait_idle(self, timeout: float = 30.0, *, close_windows: bool = True) -> None:
        """Wait until every accepted event is written and (unless told not to) due windows are closed:
        tests and the demo read back after this."""
        deadline = time.monotonic() + timeout
        while self.bus.queue.qsize() or self.pipeline.pending:
            if time.monotonic() > deadline:
                raise TimeoutError("embedded runner did not go idle")
            self._flush_due.set()
            await asyncio.sleep(0.02)
        await self._flush()
        if close_windows:
            await self.closer.close_now()

    def _handle(self, envelope: Envelope) -> None:
        try:  # the envelope's future travels with its events and comes back from the flush that wrote them
            if envelope.kind == "inference":
                self.pipeline.accept_inferences(envelope.events, envelope.written)  # type: ignore[arg-type]
            else:
                self.pipeline.accept_feedback(envelope.events, envelope.written)  # type: ignore[arg-type]
        except Exception as exc:  # one batch must not stop the consumer (nothing of it was buffered)
            log.exception("ingest_batch_failed", kind=envelope.kind, events=len(envelope.events))
            if envelope.written is not None and not envelope.written.done():
                envelope.written.set_exception(exc)  # its request answers 500, no 202

    def _drain_queue(self) -> None:
        while not self.bus.queue.empty() and self.pipeline.pending < self._max_buffered:
            self._handle(self.bus.queue.get_nowait())

    async def _consume(self) -> None:
        while True:
            self._handle(await self.bus.queue.get())
            self._drain_queue()
            self._flush_due.set()  # the flusher re-reads its deadline
            while self.pipeline.pending >= self._max_buffered:  # storage is behind: the bounded queue pushes back
                self._room.clear()
                await self._room.wait()

    def _flush_in(self) -> float:
        """Seconds until the buffers are due to be written: 0 when full, else when the oldest buffered
        event has waited ``commit_interval`` (someone waits for its write) or ``batch_max_seconds``."""
        pending = self.pipeline.pending
        if not pending:
            return self._max_seconds
        if pending >= self._max_events:
            return 0.0
        sink = self.pipeline.sink
        linger = self._commit_interval if sink.waiting else self._max_seconds
        return linger - sink.pending_for(time.monotonic())

    async def _flush_loop(self) -> None:
        while not self._stopping:
            delay = self._flush_in()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_due.wait(), timeout=delay)
                self._flush_due.clear()
                continue
            await self._flush()

    async def _flush(self, *, final: bool = False) -> None:
        """Write the buffers, then acknowledge the requests whose events that write stored.

        Retried until written (``streams.writes``); ``stop`` makes ``FINAL_ATTEMPTS`` and then gives up,
        and a flusher interrupted by ``stop`` returns with the buffers intact for those final attempts.
        """
        written = await write_buffers(
            self.pipeline,
            attempts=FINAL_ATTEMPTS if final else None,
            stopping=lambda: self._stopping and not final,
        )
        if written is None:
            return
        _settle(written.acks)
        _refuse(written.refused)
        self._room.set()
        if written.inferences or written.feedback:
            self.closer.wake()


def _settle(acks: Sequence[object]) -> None:
    for ack in acks:
        future = cast("asyncio.Future[None]", ack)
        if not future.done():
            future.set_result(None)


def _refuse(refused: Sequence[Refused]) -> None:
    """Requests some of whose events storage refused learn why (their request answers 422)."""
    for refusal in refused:
        future = cast("asyncio.Future[None]", refusal.ack)
        if not future.done():
            future.set_exception(EventsRefused(refusal.reasons))
            future.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark the exception seen: a request that timed out before its refusal no longer awaits it."""
    future.exception()
