"""Produce many messages as whole record batches.

A shard knows everything it will produce for a tick at once: thousands of events and
changed-NPC records. Sent one by one, each costs tens of microseconds of Python (a
future, faust's ``FutureMessage`` and buffer hop, aiokafka's accumulator), which at
100k NPCs was a third of the tick. An :class:`Outbox` appends them to one aiokafka
``BatchBuilder`` per topic-partition and hands each full batch to the producer with
``send_batch``: the same records on the wire, a fraction of the Python.

Keyed messages land on the partition Kafka's default partitioner would pick
(murmur2 of the key), so consumers and tools see what a plain ``send`` would give.

Every topic is *tracked* by the producer's metadata before its first record is handed
over (:meth:`Outbox.track`). Once aiokafka's client tracks any topic, it asks the broker
for the metadata of the tracked topics only, and a metadata response replaces all it
knew. It tracks a topic only if the topic was unknown when first sent to; a topic it
already knew stays untracked, and faust refreshes the metadata of every topic (nothing
tracked yet) after declaring its topics at start. The first send to a topic created
later (a changelog) then refreshed the metadata with that topic alone and forgot every
other one: a batch still queued for one of them found no leader and waited until
something sent to its topic again (or the request timeout, faust's 20 min). Measured: a
run whose first tick had events (shards exchanging effect batches) stalled at that tick,
the shards' batches for each other queued with no leader on the shard inbox, the
producer tracking only the changelog, faust's commit waiting for them in the producer's
flush.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.partitioner import murmur2


class Outbox:
    """Messages gathered per topic-partition, produced as record batches.

    ``add``/``add_keyed`` only append; ``send`` submits the batches to the producer;
    ``delivered`` waits until the broker acknowledged every one and raises the first
    delivery error (nothing is dropped silently).
    """

    def __init__(self, producer: Any, partitions: dict[str, int]) -> None:
        self.producer = producer  # an aiokafka.AIOKafkaProducer
        self._partitions = partitions  # topic -> partition count, for keyed messages
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self._pending: list[asyncio.Future[Any]] = []
        self._tracked: set[str] = set()  # topics in the producer's metadata refreshes
        self.count = 0

    async def track(self, topic: str) -> None:
        """Have the producer's metadata refreshes include ``topic`` from now on (see the
        module docstring); call before handing the producer anything for ``topic``."""
        if topic not in self._tracked:
            await self.producer.client.add_topic(topic)
            self._tracked.add(topic)

    def add(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        """Queue one message for a given partition (``value`` None: a tombstone)."""
        builder = self._open.get((topic, partition))
        if builder is None:
            builder = self._open[(topic, partition)] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # full: queue it and start another (a record larger than a whole batch still
            # goes alone, as the first record of an empty batch is always accepted)
            self._full.append((topic, partition, builder))
            builder = self._open[(topic, partition)] = self.producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"message of {len(value or b'')} bytes does not fit a batch")
        self.count += 1

    def add_keyed(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one message on the partition Kafka's default partitioner picks for its key."""
        n = self._partitions[topic]
        self.add(topic, (murmur2(key) & 0x7FFFFFFF) % n, key, value)

    async def send(self) -> None:
        """Hand every batch to the producer (returns before the broker acknowledges).

        Enough for at-least-once in an agent that calls it before taking its next
        messages: faust flushes the producer (and with it these batches) before it
        commits offsets. Raises if an earlier batch failed to be delivered.
        """
        batches = self._full + [(t, p, b) for (t, p), b in self._open.items()]
        self._full, self._open = [], {}
        for topic, partition, builder in batches:
            if builder.record_count():
                await self.track(topic)
                self._pending.append(
                    await self.producer.send_batch(builder, topic, partition=partition)
                )
        still = []
        for fut in self._pending:
            if not fut.done():
                still.append(fut)
            elif fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
        self._pending = still

    async def delivered(self) -> None:
        """Send what is queued and wait for the broker to acknowledge all of it."""
        await self.send()
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
