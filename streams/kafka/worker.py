"""The faust worker: agents consume the inference and feedback topics and feed the shared pipeline.

At-least-once: ``take_events`` acks a batch only after the loop body returns, and the body returns
only once the pipeline's flush has written the batch to ClickHouse (a failing write is retried, never
skipped; an event ClickHouse refuses for its content is a dead letter instead, see ``EventSink``), so
a committed offset always points past written rows. A crash between write and commit
replays the batch; event ids make the replay collapse. Window statistics are a ``WindowCloser``'s
job, woken by each flush: they never delay a batch or its commit, and a crash before a window closed
is recovered at start-up from the stored rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
import structlog
from loopwatch_sdk.wire import feedback_envelopes

from schemas.events import DeadLetter
from schemas.records import FeedbackRecord, encode_record
from schemas.settings import Settings
from schemas.topics import Topics
from streams import metrics
from streams.bus import Kind
from streams.closer import WindowCloser
from streams.decode import unexpected_letter
from streams.kafka.admin import ensure_topics
from streams.pipeline import Pipeline
from streams.privacy.seal import Headers
from streams.writes import FINAL_ATTEMPTS, write_buffers

log = structlog.get_logger(__name__)

# Messages per take: each message is an envelope of up to ``kafka_envelope_max_events`` events.
TAKE_MESSAGES = 64


def build_faust_app(settings: Settings, app_id: str) -> faust.App:
    """A faust app with our conventions: raw bytes in and out, no web server, earliest offsets."""
    max_bytes = max(1_048_576, settings.kafka_envelope_max_bytes + 64_000)
    return faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        datadir=str(Path(settings.data_dir) / "faust" / app_id),
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_heartbeat_interval=settings.kafka_session_timeout_seconds / 5,
        producer_max_request_size=max_bytes,
        consumer_max_fetch_size=max_bytes * 4,
        stream_buffer_maxsize=TAKE_MESSAGES * 4,
    )


class KafkaWorker:
    """Owns the faust app, its topics and agents, around one ``Pipeline``."""

    def __init__(self, settings: Settings, pipeline: Pipeline, *, app_id: str | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.topics = Topics(settings.topic_prefix)
        self.app = build_faust_app(settings, app_id or f"{settings.topic_prefix}-worker")
        partitions = settings.kafka_partitions
        self.inference_topic = self.app.topic(self.topics.inference, partitions=partitions)
        self.feedback_topic = self.app.topic(self.topics.feedback, partitions=partitions)
        self.dlq_topic = self.app.topic(self.topics.dlq, partitions=1)
        self.alerts_topic = self.app.topic(self.topics.alerts, partitions=1)
        self.retrain_topic = self.app.topic(self.topics.retrain, partitions=1)
        self.processed_messages = 0
        self.app.agent(self.inference_topic, name=f"{self.topics.prefix}-inference")(self._agent("inference"))
        self.app.agent(self.feedback_topic, name=f"{self.topics.prefix}-feedback")(self._agent("feedback"))
        self.closer = WindowCloser(pipeline)

    def _agent(self, kind: Kind) -> Callable[[Any], Awaitable[None]]:
        within = self.settings.batch_max_seconds

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(TAKE_MESSAGES, within=within):
                messages = [(event.message.value, event.message.headers) for event in events]
                dead = await asyncio.to_thread(self._decode, kind, messages)
                for letter in dead:
                    await self.dlq_topic.send(value=letter.model_dump_json().encode())
                await self._flush_until_written()
                self.processed_messages += len(events)

        agent.__name__ = f"{kind}_agent"
        return agent

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Produce through the worker's own producer (alerts and retraining requests to their topics)."""
        await self.app.send(topic, key=key, value=value)

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        """Feedback to its topic through the worker's producer, returning once Kafka acknowledged it
        (online evaluations' scores, in a worker process that has no API publisher)."""
        limits = {
            "max_events": self.settings.kafka_envelope_max_events,
            "max_bytes": self.settings.kafka_envelope_max_bytes,
        }
        for envelope in feedback_envelopes(events, encode_record, **limits):
            sent = await self.app.send(self.topics.feedback, key=envelope.key.encode(), value=envelope.body)
            await sent

    def _decode(self, kind: Kind, messages: list[tuple[bytes | None, Headers | None]]) -> list[DeadLetter]:
        """Buffer a take() batch, message by message. A message that raises anyway (e.g. while its
        events are enriched) becomes a dead letter alone: the rest of the batch is still stored."""
        dead: list[DeadLetter] = []
        accepted = 0
        for value, headers in messages:
            raw = value or b""  # a tombstone decodes to a dead letter
            try:
                decoded = self.pipeline.accept_raw(kind, raw, headers)
            except Exception as exc:
                dead += self.pipeline.accept_dead_letters([unexpected_letter(kind, exc, raw)])
            else:
                accepted += len(decoded.events)
                dead += decoded.dead_letters
        metrics.events_accepted(kind, "kafka", accepted)
        return dead

    async def _flush_until_written(self) -> None:
        """Write the buffers; events storage refused for their content are dead letters by then (in
        the table) and go to the dead-letter topic too, before the batch's offsets are committed."""
        written = await write_buffers(self.pipeline)
        if written is None:
            return
        for letter in written.rejected:
            await self.dlq_topic.send(value=letter.model_dump_json().encode())
        if written.inferences or written.feedback:
            self.closer.wake()

    async def start(self) -> None:
        await asyncio.to_thread(Path(self.app.conf.datadir).mkdir, parents=True, exist_ok=True)
        await ensure_topics(self.settings)
        await asyncio.to_thread(self.pipeline.start)
        await self.app.start()
        metrics.watch_consumer_lag(self.app.consumer, (self.topics.inference, self.topics.feedback))
        self.closer.start()

    async def stop(self) -> None:
        """Stop consuming, write what is buffered, then close what is due one last time."""
        await self.app.stop()
        await write_buffers(self.pipeline, attempts=FINAL_ATTEMPTS)
        await self.closer.stop(self.settings.stop_grace_seconds)
