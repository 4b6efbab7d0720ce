"""streams.changelog.ChangelogTable on a real broker: what one owner wrote, the next
owner restores; a revoked partition is restored again; writes made during a restore win."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.changelog import ChangelogTable

pytestmark = [pytest.mark.integration]

PARTITIONS = 3


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def table_factory(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> Callable[..., ChangelogTable]:
    """Tables of one app id: each as a new owner (a new worker) would build it."""
    app = SimpleNamespace(conf=SimpleNamespace(id=f"wf-test-{uuid.uuid4().hex[:10]}"))
    pending: list[Any] = []

    def send(topic: str, partition: int, key: bytes, value: bytes) -> None:
        pending.append(
            asyncio.ensure_future(producer.send(topic, value, key=key, partition=partition))
        )

    async def flush() -> None:
        for fut in pending:
            await (await fut)
        pending.clear()
        await producer.flush()

    def make(name: str, held: list[Any] | None = None, keep_values: bool = True) -> ChangelogTable:
        """``held``: writes go there instead of to Kafka (records not delivered yet)."""
        return ChangelogTable(
            app,  # type: ignore[arg-type]  # only conf.id is read
            name,
            "source-topic",
            PARTITIONS,
            kafka_bootstrap,
            1,
            send if held is None else lambda *record: held.append(record),
            flush,
            keep_values,
        )

    return make


async def test_a_new_owner_restores_what_the_last_one_wrote(
    table_factory: Callable[..., ChangelogTable],
) -> None:
    first = table_factory("state")
    for p in range(PARTITIONS):
        await first.ready(p)  # creates the topic; nothing to restore yet
    assert len(first) == 0
    for i in range(50):
        first.put(i % PARTITIONS, f"p{i % PARTITIONS}/k{i % 7}".encode(), f"v{i}".encode())
    await first._flush()

    second = table_factory("state")
    for p in range(PARTITIONS):
        await second.ready(p)
    assert len(second) == PARTITIONS * 7  # every (partition, key) pair of the 50 writes
    assert second.data == first.data
    assert second[b"p1/k1"] == b"v43"  # the last of its writes


async def test_a_revoked_partition_is_restored_from_what_others_wrote_since(
    table_factory: Callable[..., ChangelogTable],
) -> None:
    mine = table_factory("moving")
    other = table_factory("moving")
    for p in range(PARTITIONS):
        await mine.ready(p)
        await other.ready(p)
    mine.put(0, b"a", b"mine")
    await mine._flush()
    mine.revoked(0)  # partition 0 moves to the other owner, which writes over it
    await other.ready(0)
    other.put(0, b"a", b"other")
    other.put(0, b"b", b"other")
    await other._flush()
    assert mine[b"a"] == b"mine"  # stale until it is needed again
    await mine.ready(0)  # back: restored from the changelog, not kept
    assert (mine[b"a"], mine[b"b"]) == (b"other", b"other")


async def test_a_write_made_while_a_partition_restores_is_kept(
    table_factory: Callable[..., ChangelogTable],
) -> None:
    writer = table_factory("busy")
    await writer.ready(1)
    writer.put(1, b"k", b"old")
    await writer._flush()
    held: list[Any] = []
    table = table_factory("busy", held)  # its own writes are not in the changelog yet
    restoring = asyncio.ensure_future(table.ready(1))
    while 1 not in table._during:  # the restore has started
        await asyncio.sleep(0)
    table.put(1, b"k", b"new")  # another agent instance writes meanwhile
    await restoring
    assert held and table[b"k"] == b"new"


async def test_a_delete_is_a_tombstone_the_next_owner_restores(
    table_factory: Callable[..., ChangelogTable],
) -> None:
    first = table_factory("deleting")
    await first.ready(2)
    first.put(2, b"gone", b"v")
    first.put(2, b"kept", b"v")
    first.delete(2, b"gone")
    await first._flush()
    assert b"gone" not in first and first[b"kept"] == b"v"
    second = table_factory("deleting")
    await second.ready(2)
    assert second.data == {b"kept": b"v"}


async def test_a_table_that_keeps_no_values_hands_each_restore_to_its_listeners(
    table_factory: Callable[..., ChangelogTable],
) -> None:
    writer = table_factory("log")
    await writer.ready(0)
    for i in range(5):
        writer.put(0, f"k{i}".encode(), f"v{i}".encode())
    writer.delete(0, b"k3")
    await writer._flush()
    log = table_factory("log", keep_values=False)
    seen: list[tuple[int, dict[bytes, bytes]]] = []
    log.on_restored.append(lambda partition, records: seen.append((partition, dict(records))))
    await log.ready(0)
    assert seen == [(0, {b"k0": b"v0", b"k1": b"v1", b"k2": b"v2", b"k4": b"v4"})]
    log.put(0, b"k5", b"v5")
    assert len(log) == 0  # the owner keeps its state in its own form
    await log._flush()
    log.revoked(0)
    await log.ready(0)  # restored again: the write is in what the listener gets
    assert seen[-1][1][b"k5"] == b"v5" and len(seen) == 2


async def test_a_write_outside_an_agent_names_no_partition(
    table_factory: Callable[..., ChangelogTable],
) -> None:
    table = table_factory("plain")
    with pytest.raises(RuntimeError, match="names no partition"):
        table[b"k"] = b"v"
    with pytest.raises(ValueError, match="partition 9"):
        table.put(9, b"k", b"v")
    with pytest.raises(RuntimeError, match="names no partition"):
        del table[b"k"]
    with pytest.raises(ValueError, match="partition 9"):
        table.delete(9, b"k")
