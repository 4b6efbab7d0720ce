"""The clock's barrier logic and recovery, without Kafka (``sim/clock.py``)."""

from __future__ import annotations

from sim.clock import RunClock, recover
from topics.models import InjectedEvent, RunCommanded, ShardTickDone, TickCompleted


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
    assert clock.record(done(0, 0, 1), 0.0) is None
    assert clock.record(done(0, 0, 1), 0.0) is None  # a redelivered report counts once
    assert clock.record(done(0, 2, 2), 0.0) is None
    completed = clock.record(done(0, 1, 3), 0.0)
    assert completed is not None
    assert completed.state_hash == f"{6:016x}" and completed.events == 3
    assert not completed.last and clock.waiting


def test_stale_reports_are_ignored_and_last_tick_is_marked() -> None:
    clock = RunClock("r", 1, "town", 15, total_ticks=2, speed=0, n_shards=3, current=1)
    assert clock.record(done(0, 0, 1), 0.0) is None
    for shard in range(3):
        completed = clock.record(done(1, shard, 1), 0.0)
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
            ),
            0.0,
        )
    assert clock.tick_message(6, 0).recent_events == 2 + 3 + 4 + 5


def test_speed_sets_the_delay() -> None:
    clock = RunClock("r", 1, "town", 15, total_ticks=10, speed=900, n_shards=1)
    clock.tick_started_wall = 100.0
    assert clock.next_delay(100.0) == 1.0  # 15 sim-minutes at 900x = 1 s
    assert clock.next_delay(100.25) == 0.75
    assert clock.next_delay(102.0) == 0.0


def command(kind: str, **kw: object) -> RunCommanded:
    return RunCommanded(command=kind, run_id="r", seed=3, days=1, **kw)  # type: ignore[arg-type]


def test_injections_ride_the_next_tick_and_its_resent_copies() -> None:
    clock = RunClock.from_command(command("start"), n_shards=2)
    quake = InjectedEvent(type="festival", actor="n1")
    clock.apply(command("inject", event=quake))
    assert clock.start_next(0.0) == 0
    assert clock.tick_message(0, 1).injected == [quake]
    later = InjectedEvent(type="scandal", actor="n2")
    clock.apply(command("inject", event=later))  # arrives while tick 0 is in flight
    # the watchdog re-sends tick 0 to a shard that did not report: the same injections
    clock.record(done(0, 0, 1).model_copy(update={"n_shards": 2}), 0.0)
    assert clock.missing() == [1]
    assert clock.tick_message(0, 1).injected == [quake]
    clock.record(done(0, 1, 1).model_copy(update={"n_shards": 2}), 0.0)
    assert clock.start_next(1.0) == 1
    assert clock.tick_message(1, 0).injected == [later]


def completed(tick: int, events: int, last: bool = False) -> TickCompleted:
    return TickCompleted(
        run_id="r", tick=tick, sim_minute=tick * 15, state_hash="0" * 16, npcs=1,
        events=events, effects=0, wall_ms=1.0, last=last,
    )  # fmt: skip


def test_recover_resumes_after_the_last_completed_tick() -> None:
    log = [command("start"), command("pause"), command("resume")]
    runs = recover(log, [completed(t, t) for t in (0, 1, 2, 3, 4, 5)][::-1], n_shards=2)
    run = runs["r"]
    assert run.current == 5 and run.waiting and not run.paused and not run.finished
    assert run.recent == [2, 3, 4, 5]  # the last hour's events feed the next tick
    assert run.start_next(0.0) == 6  # no tick skipped, none repeated


def test_recover_keeps_a_paused_or_finished_run_where_it_was() -> None:
    runs = recover([command("start"), command("pause")], [completed(0, 1)], n_shards=1)
    assert runs["r"].paused and runs["r"].current == 0
    done_run = recover([command("start")], [completed(0, 1), completed(1, 1, last=True)], 1)
    assert done_run["r"].finished
    assert recover([command("pause")], [], 1) == {}  # no start: nothing to resume
