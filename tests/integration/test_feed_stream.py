"""The feed loop on a real broker: exposures and reactions equal the in-process reference's.

A world directory with the feed loop on (the starter town, ``feed.json`` enabled) is
played by worker subprocesses over 4 partitions and 2 workers; every tick's hash and
tallies (the feed's posts and counts included), every event (the reactions included)
and every exposure on the ``exposures`` topic must equal what ``sim.local.LocalRun``
computes in process with one shard; and the run's log, read back, replays identically
(exposures compared tick by tick).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bus.runlog import read_run
from catalog.generate import write_world
from sim.local import LocalRun
from sim.replay import replay
from sim.world import WorldIndex, load_world
from tests.fixtures.processes import Procs, read_until, start_run
from tests.integration.test_world_stream import collect, tallies
from tests.unit.sim.catalog_edit import with_feed
from topics import EXPOSURES
from topics.models import PostSeen
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS = 64  # day 1 until 16:00: the feed fills from the morning on


async def test_streamed_feed_matches_the_reference(
    settings_factory: Callable[..., Settings], procs: Procs, tmp_path: Path
) -> None:
    index: WorldIndex = with_feed(load_world("town").catalog)
    world = str(write_world(index.catalog, tmp_path / "feedtown"))
    settings = settings_factory(world_partitions=4)
    for i in range(2):
        procs.worker(f"worker{i}", settings, "clock,world,impact")
    await start_run(settings, "feed-run", seed=42, days=TICKS / 96, world=world)
    ticks, events = await collect(settings, procs, "feed-run", TICKS)
    ref = LocalRun(load_world(world), "feed-run", 42, n_shards=1)
    for _ in range(TICKS):
        ref.step()
    assert ref.exposures and any(e.source == "feed" for e in ref.events)
    assert [t.state_hash for t in ticks] == ref.hashes
    assert tallies(ticks) == tallies(ref.completed)
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in ref.events)
    want = len(ref.exposures)

    def distinct(msgs: list[PostSeen]) -> int:
        return len({e.exposure_id for e in msgs})

    # at least once: a tick played again after a rebalance sends its exposures again
    got = await read_until(settings, EXPOSURES, lambda m: distinct(m) >= want, 60)
    assert {e.exposure_id for e in got} == {e.exposure_id for e in ref.exposures}
    assert distinct(got) == want
    by_id = {e.exposure_id: e for e in ref.exposures}
    assert all(e == by_id[e.exposure_id] for e in got)
    # the run's log replays to the same ticks, events and exposures (read back from Kafka)
    log = await read_run(settings, "feed-run")
    assert len(log.exposures) == want
    report = replay(load_world(world), log)
    assert report.identical, report.first_difference
