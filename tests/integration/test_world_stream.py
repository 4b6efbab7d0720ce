"""The world on a real broker: worker subprocesses, ticks through Kafka, the tick barrier.

The streamed run must match the in-process reference (sim.local.LocalRun) event for
event and hash for hash, whatever the partition and worker count, and its ticks log
must carry the same tick-wide tallies (render requests, affinity, conflict, director
rules fired) that the reference's clock summed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from sim.local import LocalRun
from sim.world import load_world
from tests.fixtures.processes import Procs, produce, read_settled, read_until, start_run
from topics import CLOCK_INBOX, EVENTS, TICKS
from topics.codec import encode
from topics.models import EventHappened, RunCommanded, TickCompleted
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS_PER_DAY = 96


def tallies(ticks: list[TickCompleted]) -> list[dict[str, object]]:
    """What a tick log decides the next ticks with (all but the wall time)."""
    return [t.model_dump(exclude={"wall_ms", "last"}) for t in ticks]


def reference(run_id: str, seed: int, ticks: int) -> LocalRun:
    run = LocalRun(load_world("town"), run_id, seed)
    for _ in range(ticks):
        run.step()
    return run


async def play(
    settings: Settings, procs: Procs, workers: int, run_id: str, seed: int, days: float = 1.0
) -> tuple[list[TickCompleted], list[EventHappened]]:
    for i in range(workers):
        procs.worker(f"worker{i}", settings, "clock,world,impact")
    await start_run(settings, run_id, seed, days=days)
    n_ticks = round(days * TICKS_PER_DAY)
    return await collect(settings, procs, run_id, n_ticks)


async def collect(
    settings: Settings, procs: Procs, run_id: str, n_ticks: int, timeout_s: float = 240
) -> tuple[list[TickCompleted], list[EventHappened]]:
    """Wait for a run's last tick; return its ticks (one per tick) and its distinct events."""

    def finished(msgs: list[TickCompleted]) -> bool:
        procs.assert_alive()
        return any(m.run_id == run_id and m.last for m in msgs)

    log = [t for t in await read_until(settings, TICKS, finished, timeout_s) if t.run_id == run_id]
    by_tick = {t.tick: t for t in log}
    for t in log:  # a tick re-reported after a recovery must be the same tick
        assert t.state_hash == by_tick[t.tick].state_hash
    ticks = [by_tick[i] for i in sorted(by_tick)]
    assert [t.tick for t in ticks] == list(range(n_ticks)), "a tick was skipped"
    total = sum(t.events for t in ticks)
    events = await read_until(settings, EVENTS, lambda m: len({e.event_id for e in m}) >= total, 60)
    return ticks, list({e.event_id: e for e in events if e.run_id == run_id}.values())


@pytest.mark.parametrize(("partitions", "workers"), [(1, 1), (4, 2)])
async def test_streamed_run_matches_reference(
    settings_factory: Callable[..., Settings], procs: Procs, partitions: int, workers: int
) -> None:
    settings = settings_factory(world_partitions=partitions)
    ticks, events = await play(settings, procs, workers, "det-run", seed=42)
    ref = reference("det-run", 42, TICKS_PER_DAY)
    assert [t.state_hash for t in ticks] == ref.hashes
    assert tallies(ticks) == tallies(ref.completed)
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in ref.events)
    assert {e.source for e in events} >= {"npc", "scheduled", "director"}
    assert ticks[-1].last and ticks[-1].npcs == len(ref.index.npc_ids)


async def test_a_run_whose_first_tick_has_events_completes(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    """A run from 07:00 has events in its first tick, and its shards send each other effect
    batches. Those were queued in the producer just before the shards' first changelog
    records, whose new topic made the producer's metadata forget the shard inbox: the tick
    stalled for good, the commit waiting in the producer's flush (streams/outbox.py). The
    watchdog's re-send is kept out of the way: a send to the inbox un-sticks the tick."""
    settings = settings_factory(world_partitions=4, tick_timeout_s=600.0)
    procs.worker("worker", settings, "clock,world,impact")
    n_ticks, start = 3, 7 * 60
    days = n_ticks * settings.step_minutes / 1440
    await start_run(settings, "morning-run", seed=4, days=days, start_minute=start)
    ticks, events = await collect(settings, procs, "morning-run", n_ticks, 120)
    ref = LocalRun(load_world("town"), "morning-run", 4, start_minute=start)
    for _ in range(n_ticks):
        ref.step()
    assert ticks[0].events > 0, "the first tick should have events"
    assert [t.state_hash for t in ticks] == ref.hashes
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in ref.events)


async def test_different_seed_gives_different_run(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    settings = settings_factory()
    ticks, events = await play(settings, procs, 1, "seed-7", seed=7, days=0.5)
    ref42 = reference("seed-7", 42, TICKS_PER_DAY // 2)
    ref7 = reference("seed-7", 7, TICKS_PER_DAY // 2)
    assert [t.state_hash for t in ticks] == ref7.hashes
    assert ref7.hashes[-1] != ref42.hashes[-1]
    assert {e.event_id for e in events} != {e.event_id for e in ref42.events}


async def test_killed_worker_is_replaced_and_the_run_is_exact(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    """kill -9 of a worker mid-run: a replacement takes over; no tick skipped or repeated,
    and every hash still equals the reference."""
    settings = settings_factory(world_partitions=4, tick_timeout_s=3.0, speed=3000.0)
    procs.worker("worker0", settings, "clock,world,impact")
    procs.worker("worker1", settings, "clock,world,impact")
    await start_run(settings, "crash-run", seed=9, speed=3000.0)  # ~0.3 s per tick
    await read_until(settings, TICKS, lambda m: len(m) >= 20, 120)
    procs.kill("worker0", signal.SIGKILL)
    procs.running = [(n, p) for n, p in procs.running if n != "worker0"]
    procs.worker("worker2", settings, "clock,world,impact")
    ticks, events = await collect(settings, procs, "crash-run", TICKS_PER_DAY, 300)
    ref = reference("crash-run", 9, TICKS_PER_DAY)
    assert [t.state_hash for t in ticks] == ref.hashes
    assert tallies(ticks) == tallies(ref.completed)  # the recovered clock's inputs too
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in ref.events)


async def test_workers_joining_and_leaving_mid_run_keep_the_run_exact(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    """Rebalances without a crash: a worker joins mid-run and takes half the shards, then
    the first one leaves (SIGTERM) and the newcomer takes everything, the clock included.
    No tick is skipped or repeated and every hash equals the reference."""
    settings = settings_factory(world_partitions=4, tick_timeout_s=3.0, speed=3000.0)
    procs.worker("worker0", settings, "clock,world,impact")
    await start_run(settings, "moving-run", seed=11, speed=3000.0)  # ~0.3 s per tick
    await read_until(settings, TICKS, lambda m: len(m) >= 15, 120)
    procs.worker("worker1", settings, "clock,world,impact")  # takes half the shards
    await read_until(settings, TICKS, lambda m: len(m) >= 45, 180)
    procs.kill("worker0")  # leaves: worker1 takes everything, the clock included
    procs.running = [(n, p) for n, p in procs.running if n != "worker0"]
    ticks, events = await collect(settings, procs, "moving-run", TICKS_PER_DAY, 240)
    ref = reference("moving-run", 11, TICKS_PER_DAY)
    assert [t.state_hash for t in ticks] == ref.hashes
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in ref.events)


async def test_pause_resume_and_stop(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    settings = settings_factory()
    procs.worker("worker", settings, "clock,world,impact")
    await start_run(settings, "paused-run", seed=2, days=2, speed=6000.0)  # 0.15 s per tick
    await read_until(settings, TICKS, lambda m: len(m) >= 4, 60)
    await command(settings, "pause", "paused-run")
    await asyncio.sleep(2)
    before = len(await read_settled(settings, TICKS, settle_s=1.5))
    await asyncio.sleep(2)
    assert len(await read_settled(settings, TICKS, settle_s=0.5)) == before, "ticked while paused"
    await command(settings, "speed", "paused-run", speed=600.0)  # 1.5 s per tick
    await command(settings, "resume", "paused-run")
    await read_until(settings, TICKS, lambda m: len(m) >= before + 1, 60)
    await asyncio.sleep(1.0)
    slow = len(await read_settled(settings, TICKS, settle_s=0.2))
    assert slow <= before + 3, "the new speed was not kept"
    await command(settings, "speed", "paused-run", speed=0.0)  # as fast as possible
    await read_until(settings, TICKS, lambda m: len(m) >= slow + 8, 60)
    await command(settings, "stop", "paused-run")
    ticks = await read_until(settings, TICKS, lambda m: any(t.last for t in m), 60)
    assert slow + 8 <= len(ticks) < 2 * TICKS_PER_DAY
    assert [t.tick for t in ticks] == list(range(len(ticks)))
    ref = reference("paused-run", 2, len(ticks))
    assert [t.state_hash for t in ticks] == ref.hashes


async def command(settings: Settings, what: str, run_id: str, speed: float = 0.0) -> None:
    cmd = RunCommanded(command=what, run_id=run_id, speed=speed)
    await produce(settings, CLOCK_INBOX, run_id.encode(), encode(cmd), 0)
