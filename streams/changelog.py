"""Tables of raw bytes kept in memory and in a compacted changelog topic, restored by us.

A :class:`ChangelogTable` takes the place of a faust ``Table`` for the world shards'
state and the render stage's cache and quotas. It is partitioned like the topic its
agent reads (its source): partition ``p`` of the table belongs to whoever consumes
partition ``p`` of the source, and every write goes to partition ``p`` of the changelog.

Why not faust's tables: faust restores a table in a recovery service that pauses and
resumes changelog partitions on the worker's shared consumer, and on a live rebalance
(a worker joining or leaving) that service hung in about 1 run in 5 here ("No event
received for active tp": a run stalled for good). faust-streaming has several open
reports of the same family (issues 74, 597, 651; robinhood/faust 218, 542). Here a
partition is restored by reading its changelog partition from the beginning to its end
offset with a plain consumer of our own, awaited by the agent before it handles that
partition's next message (:meth:`ChangelogTable.ready`). The app then declares no faust
table, so faust's recovery only resumes the streams after a rebalance.

Ownership moves in whole rebalances: when the source partition is revoked the table
partition is marked stale, and the next message from it (after it was assigned again)
restores it from the changelog first. A restore replaces everything the table held for
that partition, so nothing written by an earlier owner is missed and nothing the changelog
does not hold survives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from worldfeed.backoff import backoff

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.2  # a restore that failed (a broker away, a topic not yet known) retries
LEADER_WAIT_S = 30.0  # a new changelog's partitions get leaders within this long
MAX_RETRY_S = 5.0
FETCH_MAX_RECORDS = 10_000


class ChangelogTable(MutableMapping[bytes, bytes]):
    """A bytes -> bytes table backed by the compacted topic ``<app id>-<name>-changelog``.

    Reads are plain dict reads. Writes go to memory and, as one record on the table
    partition, to the changelog through the process's outbox (sent with the agent's
    other output; faust flushes the producer before it commits the source offsets).
    ``table[key] = value`` writes to the partition of the event the agent is handling;
    :meth:`put` names the partition.

    An agent awaits :meth:`ready` with a message's partition before it handles the
    message. Call :meth:`attach` once the app exists (it connects the rebalance signals).
    """

    def __init__(
        self,
        app: faust.App,
        name: str,
        source_topic: str,
        partitions: int,
        bootstrap: str,
        replication: int,
        send: Any,
        flush: Any,
        keep_values: bool = True,
    ) -> None:
        """``send(topic, partition, key, value)`` queues one changelog record (the outbox);
        ``await flush()`` waits until the broker acknowledged everything sent so far.
        ``keep_values`` False: a write-through log for an owner that keeps its state in
        its own form (the impact stage's story book): nothing is kept in memory here, and
        a restore only hands the records to :attr:`on_restored`."""
        self.name = name
        self.topic = f"{app.conf.id}-{name}-changelog"  # the name faust's table had
        self.source_topic = source_topic
        self.partitions = partitions
        self.bootstrap = bootstrap
        self.replication = replication
        self._send = send
        self._flush = flush
        self.keep_values = keep_values
        self._during: dict[int, dict[bytes, bytes | None]] = {}  # writes made while restoring
        self.data: dict[bytes, bytes] = {}
        self._keys: dict[int, set[bytes]] = {}  # partition -> the keys of it in ``data``
        self._restores: dict[int, asyncio.Future[None]] = {}  # current restore per partition
        self._generation: dict[int, int] = {}  # bumped on every revoke: late restores lose
        self._loaded: dict[int, int] = {}  # partition -> the generation it was restored in
        self._created = False
        self.restored: list[tuple[int, int, float]] = []  # (partition, records, seconds)
        # called with (partition, what it now holds) after each restore of a partition
        self.on_restored: list[Callable[[int, dict[bytes, bytes]], None]] = []

    def attach(self, app: faust.App) -> None:
        """Mark a table partition stale whenever its source partition is revoked."""

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types only sender/signal
        async def forget(app: Any, revoked: Any, **kwargs: Any) -> None:
            for tp in revoked:
                if tp.topic == self.source_topic:
                    self.revoked(tp.partition)

    def revoked(self, partition: int) -> None:
        """Mark a partition stale: its next :meth:`ready` restores it from the changelog."""
        self._generation[partition] = self._generation.get(partition, 0) + 1
        self._restores.pop(partition, None)

    # ------------------------------------------------------------------ mapping

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = faust.current_event()
        if event is None:
            raise RuntimeError(f"table {self.name}: a write outside an agent names no partition")
        self.put(event.message.partition, key, value)

    def __delitem__(self, key: bytes) -> None:
        event = faust.current_event()
        if event is None:
            raise RuntimeError(f"table {self.name}: a delete outside an agent names no partition")
        self.delete(event.message.partition, key)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: bytes, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self.data.get(key, default)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """Write one record: to memory and, on ``partition``, to the changelog."""
        if not 0 <= partition < self.partitions:
            raise ValueError(
                f"table {self.name}: partition {partition} not in 0..{self.partitions - 1}"
            )
        if self.keep_values:
            self.data[key] = value
            self._keys.setdefault(partition, set()).add(key)
        during = self._during.get(partition)
        if during is not None:
            during[key] = value  # kept over what the restore reads
        self._send(self.topic, partition, key, value)

    def delete(self, partition: int, key: bytes) -> None:
        """Forget one key: from memory and, as a tombstone on ``partition``, the changelog
        (compaction then drops the key from the topic)."""
        if not 0 <= partition < self.partitions:
            raise ValueError(
                f"table {self.name}: partition {partition} not in 0..{self.partitions - 1}"
            )
        self.data.pop(key, None)
        self._keys.get(partition, set()).discard(key)
        during = self._during.get(partition)
        if during is not None:
            during[key] = None  # deleted over what the restore reads
        self._send(self.topic, partition, key, None)

    # ------------------------------------------------------------------ restore

    async def ready(self, partition: int) -> None:
        """Return once ``partition`` holds what its changelog holds (restoring it if stale)."""
        while self._loaded.get(partition) != self._generation.get(partition, 0):
            fut = self._restores.get(partition)
            if fut is None or (fut.done() and fut.exception() is not None):
                fut = asyncio.ensure_future(self._restore(partition))
                self._restores[partition] = fut
            await asyncio.shield(fut)

    async def _restore(self, partition: int) -> None:
        generation = self._generation.get(partition, 0)
        t0 = time.perf_counter()
        during: dict[bytes, bytes | None] = {}
        self._during[partition] = during
        for delay in backoff(FIRST_RETRY_S, MAX_RETRY_S):
            try:
                await self._ensure_topic()
                # what this process wrote before (an agent still handling a message when
                # the partition was revoked) must be in the changelog before it is read
                await self._flush()
                records = await self._read(partition)
                break
            except (TimeoutError, KafkaError, OSError) as exc:  # a broker away: try again
                log.warning(
                    "table %s partition %s: restore failed (%s: %s); retrying in %.1fs",
                    self.name,
                    partition,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        if self._during.get(partition) is during:
            del self._during[partition]
        if self._generation.get(partition, 0) != generation:
            log.info("table %s partition %s: revoked during its restore", self.name, partition)
            return  # revoked meanwhile: a later ready() restores it again
        for key, value in during.items():
            if value is None:
                records.pop(key, None)
            else:
                records[key] = value
        for key in self._keys.pop(partition, ()):
            self.data.pop(key, None)
        if self.keep_values:
            self._keys[partition] = set(records)
            self.data.update(records)
        self._loaded[partition] = generation
        for listener in self.on_restored:
            listener(partition, records)
        took = time.perf_counter() - t0
        self.restored.append((partition, len(records), took))
        log.info(
            "table %s partition %s: restored %s keys from %s in %.2fs",
            self.name,
            partition,
            len(records),
            self.topic,
            took,
        )

    async def _ensure_topic(self) -> None:
        if self._created:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.topic not in set(await admin.list_topics()):
                try:
                    await admin.create_topics(
                        [
                            NewTopic(
                                self.topic,
                                self.partitions,
                                self.replication,
                                topic_configs={"cleanup.policy": "compact"},
                            )
                        ]
                    )
                    log.info("created changelog topic %s", self.topic)
                except TopicAlreadyExistsError:
                    pass  # another worker won the race
            await self._await_leaders(admin)
        finally:
            await admin.close()
        self._created = True

    async def _await_leaders(self, admin: AIOKafkaAdminClient) -> None:
        """Wait until every partition of a new changelog has a leader, so the restore that
        follows reads it at once. (Added for a first-tick stall that it did not cure: that
        one was the producer's metadata forgetting the other topics; see streams/outbox.py.)"""
        deadline = time.monotonic() + LEADER_WAIT_S
        while True:
            described = await admin.describe_topics([self.topic])
            parts = described[0].get("partitions", []) if described else []
            if len(parts) == self.partitions and all(p.get("leader", -1) >= 0 for p in parts):
                return
            if time.monotonic() > deadline:
                log.warning(
                    "changelog %s: partitions without a leader after %ss", self.topic, LEADER_WAIT_S
                )
                return
            await asyncio.sleep(0.1)

    async def _read(self, partition: int) -> dict[bytes, bytes]:
        """Every key's latest value in one changelog partition, up to its current end."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            # an explicit offset: after end_offsets, seek_to_beginning left the position at
            # the end here (aiokafka 0.14), and the restore read nothing
            consumer.seek(tp, (await consumer.beginning_offsets([tp]))[tp])
            out: dict[bytes, bytes] = {}
            while await consumer.position(tp) < end:
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=FETCH_MAX_RECORDS)
                for record in fetched.get(tp, ()):
                    if record.key is None:
                        continue
                    if record.value is None:  # a tombstone
                        out.pop(record.key, None)
                    else:
                        out[record.key] = record.value
            return out
        finally:
            await consumer.stop()
