"""Impact's stories survive its worker: after the impact worker is killed (kill -9) and
replaced mid-run, a reference to a story from before the kill still re-scores it, and the
run's render requests equal the in-process reference's (sim.impact.StoryBook over the
same events)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from bus.admin import ensure_topics
from sim.impact import StoryBook
from sim.local import LocalRun
from sim.world import load_world
from streams.worker import app_id_for
from tests.fixtures.processes import Procs, produce_in_order
from topics import EVENTS, RENDER_REQUESTS
from topics.codec import decode
from topics.models import EventHappened
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration]

RUN, SEED = "impact-restart", 1


def reference() -> tuple[list[EventHappened], int, dict[str, str]]:
    """Seed 1's events up to the first that re-scores an earlier story into a render
    request (tick 34: an argument made news), and one tick more; the index of that event
    (the worker is replaced just before it); the reference's render requests as sent."""
    index = load_world("town")
    run = LocalRun(index, RUN, SEED)
    for _ in range(36):
        run.step()
    events = sorted(run.events, key=lambda e: e.tick)
    book, sent, split = StoryBook(), {}, None
    for i, ev in enumerate(events):
        scored = book.add(index, ev.model_copy())
        assert scored is not None
        for req in scored.requests:
            sent[req.request_id] = req.model_dump_json()
            if split is None and req.event.event_id != ev.event_id:
                split = i
    assert split is not None, "no event re-scores an earlier story into a request"
    last = events[split].tick + 1
    return [e for e in events if e.tick <= last], split, sent


async def produce_raw(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()


async def committed(settings: Settings, procs: Procs, offset: int, timeout_s: float = 90) -> None:
    """Wait until the impact workers' group committed ``offset`` on ``events`` (faust flushes
    the producer first: everything those events produced, the story table included, is in)."""
    group = app_id_for(settings, ["impact"])
    tp = TopicPartition(settings.topic(EVENTS.name), 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            procs.assert_alive()
            try:
                got = (await admin.list_consumer_group_offsets(group, partitions=[tp])).get(tp)
            except GroupCoordinatorNotAvailableError:  # the group is not formed yet
                got = None
            if got is not None and got.offset >= offset:
                return
            assert time.monotonic() < deadline, f"{group} committed {got} of {offset} events"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def render_requests(settings: Settings) -> list[str]:
    """Every render request on the topic (as JSON), read to the topic's end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        name = settings.topic(RENDER_REQUESTS.name)
        n = RENDER_REQUESTS.partition_count(settings.world_partitions)
        parts = [TopicPartition(name, p) for p in range(n)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out = []
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(decode(RENDER_REQUESTS, r.value).model_dump_json() for r in records)
        return out
    finally:
        await consumer.stop()


async def test_a_replaced_impact_worker_re_scores_stories_from_before_the_kill(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    events, split, expected = reference()
    settings = settings_factory(world_partitions=1, kafka_session_timeout_s=6.0)
    await ensure_topics(settings)
    procs.worker("impact0", settings, "impact")
    await produce_in_order(settings, EVENTS, events[:split])  # as the shards send them
    await committed(settings, procs, split)  # scored, stories written, offsets committed
    procs.kill("impact0", signal.SIGKILL)
    procs.running = [(n, p) for n, p in procs.running if n != "impact0"]
    # a record the table cannot read: its successor skips it, says why, and goes on
    changelog = f"{app_id_for(settings, ['impact'])}-stories-changelog"
    await produce_raw(settings, changelog, f"{RUN}/ev_garbage".encode(), b"\x01not a story")
    procs.worker("impact1", settings, "impact")
    await produce_in_order(settings, EVENTS, events[split:])
    await committed(settings, procs, len(events))

    sent = await render_requests(settings)
    by_id: dict[str, set[str]] = {}
    for req in sent:
        by_id.setdefault(decode(RENDER_REQUESTS, req).request_id, set()).add(req)
    assert all(len(copies) == 1 for copies in by_id.values()), "a request sent twice differs"
    assert {rid: copies.pop() for rid, copies in by_id.items()} == expected
    log = procs.log("impact1")
    assert "stories of 1 runs restored, 1 skipped" in log
    assert "ev_garbage' in " in log and "skipped: format 1: " in log
