"""Creates the run's topics, idempotently, with their partition counts and configs."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from topics import TOPICS
from worldfeed.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, timeout_s: float = 60.0) -> list[str]:
    """Create every topic in :data:`topics.TOPICS` that does not exist yet; return the new ones."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic(spec.name),
                spec.partition_count(settings.world_partitions),
                settings.kafka_replication,
                topic_configs=dict(spec.config),
            )
            for spec in TOPICS
            if settings.topic(spec.name) not in existing
        ]
        created: list[str] = []
        for topic in wanted:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another process won the race: that is the idempotent outcome
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        await admin.close()


async def kafka_health(settings: Settings) -> str:
    """'ok' when the broker answers a metadata request, else the error."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - health reports any failure as text
        return f"error: {type(exc).__name__}: {exc}"
    finally:
        await admin.close()
