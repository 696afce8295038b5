"""The Kafka transport against a real broker: every event arrives once, in the envelope the worker reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import TypeAdapter

from loopwatch import Emitter
from schemas.events import FeedbackEvent, InferenceEvent
from schemas.topics import Topics
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

INFERENCES = TypeAdapter(list[InferenceEvent])
FEEDBACK = TypeAdapter(list[FeedbackEvent])


def consume(bootstrap: str, topics: Iterable[str], events: int, timeout: float = 60.0) -> list[ConsumerRecord]:
    """All records from the start of ``topics`` once they hold ``events`` events (``timeout``: a hang)."""
    topics = list(topics)
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[ConsumerRecord] = []

    def all_there() -> bool:
        for batch in consumer.poll(timeout_ms=500).values():  # the poll itself waits for records
            records.extend(batch)
        return sum(record.value.count(b'"project":') for record in records) >= events

    try:
        wait_until(all_there, f"{events} events on {', '.join(topics)}", timeout=timeout, interval=0)
    finally:
        consumer.close()
    return records


class TestKafkaDelivery:
    """Volume, envelope format, keys and limits, end to end through the broker."""

    def test_twenty_thousand_inferences_and_feedback_arrive_exactly_once(
        self, kafka_bootstrap: str, kafka_topic_prefix: str
    ) -> None:
        max_events, max_bytes = 500, 300_000
        emitter = Emitter(
            "sdk-kafka",
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=kafka_topic_prefix,
            batch_max_events=max_events,
            batch_max_bytes=max_bytes,
            linger_seconds=5.0,  # batches close on the limits under test, not on time (flush() sends the rest)
        )
        models = {"chat-small": "", "chat-large": "x" * 1_500, "classifier": "y" * 40}  # model -> prompt
        sent_inferences: list[str] = []
        for i in range(20_000):
            model = list(models)[i % 3]
            sent_inferences.append(
                emitter.log_inference(model=model, prompt=models[model] or None, latency_ms=i % 900, input_tokens=i)
            )
        sent_feedback = [
            emitter.log_feedback(sent_inferences[i * 5], kind="rating", value=1 + i % 5) for i in range(3_000)
        ]
        assert emitter.flush(timeout=60)
        emitter.close()
        assert emitter.stats.sent == 23_000
        assert (emitter.stats.queued, emitter.stats.dropped, emitter.stats.failed, emitter.stats.invalid) == (
            0,
            0,
            0,
            0,
        )

        topics = Topics(kafka_topic_prefix)
        records = consume(kafka_bootstrap, [topics.inference, topics.feedback], 23_000)
        inference_ids: Counter[str] = Counter()
        feedback_ids: Counter[str] = Counter()
        counts: dict[str, list[int]] = {}
        for record in records:
            assert len(record.value) <= max_bytes
            if record.topic == topics.inference:
                events = INFERENCES.validate_json(record.value)
                assert record.value == INFERENCES.dump_json(events)  # the exact envelope the worker decodes
                assert {f"{event.project}/{event.model}" for event in events} == {record.key.decode()}
                inference_ids.update(event.event_id for event in events)
                counts.setdefault(record.key.decode(), []).append(len(events))
            else:
                assert record.topic == topics.feedback
                feedback = FEEDBACK.validate_json(record.value)
                assert record.value == FEEDBACK.dump_json(feedback)
                assert record.key == b"sdk-kafka"
                feedback_ids.update(event.feedback_id for event in feedback)
                counts.setdefault("feedback", []).append(len(feedback))
        assert all(1 <= count <= max_events for sizes in counts.values() for count in sizes)
        assert inference_ids == Counter(sent_inferences)
        assert feedback_ids == Counter(sent_feedback)
        assert max(counts["sdk-kafka/chat-small"]) == max_events  # the count limit was reached ...
        assert max(counts["sdk-kafka/chat-large"]) < max_events  # ... and the size limit split the big ones


class TestTrack:
    """track() times the call, records failures and hands the host its own exception back."""

    def test_latency_status_and_reraise(self, kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
        with Emitter("sdk-track", kafka_bootstrap=kafka_bootstrap, topic_prefix=kafka_topic_prefix) as emitter:
            with emitter.track(model="gpt-test", prompt="hello", provider="openai", tags={"route": "/chat"}) as ok:
                time.sleep(0.05)
                ok.response = "hi there"
                ok.input_tokens, ok.output_tokens = 5, 2
            boom = RuntimeError("upstream 500")
            with (
                pytest.raises(RuntimeError) as raised,
                emitter.track(model="gpt-test", prompt="again") as failed,
            ):
                raise boom
            assert raised.value is boom

            async def call() -> str:
                async with emitter.track(model="gpt-test") as call:
                    await asyncio.sleep(0)
                    call.response = "async"
                return call.event_id

            async_id = asyncio.run(call())
            feedback_id = emitter.log_feedback(ok.event_id, kind="thumbs", value=True)
            assert emitter.flush(timeout=30)
        assert emitter.stats.sent == 4

        topics = Topics(kafka_topic_prefix)
        records = consume(kafka_bootstrap, [topics.inference, topics.feedback], 4)
        events = {
            e.event_id: e for r in records if r.topic == topics.inference for e in INFERENCES.validate_json(r.value)
        }
        assert set(events) == {ok.event_id, failed.event_id, async_id}
        good, bad = events[ok.event_id], events[failed.event_id]
        assert good.status == "ok"
        assert good.error_type is None
        assert good.latency_ms is not None
        assert 50 <= good.latency_ms < 5_000
        assert (good.response, good.input_tokens, good.output_tokens) == ("hi there", 5, 2)
        assert (good.provider, good.tags) == ("openai", {"route": "/chat"})
        assert bad.status == "error"
        assert bad.error_type == "RuntimeError"
        assert bad.latency_ms is not None
        assert events[async_id].response == "async"
        (feedback,) = [e for r in records if r.topic == topics.feedback for e in FEEDBACK.validate_json(r.value)]
        assert (feedback.feedback_id, feedback.inference_id, feedback.value) == (feedback_id, ok.event_id, 1)


class TestExit:
    """An app that exits without close() still delivers what it logged (the atexit hook flushes)."""

    def test_events_logged_just_before_exit_are_delivered(self, kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
        script = (
            "from loopwatch import Emitter\n"
            f"emitter = Emitter('sdk-exit', kafka_bootstrap={kafka_bootstrap!r}, "
            f"topic_prefix={kafka_topic_prefix!r}, linger_seconds=30)\n"
            "for i in range(100):\n"
            "    emitter.log_inference(model='m', event_id=f'exit-{i}')\n"
        )  # linger 30 s: everything is still buffered when the interpreter exits
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root)}
        done = subprocess.run(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        records = consume(kafka_bootstrap, [Topics(kafka_topic_prefix).inference], 100, timeout=30)
        ids = [event.event_id for record in records for event in INFERENCES.validate_json(record.value)]
        assert sorted(ids) == sorted(f"exit-{i}" for i in range(100))
