"""The ClickHouse sink: batches topics into few, large, idempotent inserts.

One agent per stored topic, all sharing one :class:`~storage.writer.ClickHouseWriter`.
Each agent takes up to ``sink_batch_size`` messages or what arrived within
``sink_flush_s``, writes them, and only then moves on, so offsets are committed
after the rows are stored (at-least-once). A redelivered batch is stored once:
the writer sends an insert dedup token and every table is a ReplacingMergeTree
keyed on the derived id. ClickHouse unreachable: the batch is retried with backoff,
never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from storage.clickhouse import connect, database_of
from storage.migrate import migrate
from storage.writer import ClickHouseWriter
from streams.app import Streams
from streams.codec import DecodeError, decode
from topics import (
    DLQ,
    LLM_CALLS,
    NPC_SNAPSHOTS,
    POSTS,
    RUNS,
    SCORED_EVENTS,
    TICKS,
    TopicSpec,
)
from topics.models import RunCommanded

log = logging.getLogger(__name__)

STORED: tuple[TopicSpec, ...] = (RUNS, TICKS, SCORED_EVENTS, POSTS, NPC_SNAPSHOTS, LLM_CALLS, DLQ)
MAX_BACKOFF_S = 30.0


def writer_for(streams: Streams) -> ClickHouseWriter:
    """The process's writer (created and migrated on first use)."""
    writer = streams.services.get("writer")
    if writer is None:
        settings = streams.settings
        client = connect(settings.clickhouse_dsn)
        database = database_of(settings.clickhouse_dsn)
        migrate(client, database)
        writer = streams.services["writer"] = ClickHouseWriter.from_settings(
            settings, client, database
        )
    return writer


async def store_batch(streams: Streams, spec: TopicSpec, events: list[Any]) -> int:
    """Decode a batch (bad messages go to the DLQ), buffer it and flush until it is stored."""
    writer = writer_for(streams)
    for event in events:
        try:
            msg = decode(spec, event.value)
        except DecodeError as exc:
            if spec is DLQ:  # never loop a bad dead letter back into the DLQ
                log.error("unreadable dead letter at %s: %s", event.message.offset, exc)
                continue
            await streams.dead_letter("sink", event, str(exc))
            continue
        if isinstance(msg, RunCommanded) and msg.command != "start":
            continue  # only run starts become rows; the rest is in the topic
        try:
            writer.add_message(msg)
        except (TypeError, ValueError) as exc:  # a message the schema cannot hold is bad input
            await streams.dead_letter("sink", event, f"not storable: {exc}")
    delay = 0.5
    while True:
        try:
            written = await writer.flush()
            return sum(written.values())
        except Exception as exc:  # noqa: BLE001 - keep the rows and retry, never drop them
            log.warning("ClickHouse insert failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(MAX_BACKOFF_S, delay * 2)


def register(streams: Streams) -> None:
    """Register one sink agent per stored topic."""
    settings = streams.settings
    stored: dict[str, int] = streams.services.setdefault("stored", {})

    for spec in STORED:

        async def store(stream: Any, spec: TopicSpec = spec) -> None:
            async for events in stream.take_events(
                settings.sink_batch_size, within=settings.sink_flush_s
            ):
                n = await store_batch(streams, spec, list(events))
                stored[spec.name] = stored.get(spec.name, 0) + n

        store.__doc__ = f"Store the {spec.name} topic in ClickHouse, in batches."
        streams.app.agent(streams.topic(spec), name=f"store_{spec.name.replace('-', '_')}")(store)
