"""Kafka-side fixtures: a worker running in this process (chDB allows one engine per process)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings
from streams.kafka.admin import delete_topics
from streams.kafka.worker import KafkaWorker
from streams.pipeline import Pipeline
from streams.storage import Storage
from tests.conftest import make_settings


class LoopThread:
    """An asyncio loop on a background thread, for running async services from sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def kafka_settings(data_dir: Path, kafka_bootstrap: str) -> Iterator[Settings]:
    settings = make_settings(
        data_dir, kafka_bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}", kafka_partitions=2
    )
    yield settings
    asyncio.run(delete_topics(settings))


@pytest.fixture
def run_worker(kafka_settings: Settings, loop_thread: LoopThread) -> Iterator[Callable[..., KafkaWorker]]:
    """Start a KafkaWorker in this process; stopped (and its database dropped) after the test."""
    started: list[KafkaWorker] = []

    def start(settings: Settings | None = None, pipeline: type[Pipeline] = Pipeline) -> KafkaWorker:
        settings = settings or kafka_settings
        storage = Storage(settings)
        storage.migrate()
        worker = KafkaWorker(settings, pipeline(storage, settings))
        loop_thread.run(worker.start())
        started.append(worker)
        return worker

    yield start
    for worker in started:
        loop_thread.run(worker.stop())
        worker.pipeline.storage.command(f"DROP DATABASE IF EXISTS {worker.pipeline.storage.database}")
