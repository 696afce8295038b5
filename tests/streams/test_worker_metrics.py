"""A Kafka worker's metrics against the real broker: consumer lag, events taken in, its metrics port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from loopwatch._server import free_port
from schemas.settings import Settings
from schemas.topics import Topics
from streams.kafka.worker import KafkaWorker
from tests.metrics_text import Scrape, scrape_process
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]


def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for key, value in messages:
        producer.send(Topics(settings.topic_prefix).inference, key=key, value=value)
    producer.flush()
    producer.close()


def inference(i: int) -> tuple[bytes, bytes]:
    model = f"m{i % 4}"
    return f"p/{model}".encode(), orjson.dumps([{"project": "p", "model": model, "event_id": f"e-{i}"}])


def lag(scrape: Scrape, topic: str) -> dict[str, float]:
    """Lag per partition of ``topic``."""
    return {
        dict(labels)["partition"]: value
        for labels, value in scrape.series("loopwatch_kafka_consumer_lag").items()
        if dict(labels)["topic"] == topic
    }


class TestConsumerLag:
    """Lag shows the messages a stuck worker has not committed, and drops to 0 once they are written."""

    def test_lag_while_writes_fail_then_drained(
        self, kafka_settings: Settings, run_worker: Callable[..., KafkaWorker]
    ) -> None:
        worker = run_worker()
        storage = worker.pipeline.storage
        db = storage.database
        topic = Topics(kafka_settings.topic_prefix).inference
        before = scrape_process()
        storage.command(f"RENAME TABLE {db}.inferences TO {db}.inferences_away")  # every flush fails: no commit
        try:
            produce(kafka_settings, [inference(i) for i in range(10)] + [(b"p/m0", b"{not json")])
            wait_until(lambda: sum(lag(scrape_process(), topic).values()) == 11, "the lag of 11 stuck messages")
            wait_until(lambda: scrape_process().delta(before, "loopwatch_flush_failures_total") >= 1, "a failed flush")
            assert sum(lag(scrape_process(), topic).values()) == 11  # nothing committed while writes fail
        finally:
            storage.command(f"RENAME TABLE {db}.inferences_away TO {db}.inferences")
        wait_until(lambda: set(lag(scrape_process(), topic).values()) == {0.0}, "the lag to drop to 0")
        after = scrape_process()
        assert set(lag(after, topic)) == {"0", "1"}  # both assigned partitions are reported
        assert after.delta(before, "loopwatch_events_accepted_total", kind="inference", transport="kafka") == 10
        assert after.delta(before, "loopwatch_dead_letters_total", source="inference") == 1
        assert after.delta(before, "loopwatch_events_written_total", table="inferences") == 10
        assert after.delta(before, "loopwatch_events_written_total", table="dead_letters") == 1


class TestMetricsPort:
    """``loopwatch worker`` serves its metrics on LOOPWATCH_METRICS_PORT (loopback by default)."""

    def test_worker_process_serves_metrics(self, kafka_settings: Settings, tmp_path: Path) -> None:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "LOOPWATCH_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap or "",
            "LOOPWATCH_TOPIC_PREFIX": kafka_settings.topic_prefix,
            "LOOPWATCH_KAFKA_PARTITIONS": "2",
            "LOOPWATCH_DATA_DIR": str(tmp_path / "worker"),
            "LOOPWATCH_LOG_LEVEL": "warning",
            "LOOPWATCH_METRICS_PORT": str(port),
        }
        produce(kafka_settings, [inference(i) for i in range(5)])
        worker = subprocess.Popen([sys.executable, "-m", "loopwatch", "worker"], cwd=REPO, env=env)

        def scrape() -> Scrape | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    return Scrape(response.read().decode())
            except OSError:
                assert worker.poll() is None, "the worker exited"
                return None

        def caught_up() -> bool:
            scraped = scrape()
            return (
                scraped is not None
                and scraped.value("loopwatch_events_accepted_total", kind="inference", transport="kafka") == 5
                and scraped.value("loopwatch_events_written_total", table="inferences") == 5
                and set(lag(scraped, Topics(kafka_settings.topic_prefix).inference).values()) == {0.0}
            )

        try:
            wait_until(caught_up, "the worker's metrics to show its 5 events", timeout=120)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0
