"""The composition root: the one place that assembles what a loopwatch process runs.

Every entry point builds its process here — ``loopwatch serve`` (embedded or Kafka mode), ``up``
(API + Kafka worker in one process), ``worker``, the demo, the benches and the tests — so the wiring
is written once and reads top to bottom like the data flow::

    storage ─migrate─▶ pipeline (decode ▸ price ▸ sink ▸ windows ▸ StatsEngine)
                          └─ StatsEngine.on_rows ─▶ Monitoring (evaluate ▸ store ▸ deliver)
    embedded:  API ─▶ InProcessBus ─▶ EmbeddedRunner ─▶ pipeline
    kafka:     API ─▶ KafkaPublisher ─▶ topics ─▶ KafkaWorker (this or another process) ─▶ pipeline

A ``Runtime`` holds each part as a typed attribute (``None`` where this kind of process has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from schemas.settings import Settings
from schemas.topics import Topics
from streams import metrics
from streams.bus import Publisher
from streams.embedded import EmbeddedRunner
from streams.evals import Evaluations
from streams.keys import KeyStore
from streams.monitors import Monitoring, topic_publisher
from streams.monitors.service import SWEEP_SECONDS
from streams.pipeline import Pipeline
from streams.privacy import Privacy, RedactingPublisher
from streams.stats.references import ReferenceStore
from streams.storage import Storage

if TYPE_CHECKING:  # imported at run time only in Kafka mode: embedded mode needs no Kafka client
    from streams.kafka.publisher import KafkaPublisher
    from streams.kafka.worker import KafkaWorker

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """What one running process holds. Build it with ``start_runtime``, end it with ``stop``."""

    settings: Settings
    storage: Storage
    keys: KeyStore
    monitoring: Monitoring
    # The process's one reference store: the stats engine's when this process computes statistics,
    # so a reference saved through the API is used by the next window at once.
    references: ReferenceStore
    loop: asyncio.AbstractEventLoop
    # Where ingest hands accepted events: the embedded runner's bus or the Kafka publisher (None in a
    # worker-only process, which serves no ingest).
    publisher: Publisher | None = None
    runner: EmbeddedRunner | None = None
    kafka_publisher: KafkaPublisher | None = None
    worker: KafkaWorker | None = None
    stop_metrics_server: Callable[[], None] | None = None
    privacy: Privacy | None = None  # redaction policies (streams.privacy); every process that ingests has one
    evaluations: Evaluations | None = None  # online evaluators (streams.evals); their worker where events are consumed

    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline this process runs, if it consumes events at all (not an API-only replica)."""
        if self.runner is not None:
            return self.runner.pipeline
        return self.worker.pipeline if self.worker is not None else None

    @property
    def ready(self) -> bool:
        return self.storage.ping() and (self.runner is None or self.runner.running)

    async def wait_idle(self, timeout: float = 30.0, *, close_windows: bool = True) -> None:
        """Embedded mode: until every accepted event is written (and due windows are closed)."""
        if self.runner is not None:
            await self.runner.wait_idle(timeout, close_windows=close_windows)

    async def stop(self, *, close_storage: bool = True) -> None:
        """Stop consuming and write what is buffered, then let alert deliveries finish, then close.

        Each step runs even when an earlier one raised (a final write that gave up), so deliveries,
        the producer and storage are still closed; the first error is raised at the end."""
        try:
            if self.evaluations is not None:  # first: its worker publishes scores into the runner
                await self.evaluations.stop()
            if self.runner is not None:
                await self.runner.stop()
            if self.worker is not None:
                await self.worker.stop()
        finally:
            try:
                await self.monitoring.stop()
                if self.kafka_publisher is not None:
                    await self.kafka_publisher.stop()
            finally:
                if self.stop_metrics_server is not None:
                    self.stop_metrics_server()
                if close_storage:
                    self.storage.close()
                log.info("runtime_stopped")


async def start_runtime(
    settings: Settings,
    storage: Storage | None = None,
    *,
    serve_api: bool = True,
    with_worker: bool = False,
    app_id: str | None = None,
) -> Runtime:
    """Open storage, apply migrations and start this process's parts (see ``_start``).

    A step that fails stops what the steps before it started, in reverse order, then the error is
    raised: a failed start-up leaves no consumer, producer, task or thread running and closes the
    storage it opened (a ``storage`` passed in stays the caller's to close), so the process can exit.
    """
    async with contextlib.AsyncExitStack() as started:
        runtime = await _start(settings, storage, started, serve_api=serve_api, with_worker=with_worker, app_id=app_id)
        started.pop_all()  # all running: from here ``Runtime.stop`` ends them
        return runtime


async def _start(
    settings: Settings,
    storage: Storage | None,
    started: contextlib.AsyncExitStack,
    *,
    serve_api: bool,
    with_worker: bool,
    app_id: str | None,
) -> Runtime:
    """Start this process's parts, registering how to stop each in ``started`` before starting it
    (a part that fails half-way is stopped too).

    * embedded mode (no ``LOOPWATCH_KAFKA_BOOTSTRAP``): the API feeds an ``EmbeddedRunner``;
    * Kafka mode, ``serve_api``: the API publishes to Kafka; with ``with_worker`` a ``KafkaWorker``
      consumes in the same process (``loopwatch up``);
    * Kafka mode, ``serve_api=False``: a worker process (``loopwatch worker``), which also serves
      Prometheus metrics on ``LOOPWATCH_METRICS_PORT``.

    Alert delivery runs where windows are evaluated (and sweeps for lost hand-offs there); an
    API-only replica stores and serves monitors but neither evaluates nor delivers.
    """
    if storage is None:
        storage = Storage(settings)
        started.push_async_callback(_undo, "storage", storage.close)
    storage.migrate()
    metrics.watch_storage(storage, Storage.tracked_memory)
    loop = asyncio.get_running_loop()
    keys = KeyStore(storage)
    if settings.embedded:
        monitoring = Monitoring(storage, settings)
        runner = EmbeddedRunner(Pipeline(storage, settings), settings)
        _evaluate_windows(runner.pipeline, monitoring)
        metrics.watch_queue(runner, lambda live: live.bus.queue.qsize())
        started.push_async_callback(_undo, "monitoring", monitoring.stop)
        await monitoring.start()
        started.push_async_callback(_undo, "runner", runner.stop)
        await runner.start()
        log.info("runtime_started", mode="embedded", database=storage.database)
        references = _references(runner.pipeline, storage)
        privacy = runner.pipeline.privacy
        publisher = RedactingPublisher(runner.bus, privacy)
        evaluations = await _evaluations(started, storage, settings, runner.pipeline, publisher.publish_feedback)
        return Runtime(
            settings,
            storage,
            keys,
            monitoring,
            references,
            loop,
            publisher=publisher,
            runner=runner,
            privacy=privacy,
            evaluations=evaluations,
        )

    from streams.kafka.publisher import KafkaPublisher
    from streams.kafka.worker import KafkaWorker

    consumes = with_worker or not serve_api
    kafka_publisher = KafkaPublisher(settings) if serve_api else None
    worker = KafkaWorker(settings, Pipeline(storage, settings), app_id=app_id) if consumes else None
    if kafka_publisher is not None:
        send = kafka_publisher.send_raw
    elif worker is not None:
        send = worker.send_raw
    else:  # not reachable: a process that serves no API consumes
        raise ValueError("a Kafka-mode process needs the API or a worker")
    monitoring = Monitoring(
        storage,
        settings,
        publish=topic_publisher(send, Topics(settings.topic_prefix)),  # alerts also go to their topics
        sweep_seconds=SWEEP_SECONDS if consumes else None,
    )
    # Undone last (callbacks run in reverse): a stopping worker's final window close still delivers alerts.
    started.push_async_callback(_undo, "monitoring", monitoring.stop)
    if kafka_publisher is not None:
        started.push_async_callback(_undo, "kafka_publisher", kafka_publisher.stop)
        await kafka_publisher.start()
    if worker is not None:
        _evaluate_windows(worker.pipeline, monitoring)
        started.push_async_callback(_undo, "worker", worker.stop)
        await worker.start()
    await monitoring.start()
    stop_metrics_server = None if serve_api else metrics.serve(settings.metrics_host, settings.metrics_port)
    references = _references(worker.pipeline, storage) if worker is not None else ReferenceStore(storage)
    privacy = worker.pipeline.privacy if worker is not None else Privacy(storage, settings)
    scores = None
    if worker is not None:  # evaluator scores go to the feedback topic, like any feedback
        scores = kafka_publisher.publish_feedback if kafka_publisher is not None else worker.publish_feedback
    evaluations = await _evaluations(started, storage, settings, worker.pipeline if worker else None, scores)
    log.info("runtime_started", mode="kafka", database=storage.database, api=serve_api, worker=consumes)
    return Runtime(
        settings,
        storage,
        keys,
        monitoring,
        references,
        loop,
        publisher=RedactingPublisher(kafka_publisher.redacted(), privacy) if kafka_publisher is not None else None,
        kafka_publisher=kafka_publisher,
        worker=worker,
        stop_metrics_server=stop_metrics_server,
        privacy=privacy,
        evaluations=evaluations,
    )


async def _undo(part: str, stop: Callable[[], object]) -> None:
    """Stop one part after a failed start-up. Its own error is logged, never raised: the start-up's
    error is the one to report, and the parts started before it must still be stopped."""
    log.warning("start_failed_stopping", part=part)
    try:
        result = stop()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("start_failed_stop_failed", part=part)


async def _evaluations(
    started: contextlib.AsyncExitStack,
    storage: Storage,
    settings: Settings,
    pipeline: Pipeline | None,
    publish: Callable[..., Awaitable[None]] | None,
) -> Evaluations:
    """Online evaluators: every process serves them; where events are consumed the pipeline samples
    calls for them and a worker evaluates the queue, its scores published as feedback."""
    evaluations = Evaluations(storage, settings, claims=not settings.embedded)
    if pipeline is not None:
        pipeline.sampler = evaluations.sampler
    started.push_async_callback(_undo, "evaluations", evaluations.stop)
    await evaluations.start(publish if pipeline is not None else None)
    return evaluations


def _references(pipeline: Pipeline, storage: Storage) -> ReferenceStore:
    return pipeline.stats.references if pipeline.stats is not None else ReferenceStore(storage)


def _evaluate_windows(pipeline: Pipeline, monitoring: Monitoring) -> None:
    """Closed windows' rows go to the monitors (``StatsEngine.on_rows``, called from its thread)."""
    if pipeline.stats is not None:
        pipeline.stats.on_rows.append(monitoring.on_rows)
