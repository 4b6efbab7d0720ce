"""The batch consumers' gather loop (streams/batches.py) on a real broker."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.batches import gather
from tests.fixtures.kafka import create_topic

pytestmark = [pytest.mark.integration]

WINDOW_S = 60.0  # far longer than the test may take: a batch must not wait it out


async def _check(bootstrap: str) -> None:
    topic = f"batches-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, 2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, b"%d" % i, partition=i % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        # a full batch: at most max_records
        first, first_to = await gather(consumer, 4, WINDOW_S)
        assert len(first) == 4
        # the rest: what is there, once the topic has been quiet (not the whole window)
        started = time.monotonic()
        rest, rest_to = await gather(consumer, 100, WINDOW_S)
        assert time.monotonic() - started < WINDOW_S / 4
        assert sorted(int(r.value) for r in first + rest) == list(range(10))
        # per partition, the offset after the last record taken: what to commit
        for records, to in ((first, first_to), (rest, rest_to)):
            for p in {r.partition for r in records}:
                last = max(r.offset for r in records if r.partition == p)
                assert to[TopicPartition(topic, p)] == last + 1
        merged = {**first_to, **rest_to}
        assert merged == {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 5}
    finally:
        await consumer.stop()


def test_gather_takes_full_batches_then_the_rest_when_the_topic_is_quiet(
    kafka_bootstrap: str,
) -> None:
    asyncio.run(asyncio.wait_for(_check(kafka_bootstrap), 120))
