"""``loopwatch worker``: one faust worker process (built by ``streams.runtime``), stopped by SIGTERM/SIGINT.

On a signal the worker stops consuming, finishes (and writes) the batch in hand and exits; a kill -9
instead loses only uncommitted offsets, which Kafka redelivers to the next worker.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from schemas.settings import Settings
from streams.runtime import start_runtime

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, *, app_id: str | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runtime = await start_runtime(settings, serve_api=False, app_id=app_id)
    log.info("worker_started", bootstrap=settings.kafka_bootstrap, prefix=settings.topic_prefix)
    try:
        await stop.wait()
    finally:
        processed = runtime.worker.processed_messages if runtime.worker is not None else 0
        await runtime.stop()
        log.info("worker_stopped", messages=processed)
