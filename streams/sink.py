"""The ClickHouse sink: batches topics into few, large, idempotent inserts.

One consumer over every stored topic, writing through one
:class:`~storage.writer.ClickHouseWriter`. It takes up to ``sink_batch_size`` messages
or what arrived within ``sink_flush_s``, writes them, and only then commits their
offsets (at-least-once). A message delivered again, in any batch, is stored once in raw
rows: the writer drops the rows the table holds already (see :mod:`storage.writer`).
ClickHouse unreachable: the batch is retried with backoff, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import ConsumerRecord, TopicPartition
from pydantic import BaseModel

from storage.clickhouse import connect, database_of
from storage.migrate import migrate
from storage.schema import json_table_for
from storage.writer import ClickHouseWriter
from streams import batches
from streams.app import Streams
from streams.lag import LagGauge
from topics import (
    DECISION_OUTCOMES,
    DLQ,
    EVENTS,
    EXPOSURES,
    LLM_CALLS,
    NPC_SNAPSHOTS,
    POSTS,
    RUNS,
    SCORED_EVENTS,
    SNAPSHOTS,
    TICKS,
    TopicSpec,
)
from topics.codec import DecodeError, decode, storable_json
from topics.models import RunCommanded, TickCompleted
from worldfeed import metrics
from worldfeed.backoff import backoff

log = logging.getLogger(__name__)

STORED: tuple[TopicSpec, ...] = (
    RUNS,
    TICKS,
    EVENTS,
    SCORED_EVENTS,
    POSTS,
    NPC_SNAPSHOTS,
    LLM_CALLS,
    SNAPSHOTS,
    DECISION_OUTCOMES,
    EXPOSURES,
    DLQ,
)


def group_id(app_id: str) -> str:
    """The sink's consumer group in the app ``app_id`` (offsets committed once stored)."""
    return batches.group_id(app_id, "sink")


def writer_for(streams: Streams) -> ClickHouseWriter:
    """The process's writer (created and migrated on first use)."""
    if streams.writer is None:
        settings = streams.settings
        client = connect(settings.clickhouse_dsn)
        database = database_of(settings.clickhouse_dsn)
        migrate(client, database)
        streams.writer = ClickHouseWriter.from_settings(settings, client, database)
    return streams.writer


DECODE_SLICE = 64  # records decoded between yields to the event loop


async def store_records(
    streams: Streams, by_topic: dict[str, TopicSpec], records: list[ConsumerRecord]
) -> dict[str, int]:
    """Decode records of the stored topics (bad ones go to the DLQ), buffer their rows and
    flush until they are stored. Returns the rows written per table."""
    writer = writer_for(streams)
    metrics.STAGE_MESSAGES.labels("sink").inc(len(records))
    metrics.SINK_BATCH_MESSAGES.observe(len(records))
    stored: list[BaseModel] = []  # for streams.on_stored, when someone listens
    last_tick: int | None = None
    for i, record in enumerate(records):
        if i % DECODE_SLICE == DECODE_SLICE - 1:
            await asyncio.sleep(0)  # a large batch does not hold the loop (the API's requests)
        spec = by_topic[record.topic]
        table = json_table_for(spec.model)
        if table is not None:  # the engine maps this JSON (storage.schema)
            try:
                line = storable_json(spec, record.value)
            except DecodeError as exc:
                await streams.dead_letter_record("sink", record, str(exc))
                continue
            if line is not None:
                writer.add_json(table, line)
            continue
        try:
            msg = decode(spec, record.value)
        except DecodeError as exc:
            if spec is DLQ:  # never loop a bad dead letter back into the DLQ
                log.error("unreadable dead letter at %s: %s", record.offset, exc)
                continue
            await streams.dead_letter_record("sink", record, str(exc))
            continue
        if isinstance(msg, RunCommanded) and msg.command != "start":
            continue  # only run starts become rows; the rest is in the topic
        try:
            writer.add_message(msg)
        except (TypeError, ValueError) as exc:  # a message the schema cannot hold is bad input
            await streams.dead_letter_record("sink", record, f"not storable: {exc}")
            continue
        if streams.on_stored:
            stored.append(msg)
        if isinstance(msg, TickCompleted):
            last_tick = msg.tick
    for delay in backoff(batches.FIRST_BACKOFF_S, batches.MAX_BACKOFF_S):
        t0 = time.perf_counter()
        try:
            written = await writer.flush()
        except Exception as exc:  # noqa: BLE001 - keep the rows and retry, never drop them
            log.warning("ClickHouse insert failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            continue
        metrics.SINK_INSERT_SECONDS.observe(time.perf_counter() - t0)
        for table, n in written.items():
            metrics.SINK_ROWS.labels(table).inc(n)
        if last_tick is not None:
            metrics.SINK_LAST_TICK.set(last_tick)
        if stored:
            fresh = writer.newly_stored(stored)  # not the copies of rows stored before
            for listener in streams.on_stored:
                listener(fresh)
        return written
    raise AssertionError("unreachable: backoff() never ends")


async def consume(streams: Streams) -> None:
    """The sink loop: fetch what the stored topics have (up to ``sink_batch_size``, or
    what arrived within ``sink_flush_s``), store it, then commit those offsets. The
    next batch is fetched while one is being written.

    A batch consumer (:mod:`streams.batches`) rather than a faust agent: the sink is a
    connector with no state and no output. Its group is the app id + ``-sink``; a
    partition that moves is re-read from its last commit (stored once: see
    :mod:`storage.writer`).
    """
    settings = streams.settings
    stored = streams.stored
    by_topic = {settings.topic(spec.name): spec for spec in STORED}
    consumer = batches.batch_consumer(streams, "sink", list(by_topic), settings.sink_batch_size)
    await consumer.start()
    lag = asyncio.ensure_future(LagGauge(group_id(streams.app.conf.id)).watch(consumer))
    loop = asyncio.get_running_loop()

    async def write(records: list[ConsumerRecord], offsets: dict[TopicPartition, int]) -> None:
        t0 = loop.time()
        written = await store_records(streams, by_topic, records)
        await consumer.commit(offsets)  # only once the rows are stored
        for table, n in written.items():
            stored[table] = stored.get(table, 0) + n
        log.debug(
            "stored %s messages in %.0f ms: %s", len(records), (loop.time() - t0) * 1000, written
        )

    # one batch is written and committed (the insert runs in a thread) while the next is
    # fetched; writes, and so commits, follow each other in order
    writing: asyncio.Future[None] | None = None
    try:
        while True:
            records, offsets = await batches.gather(
                consumer, settings.sink_batch_size, settings.sink_flush_s
            )
            if writing is not None:
                await writing  # raises what the last write raised: the loop starts over
            writing = asyncio.ensure_future(write(records, offsets))
    finally:
        if writing is not None:
            writing.cancel()
        lag.cancel()
        await consumer.stop()


def register(streams: Streams) -> None:
    """Run the sink loop as a task of the app (started and stopped with it); on a Kafka
    error it starts over from the last commit: rows already stored are stored once."""
    batches.run_forever(streams, "sink", lambda: consume(streams))
