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


def tallied(tick: int, shard: int, n_shards: int, **kw: object) -> ShardTickDone:
    """A shard's report with tick-wide tallies."""
    return done(tick, shard, 1).model_copy(update={"n_shards": n_shards, **kw})


def test_tick_wide_inputs_are_summed_from_the_shards_reports() -> None:
    clock = RunClock.from_command(command("start"), n_shards=2)
    first = clock.tick_message(0, 0)
    assert first.mean_affinity is None and first.conflict_share is None  # nothing reported yet
    for tick in range(5):
        clock.start_next(0.0)
        clock.record(
            tallied(tick, 0, 2, render_requests=tick, affinity_milli=10_500, relationships=3,
                    in_conflict=1, director_fired=["b"] if tick == 1 else []),
            0.0,
        )  # fmt: skip
        completed_tick = clock.record(
            tallied(tick, 1, 2, render_requests=1, affinity_milli=-500, relationships=1,
                    in_conflict=0, director_fired=["a"] if tick in (1, 3) else []),
            0.0,
        )  # fmt: skip
        assert completed_tick is not None
        assert completed_tick.render_requests == tick + 1
        assert completed_tick.affinity_milli == 10_000 and completed_tick.relationships == 4
        assert completed_tick.in_conflict == 1 and completed_tick.npcs == 20
        assert completed_tick.director_fired == {1: ["a", "b"], 3: ["a"]}.get(tick, [])
    msg = clock.tick_message(5, 1)
    assert msg.posts_last_hour == 2 + 3 + 4 + 5  # the last hour's ticks (1..4)
    assert msg.mean_affinity == 2.5  # 10.000 over 4 relationships
    assert msg.conflict_share == 0.05  # 1 NPC of 20
    assert msg.director_last == {"a": 3, "b": 1}
    assert clock.tick_message(5, 0).model_dump(exclude={"shard"}) == msg.model_dump(
        exclude={"shard"}
    )  # every shard gets the same inputs


def test_recover_rebuilds_the_tick_wide_inputs_from_the_ticks_log() -> None:
    live = RunClock.from_command(command("start"), n_shards=1)
    log: list[TickCompleted] = []
    for tick in range(7):
        live.start_next(0.0)
        got = live.record(
            tallied(tick, 0, 1, render_requests=tick % 3, affinity_milli=1000 * tick,
                    relationships=2, in_conflict=tick % 2,
                    director_fired=["drama"] if tick in (2, 5) else []),
            0.0,
        )  # fmt: skip
        assert got is not None
        log.append(got)
    redelivered = [*log, log[3]][::-1]  # out of order, one tick twice
    run = recover([command("start")], redelivered, n_shards=1)["r"]
    assert run.tick_message(7, 0) == live.tick_message(7, 0)
    assert run.director_last == {"drama": 5}


def test_speed_command_changes_the_delay_and_survives_recovery() -> None:
    clock = RunClock.from_command(command("start", speed=900), n_shards=1)
    clock.tick_started_wall = 100.0
    assert clock.next_delay(100.0) == 1.0
    clock.apply(command("speed", speed=1800))
    assert clock.next_delay(100.0) == 0.5
    clock.apply(command("speed", speed=0))
    assert clock.next_delay(100.0) == 0.0  # as fast as possible
    runs = recover([command("start", speed=900), command("speed", speed=450)], [], 1)
    assert runs["r"].speed == 450


def test_a_run_can_start_on_any_day_and_time() -> None:
    start = 2 * 1440 + 7 * 60 + 45  # day 3, 07:45
    clock = RunClock.from_command(command("start", start_minute=start), n_shards=1)
    assert clock.tick_message(0, 0).sim_minute == start
    assert clock.tick_message(20, 0).sim_minute == start + 20 * 15  # day 3, 12:45
    late = RunCommanded(command="start", run_id="r", start_minute=3649 * 1440 + 1439)
    assert late.start_minute > 1439
