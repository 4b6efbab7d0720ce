"""The sink stores a message delivered twice once: real Kafka broker, real chDB engine.

Messages (some produced twice) go onto the stored topics with a plain producer; the
sink (in this process, sharing the session's chDB engine) stores them. Then a second
sink with a new consumer group re-consumes every topic from offset 0 into the same
database, and the raw row counts do not change. Raw rows, not ``FINAL``: ``FINAL``
collapses rows with equal keys whatever the sink wrote, so a count through it could not
show a sink that stores a message twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from bus.admin import ensure_topics
from storage import rows_for
from streams.worker import create_streams
from topics import EVENTS, LLM_CALLS, NPC_SNAPSHOTS, POSTS, TICKS, TopicSpec
from topics.codec import encode
from topics.models import (
    EventHappened,
    ImpactScore,
    LLMCalled,
    NpcSnapshotted,
    PostPublished,
    TickCompleted,
)
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 40


def _messages() -> list[tuple[TopicSpec, str, BaseModel]]:
    out: list[tuple[TopicSpec, str, BaseModel]] = []
    for i in range(N):
        out.append(
            (
                EVENTS,
                "idem",
                EventHappened(
                    event_id=f"ev_{i:016x}",
                    run_id="idem",
                    tick=i,
                    sim_minute=i * 15,
                    type="greeted",
                    actor="npc_a",
                    target="npc_b",
                    place="cafe",
                    summary=f"event {i}",
                    impact=ImpactScore(novelty=0.5, conflict=0, status=0, cascade=0, total=0.5),
                ),
            )
        )
        out.append(
            (
                POSTS,
                f"po_{i:016x}",
                PostPublished(
                    post_id=f"po_{i:016x}",
                    request_id=f"rq_{i:016x}",
                    run_id="idem",
                    event_id=f"ev_{i:016x}",
                    channel=("feed", "chat", "news")[i % 3],
                    author="npc_a",
                    tick=i,
                    sim_minute=i * 15,
                    body=f"post {i}",
                    source="llm",
                    score=0.5,
                ),
            )
        )
        out.append(
            (
                LLM_CALLS,
                f"rq_{i:016x}",
                LLMCalled(
                    call_id=f"ca_{i:016x}",
                    run_id="idem",
                    request_id=f"rq_{i:016x}",
                    attempt=1,
                    prompt_hash=f"{i:016x}",
                    model="smollm2",
                    tokens_in=100,
                    tokens_out=20,
                    outcome="valid",
                    at_ms=1_700_000_000_000 + i,
                ),
            )
        )
        out.append(
            (
                TICKS,
                "idem",
                TickCompleted(
                    run_id="idem",
                    tick=i,
                    sim_minute=i * 15,
                    state_hash=f"{i:016x}",
                    npcs=3,
                    events=1,
                    effects=2,
                    wall_ms=1.0,
                    last=i == N - 1,
                ),
            )
        )
    for tick in (4, 8):
        for npc in ("npc_a", "npc_b"):
            out.append(
                (
                    NPC_SNAPSHOTS,
                    npc,
                    NpcSnapshotted(
                        run_id="idem",
                        tick=tick,
                        npc_id=npc,
                        reputation=50,
                        relationships={"npc_x": [1.0, 2.0, 3.0], "npc_y": [4.0, 5.0, 6.0]},
                        state_hash=f"{tick:016x}",
                    ),
                )
            )
    return out


EXPECTED = {
    "events": N,
    "posts": N,
    "llm_calls": N,
    "ticks": N,
    "npc_snapshots": 4,
    "relationship_snapshots": 8,
}


def _raw_counts(client: Client, database: str) -> dict[str, int]:
    return {
        table: int(client.command(f"SELECT count() FROM {database}.{table}"))  # noqa: S608 - checked identifiers
        for table in EXPECTED
    }


async def _sink_until(settings: Settings, rows: int) -> None:
    """Run a sink in this process until it has written ``rows`` rows (inserts may dedup)."""
    streams = create_streams(settings, ["sink"])
    await streams.app.start()
    try:
        stored = streams.stored
        deadline = time.monotonic() + 90
        while sum(stored.values()) < rows:
            assert time.monotonic() < deadline, f"sink wrote only {stored} of {rows} rows"
            await asyncio.sleep(0.3)
    finally:
        await streams.app.stop()


async def test_reconsuming_every_topic_from_offset_0_stores_nothing_twice(
    settings_factory: Callable[..., Settings],
    chdb_path: Path,
    ch_client: Client,
    ch_database: Callable[[], str],
) -> None:
    database = ch_database()
    settings = settings_factory(
        clickhouse_dsn=f"chdb://{chdb_path}?database={database}", sink_batch_size=16
    )
    await ensure_topics(settings)
    messages = _messages()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    rows = 0  # rows the produced messages map to, duplicates included
    try:
        # every 5th message is delivered twice (a producer retry after a lost ack)
        for i, (spec, key, msg) in enumerate(messages):
            for _ in range(2 if i % 5 == 0 else 1):
                await producer.send_and_wait(
                    settings.topic(spec.name), encode(msg), key=key.encode()
                )
                rows += 1 if isinstance(msg, EventHappened) else len(rows_for(msg))
    finally:
        await producer.stop()
    assert rows > sum(EXPECTED.values())

    await _sink_until(settings, rows)
    assert _raw_counts(ch_client, database) == EXPECTED

    # a second sink, new consumer group: re-reads every topic from offset 0
    again = settings.model_copy(update={"app_id": f"{settings.app_id}-again"})
    await _sink_until(again, rows)
    assert _raw_counts(ch_client, database) == EXPECTED
