"""Batch consumers: plain aiokafka consumers run as tasks of the faust app (the sink).

A batch consumer reads its topics, does its work a batch at a time and commits what it
finished. faust's per-message path (a task pair, flow control and an ack per message)
capped a faust agent near 10k messages/s, where a batch fetch costs a few microseconds
per message. Each has its own consumer group (``<app id>-<name>``): partitions spread
over every process of that role, and a partition that moves is re-read from its last
commit, so the work must be idempotent (the sink's inserts are).

Impact stays a faust agent. (Rebalances once stalled runs in faust's table recovery,
"No event received for active tp"; the tables are :mod:`streams.changelog`'s now, restored
by reading their changelogs directly.) The sink runs in its own worker or in the API
process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.app import Streams
from worldfeed.backoff import backoff

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5  # a consumer or a ClickHouse insert that failed is retried after this
MAX_BACKOFF_S = 30.0  # and never waits longer between tries
# a partial batch is taken once the topics were quiet this long: a tick's events come as
# one burst, and its tail should not wait out the batch window (which bounds the batches
# per second under a steady trickle)
QUIET_MS = 50


def group_id(app_id: str, name: str) -> str:
    """The consumer group of the batch consumer ``name`` in the app ``app_id``."""
    return f"{app_id}-{name}"


def batch_consumer(
    streams: Streams, name: str, topics: list[str], max_records: int
) -> AIOKafkaConsumer:
    """A consumer of ``topics`` in the group of ``name``; offsets are committed by the caller."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=streams.settings.kafka_bootstrap,
        group_id=group_id(streams.app.conf.id, name),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        fetch_max_wait_ms=100,
        # a fetch brings up to a batch of 1 KiB events (the default, 1 MiB, is ~1,000): a
        # burst is read in a few fetches instead of waiting on many round trips
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )


async def gather(
    consumer: AIOKafkaConsumer, max_records: int, window_s: float
) -> tuple[list[ConsumerRecord], dict[TopicPartition, int]]:
    """The next batch: waits for a first record, then takes up to ``max_records``, or what
    arrives within ``window_s``, or what arrives until the topics are quiet for
    ``QUIET_MS``. Returns the records and, per partition, the offset to commit after them.
    """
    loop = asyncio.get_running_loop()
    records: list[ConsumerRecord] = []
    offsets: dict[TopicPartition, int] = {}
    window_ms = max(1, int(window_s * 1000))
    deadline = loop.time() + window_s
    while len(records) < max_records:
        left_ms = int((deadline - loop.time()) * 1000)
        if records and left_ms <= 0:
            break
        fetched = await consumer.getmany(
            timeout_ms=max(1, min(left_ms, QUIET_MS)) if records else window_ms,
            max_records=max_records - len(records),
        )
        if not records:  # the window starts at the first record
            deadline = loop.time() + window_s
        for tp, batch in fetched.items():
            records.extend(batch)
            offsets[tp] = batch[-1].offset + 1
        if not fetched and records:
            break
    return records, offsets


def run_forever(streams: Streams, name: str, consume: Callable[[], Awaitable[None]]) -> None:
    """Run ``consume`` as a task of the app; on an error (a broker hiccup), start it over.

    Starting over re-reads from the last commit.
    """

    async def task() -> None:
        for delay in backoff(FIRST_BACKOFF_S, MAX_BACKOFF_S):
            try:
                await consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s consumer failed; restarting in %.1fs", name, delay)
                await asyncio.sleep(delay)

    task.__name__ = task.__qualname__ = f"consume_{name}"
    streams.app.task(task)
