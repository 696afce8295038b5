"""What a running API process holds: storage, the publisher for accepted events, keys, the runner.

Built in the FastAPI lifespan (never at import time) and reachable from routes through ``deps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from api.keys import KeyStore
from schemas.settings import Settings
from schemas.topics import Topics
from streams import metrics
from streams.bus import Publisher
from streams.embedded import EmbeddedRunner
from streams.monitors import Monitoring, topic_publisher
from streams.pipeline import Pipeline
from streams.stats.references import ReferenceStore
from streams.storage import Storage

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    storage: Storage
    keys: KeyStore
    publisher: Publisher
    references: ReferenceStore
    runner: EmbeddedRunner | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.storage.ping() and (self.runner is None or self.runner.running)


async def start_services(
    settings: Settings, storage: Storage | None = None, *, with_worker: bool = False
) -> Services:
    """Open storage, apply migrations and start the embedded runner, or the Kafka publisher (and, with
    ``with_worker``, a Kafka worker in this process: ``loopwatch up``)."""
    storage = storage or Storage(settings)
    storage.migrate()
    keys = KeyStore(storage)
    if settings.embedded:
        pipeline = Pipeline(storage, settings)
        monitoring = Monitoring(storage, settings)
        await monitoring.start()
        if pipeline.stats is not None:
            pipeline.stats.on_rows.append(monitoring.on_rows)
        runner = EmbeddedRunner(pipeline, settings)
        metrics.watch_queue(runner, lambda live: live.bus.queue.qsize())
        await runner.start()
        log.info("services_started", mode="embedded", database=storage.database)
        references = pipeline.stats.references if pipeline.stats is not None else ReferenceStore(storage)
        return Services(settings, storage, keys, runner.bus, references, runner, {"monitoring": monitoring})
    from streams.kafka.publisher import KafkaPublisher  # imported lazily: embedded mode needs no Kafka

    publisher = KafkaPublisher(settings)
    await publisher.start()
    monitoring = Monitoring(
        storage,
        settings,
        publish=topic_publisher(publisher.send_raw, Topics(settings.topic_prefix)),
        sweep_seconds=300.0 if with_worker else None,
    )
    await monitoring.start()
    extras: dict[str, Any] = {"kafka_publisher": publisher, "monitoring": monitoring}
    references = ReferenceStore(storage)
    if with_worker:
        from streams.kafka.worker import KafkaWorker

        worker = KafkaWorker(settings, Pipeline(storage, settings))
        if worker.pipeline.stats is not None:
            worker.pipeline.stats.on_rows.append(monitoring.on_rows)
            references = worker.pipeline.stats.references  # one reference store (and cache) per process
        await worker.start()
        extras["kafka_worker"] = worker
    log.info("services_started", mode="kafka", database=storage.database, worker=with_worker)
    return Services(settings, storage, keys, publisher, references, None, extras)


async def stop_services(services: Services, *, close_storage: bool = True) -> None:
    if services.runner is not None:
        await services.runner.stop()
    worker = services.extras.get("kafka_worker")
    if worker is not None:
        await worker.stop()
    monitoring = services.extras.get("monitoring")
    if monitoring is not None:
        await monitoring.stop()
    publisher = services.extras.get("kafka_publisher")
    if publisher is not None:
        await publisher.stop()
    if close_storage:
        services.storage.close()
    log.info("services_stopped")
