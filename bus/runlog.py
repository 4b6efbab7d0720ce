"""A run's log on Kafka: read it (for replay, branches and comparisons) and start a branch.

The pure work is :mod:`sim.replay`; this module only moves messages. Reading a run scans
its topics from the beginning (the run's key filters records before they are decoded);
that is what a log-structured run costs without an index, and it is bounded by the
topics' size (ClickHouse holds the same rows for queries).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from bus.log import read_topic
from posts.quota import inherited_quotas
from sim.calendar import day_of, minute_of_tick
from sim.replay import BranchPlan, RunLog, plan_branch
from sim.world import WorldIndex, shard_of
from topics import (
    CLOCK_INBOX,
    DECISIONS,
    EVENTS,
    EXPOSURES,
    POSTS,
    RENDER_REQUESTS,
    RUNS,
    SHARD_INBOX,
    SNAPSHOTS,
    TICKS,
)
from topics.codec import encode
from topics.models import (
    DecisionMade,
    EventHappened,
    PostPublished,
    PostSeen,
    RunCommanded,
    SnapshotPart,
    TickCompleted,
)
from worldfeed.gcpause import gc_paused
from worldfeed.settings import Settings

log = logging.getLogger(__name__)

SEND_TIMEOUT_MS = 30_000


class UnknownRun(LookupError):
    """No start of this run is in the log."""


async def read_run(settings: Settings, run_id: str, *, posts: bool = False) -> RunLog:
    """A run's log: its accepted start, completed ticks, events, snapshots (and posts)."""
    with gc_paused():  # a run's log decodes into many acyclic objects
        return await _read_run(settings, run_id, posts)


async def _read_run(settings: Settings, run_id: str, posts: bool) -> RunLog:
    key = run_id.encode()

    def mine(k: bytes | None) -> bool:
        return k == key

    commands: list[RunCommanded] = await read_topic(settings, RUNS, mine)
    start = next((c for c in commands if c.command == "start" and c.run_id == run_id), None)
    if start is None:
        raise UnknownRun(f"no run {run_id!r} in the log")
    ticks: list[TickCompleted] = await read_topic(settings, TICKS, mine)
    events: list[EventHappened] = await read_topic(settings, EVENTS, mine)
    parts: list[SnapshotPart] = await read_topic(settings, SNAPSHOTS, mine)
    decisions: list[DecisionMade] = []
    if start.decide_budget:  # keyed by request id: read them all, keep the run's
        decisions = [d for d in await read_topic(settings, DECISIONS) if d.run_id == run_id]
    exposures: list[PostSeen] = []
    if any(t.exposures for t in ticks if t.run_id == run_id):  # the feed loop: by reader
        exposures = [x for x in await read_topic(settings, EXPOSURES) if x.run_id == run_id]
    published: list[PostPublished] = []
    if posts:
        published = [p for p in await read_topic(settings, POSTS) if p.run_id == run_id]
    return RunLog.of(
        start,
        (t for t in ticks if t.run_id == run_id),
        (e for e in events if e.run_id == run_id),
        (p for p in parts if p.run_id == run_id),
        published,
        decisions,
        exposures,
    )


def make_branch(index: WorldIndex, parent: RunLog, at_tick: int, **options: Any) -> BranchPlan:
    """:func:`sim.replay.plan_branch`, plus the posting quotas the branch inherits for the
    day it continues (the parent's charges that day: a branch posts what the parent would)."""
    plan = plan_branch(index, parent, at_tick, **options)
    start = plan.start
    day = day_of(minute_of_tick(start.start_minute, at_tick + 1, start.step_minutes))
    plan.quotas = inherited_quotas(index, plan.requests, plan.run_id, day)
    return plan


async def send_branch(settings: Settings, plan: BranchPlan) -> None:
    """Start a branch: its first snapshot, the shards' states and the open stories, then
    (once all of that is acknowledged) its start command. Each shard reads its states
    before the branch's first tick, which the clock sends only after the start."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=SEND_TIMEOUT_MS,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        key = plan.run_id.encode()
        for part in plan.parts:
            await producer.send(settings.topic(SNAPSHOTS.name), encode(part), key=key, partition=0)
        inbox = settings.topic(SHARD_INBOX.name)
        for msg in plan.restores:
            await producer.send(
                inbox, encode(msg), key=str(msg.shard).encode(), partition=msg.shard
            )
        n_shards = plan.restores[0].n_shards if plan.restores else 1
        for made in plan.decisions:  # in flight at the branch tick: each member's shard
            for shard in sorted({shard_of(n, n_shards) for n in made.npcs}):
                copy = made.model_copy(update={"shard": shard})
                await producer.send(inbox, encode(copy), key=str(shard).encode(), partition=shard)
        for story in plan.stories:
            await producer.send(settings.topic(EVENTS.name), encode(story), key=key)
        for quota in plan.quotas:  # keyed like the requests: on their author's partition
            await producer.send(
                settings.topic(RENDER_REQUESTS.name), encode(quota), key=quota.author.encode()
            )
        await producer.flush()
        await producer.send_and_wait(
            settings.topic(CLOCK_INBOX.name), encode(plan.start), key=key, partition=0
        )
        log.info(
            "branch %s of %s at tick %s: %s state parts, %s stories, %s quotas, from tick %s",
            plan.run_id,
            plan.start.parent_run,
            plan.start.branch_tick,
            len(plan.restores),
            len(plan.stories),
            len(plan.quotas),
            plan.restored_from,
        )
    finally:
        await producer.stop()
