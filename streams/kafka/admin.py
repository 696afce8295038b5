"""Topic creation at start-up: every topic exists, with the configured partitions, before anyone
produces or consumes (a consumer that subscribed to a missing topic would ignore it until a rebalance).
"""

from __future__ import annotations

import contextlib

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.settings import Settings
from schemas.topics import Topics

log = structlog.get_logger(__name__)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; returns the ones created now."""
    topics = Topics(settings.topic_prefix)
    wanted = {
        topics.inference: settings.kafka_partitions,
        topics.feedback: settings.kafka_partitions,
        topics.alerts: 1,
        topics.retrain: 1,
        topics.dlq: 1,
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=settings.kafka_replication)
            for name, partitions in wanted.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(missing)
            log.info("topics_created", topics=[topic.name for topic in missing])
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> None:
    """Remove this prefix's topics (tests clean up with it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(settings.topic_prefix + ".")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
