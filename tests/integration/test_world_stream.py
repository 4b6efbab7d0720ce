"""The world on a real broker: worker subprocesses, ticks through Kafka, the tick barrier.

The streamed run must match the in-process reference (sim.local.LocalRun) event for
event and hash for hash, whatever the partition and worker count.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sim.local import LocalRun
from sim.world import load_world
from tests.fixtures.processes import Procs, read_until, start_run
from topics import EVENTS, TICKS
from topics.models import EventHappened, TickCompleted
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS_PER_DAY = 96


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

    def finished(msgs: list[TickCompleted]) -> bool:
        procs.assert_alive()
        return any(m.run_id == run_id and m.last for m in msgs)

    ticks = [t for t in await read_until(settings, TICKS, finished, 240) if t.run_id == run_id]
    assert len(ticks) == n_ticks
    total = sum(t.events for t in ticks)
    events = await read_until(settings, EVENTS, lambda m: len(m) >= total, 60)
    return sorted(ticks, key=lambda t: t.tick), events


@pytest.mark.parametrize(("partitions", "workers"), [(1, 1), (4, 2)])
async def test_streamed_run_matches_reference(
    settings_factory: Callable[..., Settings], procs: Procs, partitions: int, workers: int
) -> None:
    settings = settings_factory(world_partitions=partitions)
    ticks, events = await play(settings, procs, workers, "det-run", seed=42)
    ref = reference("det-run", 42, TICKS_PER_DAY)
    assert [t.state_hash for t in ticks] == ref.hashes
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in ref.events)
    assert {e.source for e in events} >= {"npc", "scheduled"}
    assert ticks[-1].last and ticks[-1].npcs == len(ref.index.npc_ids)


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
