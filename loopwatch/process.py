"""The composition root of every loopwatch process: what ``serve``, ``up`` and ``worker`` run.

``streams.runtime.start_runtime`` assembles a process's parts (storage, pipeline, monitors, Kafka
clients); this module decides which process is started and hands the running ``Runtime`` to the API,
which starts nothing itself:

    loopwatch serve  ─▶ serving_app(settings)                 API + embedded processors (or API-only in Kafka mode)
    loopwatch up     ─▶ serving_app(settings, with_worker=True) API + a Kafka worker in one process
    loopwatch worker ─▶ run_worker(settings)                  a Kafka worker, no API

Under uvicorn the runtime starts with the server and stops after it (the app's lifespan enters the
context made here), so SIGTERM first stops taking requests, then writes what was accepted.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from api import create_app
from api.app import RuntimeContext
from schemas.settings import Settings
from streams.runtime import Runtime, start_runtime

log = structlog.get_logger(__name__)


def runtime_context(settings: Settings, *, with_worker: bool = False) -> RuntimeContext:
    """A context that starts this process's runtime on entry and stops it on exit."""

    @asynccontextmanager
    async def running() -> AsyncIterator[Runtime]:
        runtime = await start_runtime(settings, with_worker=with_worker)
        try:
            yield runtime
        finally:
            await runtime.stop()

    return running


def serving_app(settings: Settings, *, with_worker: bool = False) -> FastAPI:
    """The API of a process that owns its runtime: started with the server, stopped after it."""
    return create_app(runtime_context(settings, with_worker=with_worker))


async def run_worker(settings: Settings, *, app_id: str | None = None) -> None:
    """``loopwatch worker``: one faust worker, stopped by SIGTERM/SIGINT.

    On a signal the worker stops consuming, finishes (and writes) the batch in hand and exits; a kill -9
    instead loses only uncommitted offsets, which Kafka redelivers to the next worker.
    """
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
