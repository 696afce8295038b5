"""``loopwatch worker``: one faust worker process around the shared pipeline, stopped by SIGTERM/SIGINT.

On a signal the worker stops consuming, finishes (and writes) the batch in hand and exits; a kill -9
instead loses only uncommitted offsets, which Kafka redelivers to the next worker.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from schemas.settings import Settings
from schemas.topics import Topics
from streams import metrics
from streams.kafka.worker import KafkaWorker
from streams.monitors import Monitoring, topic_publisher
from streams.pipeline import Pipeline
from streams.storage import Storage

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, *, app_id: str | None = None) -> None:
    storage = Storage(settings)
    storage.migrate()
    worker = KafkaWorker(settings, Pipeline(storage, settings), app_id=app_id)
    topics = Topics(settings.topic_prefix)

    async def send(topic: str, value: bytes, key: bytes | None = None) -> None:
        await worker.app.send(topic, key=key, value=value)

    monitoring = Monitoring(storage, settings, publish=topic_publisher(send, topics))
    if worker.pipeline.stats is not None:
        worker.pipeline.stats.on_rows.append(monitoring.on_rows)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await worker.start()
    await monitoring.start()
    stop_metrics = metrics.serve(settings.metrics_host, settings.metrics_port)
    log.info("worker_started", bootstrap=settings.kafka_bootstrap, prefix=settings.topic_prefix)
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await monitoring.stop()
        if stop_metrics is not None:
            stop_metrics()
        storage.close()
        log.info("worker_stopped", messages=worker.processed_messages)
