"""Read a single-partition topic as a log: every message from the beginning to its end."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from topics import TopicSpec
from topics.codec import DecodeError, decode
from worldfeed.settings import Settings

log = logging.getLogger(__name__)


async def read_log(settings: Settings, spec: TopicSpec) -> list[Any]:
    """Every message of a single-partition topic, from the beginning to its current end.

    Unreadable messages are skipped with a warning: the topics read this way (runs,
    ticks) are written only by the clock, and a stage's dead letters already name them.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic(spec.name), 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, (await consumer.beginning_offsets([tp]))[tp])
        out: list[Any] = []
        while end and await consumer.position(tp) < end:
            for messages in (await consumer.getmany(tp, timeout_ms=500)).values():
                for m in messages:
                    try:
                        out.append(decode(spec, m.value))
                    except DecodeError:
                        log.warning("skipping unreadable %s message at %s", spec.name, m.offset)
        return out
    finally:
        await consumer.stop()
