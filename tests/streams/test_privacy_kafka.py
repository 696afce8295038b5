"""SDK envelopes sent straight to Kafka are redacted by a real worker before storage, logs and the DLQ."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer
from structlog.testing import capture_logs

from schemas.settings import Settings
from schemas.topics import Topics
from streams.kafka.worker import KafkaWorker
from tests.metrics_text import wait_until
from tests.privacy_samples import PLANTED, clear_values, every_entity_text, planted_text

pytestmark = pytest.mark.kafka


def _assert_clean(text: object) -> None:
    for value in clear_values():
        assert value not in str(text), value


class TestWorkerRedacts:
    """A real KafkaWorker consuming envelopes from a real broker."""

    def test_envelope_and_its_dead_letter(self, kafka_settings: Settings, run_worker) -> None:
        worker: KafkaWorker = run_worker()
        storage, db = worker.pipeline.storage, worker.pipeline.storage.database
        topics = Topics(kafka_settings.topic_prefix)
        text = every_entity_text()
        envelope = [
            {"project": "p", "model": "m", "event_id": "k-ok", "prompt": text, "response": "to " + text},
            {"project": "p", "model": "m", "event_id": "k-bad", "latency_ms": -1, "prompt": text},
        ]
        producer = KafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap)
        with capture_logs() as logs:
            producer.send(topics.inference, value=orjson.dumps(envelope), key=b"p/m")
            producer.flush()
            producer.close()
            wait_until(
                lambda: (
                    storage.scalar(f"SELECT count() FROM {db}.inferences FINAL") == 1
                    and storage.scalar(f"SELECT count() FROM {db}.dead_letters") == 1
                ),
                "the event and the dead letter stored",
                timeout=120,
            )
        (row,) = storage.rows(f"SELECT prompt, response FROM {db}.inferences FINAL")
        for value in (row["prompt"], row["response"]):
            _assert_clean(value)
            assert all(f"<{kind}>" in value for kind in PLANTED)
        (letter,) = storage.rows(f"SELECT payload FROM {db}.dead_letters")
        _assert_clean(letter)
        assert "<EMAIL>" in letter["payload"]
        consumer = KafkaConsumer(
            topics.dlq,
            bootstrap_servers=kafka_settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3_000,
        )
        dlq = [json.loads(record.value) for record in consumer]
        consumer.close()
        assert len(dlq) == 1
        _assert_clean(dlq)
        _assert_clean(repr(logs))

    @settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(prompts=st.lists(planted_text(), min_size=20, max_size=20))
    def test_planted_prompts(self, kafka_settings: Settings, run_worker, prompts: list[tuple]) -> None:
        """Twenty generated prompts with planted entities, one envelope (one worker per example)."""
        worker: KafkaWorker = run_worker()
        storage, db = worker.pipeline.storage, worker.pipeline.storage.database
        events = [
            {"project": "p", "model": "m", "event_id": f"h-{i}", "prompt": text} for i, (text, _) in enumerate(prompts)
        ]
        producer = KafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap)
        producer.send(Topics(kafka_settings.topic_prefix).inference, value=orjson.dumps(events), key=b"p/m")
        producer.flush()
        producer.close()
        count = f"SELECT count() FROM {db}.inferences FINAL"
        wait_until(lambda: storage.scalar(count) == len(events), "the events stored", timeout=120)
        stored = {
            row["event_id"]: row["prompt"]
            for row in storage.rows(f"SELECT event_id, prompt FROM {db}.inferences FINAL")
        }
        for index, (_, entities) in enumerate(prompts):
            _assert_clean(stored[f"h-{index}"])
            assert all(f"<{kind}>" in stored[f"h-{index}"] for kind, _ in entities)
