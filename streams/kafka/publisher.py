"""The API's publisher in distributed mode: validated events → batched envelopes → Kafka.

``acks=all`` and awaiting every send means a 202 is only returned once Kafka has the events. A broker
that does not acknowledge within ``ack_timeout_seconds`` (down, no leader, partitions moving) makes the
request a 503 with Retry-After (``NotWrittenYet``), as a slow write does in embedded mode: the client
resends, and event ids make a send that did land harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from loopwatch_sdk.wire import Envelope, feedback_envelopes, inference_envelopes

from schemas.records import FeedbackRecord, InferenceRecord, encode_record
from schemas.settings import Settings
from schemas.topics import Topics
from streams.bus import NotWrittenYet
from streams.kafka.admin import ensure_topics
from streams.privacy.seal import REDACTED_HEADER, seal

log = structlog.get_logger(__name__)


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        assert settings.kafka_bootstrap, "KafkaPublisher needs LOOPWATCH_KAFKA_BOOTSTRAP"
        self._settings = settings
        self.topics = Topics(settings.topic_prefix)
        self._max_events = settings.kafka_envelope_max_events
        self._max_bytes = settings.kafka_envelope_max_bytes
        key = settings.envelope_key
        self._seal_key = key.get_secret_value().encode() if key is not None else None
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
        """Close the producer, waiting at most ``stop_grace_seconds`` for sends in flight.

        With the broker gone, aiokafka retries an unacknowledged batch for as long as the broker's
        metadata still names a leader: its ``stop`` would wait forever and hang the process's shutdown.
        Nothing a client was told is stored waits here (each 202 awaited Kafka's acknowledgement), so
        giving up loses no acknowledged event; the loop's end cancels the producer's tasks.
        """
        grace = self._settings.stop_grace_seconds
        try:
            await asyncio.wait_for(self._producer.stop(), grace)
        except TimeoutError:
            log.warning("publisher_stop_abandoned", reason="sends unacknowledged by Kafka", after_seconds=grace)

    async def _send_all(self, topic: str, envelopes: Iterator[Envelope], *, redacted: bool = False) -> None:
        """``redacted``: the events went through ``RedactingPublisher``; with ``LOOPWATCH_ENVELOPE_KEY``
        each envelope is marked so (``streams.privacy.seal``) and workers do not scan it again."""
        timeout = self._settings.ack_timeout_seconds
        key = self._seal_key if redacted else None
        try:
            async with asyncio.timeout(timeout):
                futures = [
                    await self._producer.send(
                        topic,
                        value=envelope.body,
                        key=envelope.key.encode(),
                        headers=[(REDACTED_HEADER, seal(key, envelope.body))] if key else None,
                    )
                    for envelope in envelopes
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            if isinstance(exc, KafkaError) and not exc.retriable and not isinstance(exc, KafkaTimeoutError):
                raise  # authorization, an invalid topic...: a resend would fail the same way (500, logged)
            log.warning("publish_failed", topic=topic, error=f"{type(exc).__name__}: {exc}"[:300])
            raise NotWrittenYet(f"Kafka did not acknowledge the events within {timeout:g} s") from exc

    async def publish_inferences(self, events: Sequence[InferenceRecord], *, redacted: bool = False) -> None:
        if events:
            limits = {"max_events": self._max_events, "max_bytes": self._max_bytes}
            envelopes = inference_envelopes(events, encode_record, **limits)
            await self._send_all(self.topics.inference, envelopes, redacted=redacted)

    async def publish_feedback(self, events: Sequence[FeedbackRecord], *, redacted: bool = False) -> None:
        if events:
            limits = {"max_events": self._max_events, "max_bytes": self._max_bytes}
            envelopes = feedback_envelopes(events, encode_record, **limits)
            await self._send_all(self.topics.feedback, envelopes, redacted=redacted)

    def redacted(self) -> RedactedSends:
        """This publisher for events the API redacted (what ``RedactingPublisher`` wraps): its envelopes
        are marked so. Other sends (evaluator scores) stay unmarked and are scanned by the workers."""
        return RedactedSends(self)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await (await self._producer.send(topic, value=value, key=key))


class RedactedSends:
    """A ``Publisher`` whose events were redacted on their way here: sent marked (``KafkaPublisher.redacted``)."""

    def __init__(self, publisher: KafkaPublisher) -> None:
        self._publisher = publisher

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None:
        await self._publisher.publish_inferences(events, redacted=True)

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        await self._publisher.publish_feedback(events, redacted=True)
