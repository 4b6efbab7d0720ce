"""The outbox puts messages where a plain ``send`` would, in order, and reports delivery."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.outbox import Outbox
from tests.fixtures.kafka import create_topic

pytestmark = [pytest.mark.integration]

PARTITIONS = 3


async def _topic(bootstrap: str) -> str:
    return await create_topic(bootstrap, f"outbox-{uuid.uuid4().hex[:8]}", PARTITIONS)


async def _read_all(bootstrap: str, topic: str, n: int) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=topic
    )
    await consumer.start()
    got: list[tuple[int, bytes, bytes]] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < n:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend((m.partition, m.key, m.value) for m in msgs)
    finally:
        await consumer.stop()
    return got


async def _check(bootstrap: str) -> None:
    topic, plain_topic = await _topic(bootstrap), await _topic(bootstrap)
    # small batches, so one flush spans many of them
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=4096, acks="all")
    await producer.start()
    try:
        box = Outbox(producer, {topic: PARTITIONS})
        keys = [f"run-{i % 7}".encode() for i in range(500)]
        for i, key in enumerate(keys):
            box.add_keyed(topic, key, b"v%d" % i)
        big = b"x" * 20_000  # larger than a whole batch: goes alone
        box.add(topic, 2, b"big", big)
        await box.delivered()
        assert box.count == 501
        for key in set(keys):  # where aiokafka's own partitioner puts the same keys
            await producer.send_and_wait(plain_topic, b"", key=key)
    finally:
        await producer.stop()
    got = await _read_all(bootstrap, topic, 501)
    plain = {k: p for p, k, _ in await _read_all(bootstrap, plain_topic, len(set(keys)))}
    assert len(got) == 501
    assert all(p == plain[k] for p, k, _ in got if k != b"big")
    assert (2, b"big", big) in got
    for key in set(keys):  # per key, the order they were added in
        values = [int(v[1:]) for _, k, v in got if k == key]
        assert values == sorted(values) and len(values) == keys.count(key)


def test_outbox_partitions_orders_and_delivers(kafka_bootstrap: str) -> None:
    asyncio.run(_check(kafka_bootstrap))


async def _first_send_to_a_new_topic(bootstrap: str) -> None:
    known = await _topic(bootstrap)  # exists before the producer starts: in its bootstrap
    # long linger: the batch for `known` is still queued when the new topic's metadata lands
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=500, acks="all")
    await producer.start()
    try:
        # what faust does after declaring each topic: a refresh while the producer tracks no
        # topic fetches every topic's metadata, so `known` is known but untracked
        await producer.client.force_metadata_update()
        later = await _topic(bootstrap)  # created once the producer runs (like a changelog)
        box = Outbox(producer, {known: PARTITIONS, later: PARTITIONS})
        box.add(known, 0, b"k", b"queued before the new topic")
        box.add(later, 0, b"k", b"the new topic's first record")
        # aiokafka alone: the refresh for `later` forgot `known`, whose batch then waited
        # for a leader until the request timeout (faust's: 20 min)
        await asyncio.wait_for(box.delivered(), 20)
        await producer.send_and_wait(known, b"then a plain send", key=b"k", partition=1)
        await asyncio.wait_for(producer.flush(), 20)
    finally:
        await producer.stop()
    assert len(await _read_all(bootstrap, known, 2)) == 2
    assert len(await _read_all(bootstrap, later, 1)) == 1


def test_a_first_send_to_a_new_topic_leaves_queued_batches_deliverable(
    kafka_bootstrap: str,
) -> None:
    """A run whose first tick had events stalled in the commit's flush: the shards' first
    changelog records (a topic created after the producer started) made the producer's
    metadata forget the topic of the effect batches queued just before them."""
    asyncio.run(_first_send_to_a_new_topic(kafka_bootstrap))
