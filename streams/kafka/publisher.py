"""The API's publisher in distributed mode: validated events → batched envelopes → Kafka.

``acks=all`` and awaiting every send means a 202 is only returned once Kafka has the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer

from schemas.records import FeedbackRecord, InferenceRecord
from schemas.settings import Settings
from schemas.topics import Topics
from streams.kafka.admin import ensure_topics
from streams.kafka.envelopes import feedback_envelopes, inference_envelopes

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

    async def _send_all(self, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
        futures = [await self._producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None:
        if events:
            envelopes = list(inference_envelopes(events, self._max_events, self._max_bytes))
            await self._send_all(self.topics.inference, envelopes)

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        if events:
            envelopes = list(feedback_envelopes(events, self._max_events, self._max_bytes))
            await self._send_all(self.topics.feedback, envelopes)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await (await self._producer.send(topic, value=value, key=key))
