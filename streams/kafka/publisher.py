"""The API's publisher in distributed mode: validated events → batched envelopes → Kafka.

``acks=all`` and awaiting every send means a 202 is only returned once Kafka has the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import structlog
from aiokafka import AIOKafkaProducer
from loopwatch_sdk.wire import Envelope, feedback_envelopes, inference_envelopes

from schemas.records import FeedbackRecord, InferenceRecord, encode_record
from schemas.settings import Settings
from schemas.topics import Topics
from streams.kafka.admin import ensure_topics

log = structlog.get_logger(__name__)


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        assert settings.kafka_bootstrap, "KafkaPublisher needs LOOPWATCH_KAFKA_BOOTSTRAP"
        self._settings = settings
        self.topics = Topics(settings.topic_prefix)
        self._max_events = settings.kafka_envelope_max_events
        self._max_bytes = settings.kafka_envelope_max_bytes
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=max(1_048_576, self._max_bytes + 64_000),
            enable_idempotence=True,
        )

    async def start(self) -> None:
        await ensure_topics(self._settings)
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def _send_all(self, topic: str, envelopes: Iterator[Envelope]) -> None:
        futures = [
            await self._producer.send(topic, value=envelope.body, key=envelope.key.encode()) for envelope in envelopes
        ]
        await asyncio.gather(*futures)

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None:
        if events:
            limits = {"max_events": self._max_events, "max_bytes": self._max_bytes}
            await self._send_all(self.topics.inference, inference_envelopes(events, encode_record, **limits))

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        if events:
            limits = {"max_events": self._max_events, "max_bytes": self._max_bytes}
            await self._send_all(self.topics.feedback, feedback_envelopes(events, encode_record, **limits))

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await (await self._producer.send(topic, value=value, key=key))
