"""Writing the pipeline's buffers until they are stored: the one retry loop both runners use.

A write that fails keeps its buffers (``EventSink.flush``), so trying again is always safe. The
embedded runner's requests wait for their write and a Kafka batch's offsets wait for it too, so a
failure is retried with backoff rather than dropped; only a stopping runner gives up, after a few
final attempts, and says so. Events ClickHouse refuses for their content never get here as failures:
retrying them could only fail again, so the flush sets them aside as dead letters (``EventSink``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from streams.pipeline import Pipeline
from streams.sink import FlushStats
from streams.storage import StorageError

log = structlog.get_logger(__name__)

FIRST_DELAY = 0.2  # seconds before the first retry; doubles up to MAX_DELAY
MAX_DELAY = 10.0
# Writes tried by a stopping runner before its buffered events are given up (embedded: their requests
# get no 202; Kafka: their offsets stay uncommitted and the next worker reads them again).
FINAL_ATTEMPTS = 5


async def write_buffers(
    pipeline: Pipeline, *, attempts: int | None = None, stopping: Callable[[], bool] | None = None
) -> FlushStats | None:
    """Flush ``pipeline`` (in a thread: chDB releases the GIL) until the write succeeds.

    Any error is retried, not only ``StorageError``: a runner whose write loop died would leave every
    later request (or Kafka batch) waiting. ``attempts`` bounds the tries (the last error is raised);
    ``stopping`` returning true ends the loop after a failure with ``None`` (the buffers are intact).
    """
    delay, failures = FIRST_DELAY, 0
    while True:
        try:
            return await asyncio.to_thread(pipeline.flush)
        except Exception as exc:
            failures += 1
            log.error(
                "flush_failed",
                error=str(exc)[:500],
                error_type=type(exc).__name__,
                pending=pipeline.pending,
                retry_in=delay,
                exc_info=not isinstance(exc, StorageError),
            )
            if attempts is not None and failures >= attempts:
                raise
            if stopping is not None and stopping():
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
