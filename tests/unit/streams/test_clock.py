"""The clock's barrier logic, without Kafka."""

from __future__ import annotations

from streams.clock import RunClock
from topics.models import ShardTickDone


def done(tick: int, shard: int, digest: int, events: int = 1) -> ShardTickDone:
    return ShardTickDone(
        run_id="r",
        tick=tick,
        shard=shard,
        n_shards=3,
        npcs=10,
        events=events,
        effects=2,
        state_digest=digest,
    )


def test_tick_completes_only_when_every_shard_reported() -> None:
    clock = RunClock("r", 1, "town", 15, total_ticks=2, speed=0, n_shards=3, current=0)
    assert clock.record(done(0, 0, 1)) is None
    assert clock.record(done(0, 0, 1)) is None  # a redelivered report counts once
    assert clock.record(done(0, 2, 2)) is None
    completed = clock.record(done(0, 1, 3))
    assert completed is not None
    assert completed.state_hash == f"{6:016x}" and completed.events == 3
    assert not completed.last and clock.waiting


def test_stale_reports_are_ignored_and_last_tick_is_marked() -> None:
    clock = RunClock("r", 1, "town", 15, total_ticks=2, speed=0, n_shards=3, current=1)
    assert clock.record(done(0, 0, 1)) is None
    for shard in range(3):
        completed = clock.record(done(1, shard, 1))
    assert completed is not None and completed.last and clock.finished


def test_recent_events_feed_the_next_tick() -> None:
    clock = RunClock("r", 1, "town", 15, total_ticks=10, speed=0, n_shards=1, current=0)
    for tick in range(6):
        clock.current = tick
        clock.record(
            ShardTickDone(
                run_id="r",
                tick=tick,
                shard=0,
                n_shards=1,
                npcs=1,
                events=tick,
                effects=0,
                state_digest=0,
            )
        )
    assert clock.tick_message(6, 0).recent_events == 2 + 3 + 4 + 5


def test_speed_sets_the_delay() -> None:
    clock = RunClock("r", 1, "town", 15, total_ticks=10, speed=900, n_shards=1)
    clock.tick_started_wall = __import__("time").perf_counter()
    assert 0.9 < clock.next_delay() <= 1.0  # 15 sim-minutes at 900x = 1 s
