"""Read topics as logs: every message from the beginning to the end it had when asked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from topics import TopicSpec
from topics.codec import DecodeError, decode
from worldfeed.settings import Settings

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 500


async def read_log(settings: Settings, spec: TopicSpec) -> list[Any]:
    """Every message of a single-partition topic, from the beginning to its current end.

    Unreadable messages are skipped with a warning: the topics read this way (runs,
    ticks) are written only by the clock, and a stage's dead letters already name them.
    """
    return await read_topic(settings, spec, partitions=[0])


async def read_topic(
    settings: Settings,
    spec: TopicSpec,
    keep: Callable[[bytes | None], bool] | None = None,
    partitions: list[int] | None = None,
) -> list[Any]:
    """The messages of a topic's partitions (all by default) up to their current ends,
    partition by partition; ``keep(key)`` filters on the record key before decoding (a
    run's messages out of every run's)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        name = settings.topic(spec.name)
        if partitions is None:  # as bus.admin.ensure_topics created them
            partitions = list(range(spec.partition_count(settings.world_partitions)))
        tps = [TopicPartition(name, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        out: list[Any] = []
        for tp in tps:
            consumer.seek(tp, starts[tp])
            while await consumer.position(tp) < ends[tp]:
                for messages in (await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)).values():
                    for m in messages:
                        if m.offset >= ends[tp] or (keep is not None and not keep(m.key)):
                            continue
                        try:
                            out.append(decode(spec, m.value))
                        except DecodeError:
                            log.warning(
                                "skipping unreadable %s message at %s/%s",
                                spec.name,
                                tp.partition,
                                m.offset,
                            )
        return out
    finally:
        await consumer.stop()
