"""Full-world snapshots (sim.snapshot) and restoring a run from one (sim.local, sim.barrier)."""

from __future__ import annotations

import pytest

from sim.clock import RunClock, recover
from sim.local import LocalRun
from sim.snapshot import Refused, Snapshot, assemble, clock_part, split_states
from sim.world import WorldIndex
from topics.models import InjectedEvent, RunCommanded

TICKS = 40


@pytest.fixture(scope="module")
def parent(town: WorldIndex, argument: InjectedEvent) -> LocalRun:
    run = LocalRun(town, "parent", seed=3, snapshot_every=8, n_shards=2)
    for t in range(TICKS):
        run.step([argument] if t == 5 else None)
    return run


def test_event_ids_and_state_hashes_do_not_depend_on_the_run_id(town: WorldIndex) -> None:
    a = LocalRun(town, "run-a", seed=3)
    b = LocalRun(town, "run-b-with-another-id", seed=3)
    for _ in range(TICKS):
        a.step()
        b.step()
    assert a.events, "no events to compare"
    assert a.hashes == b.hashes
    assert [e.event_id for e in a.events] == [e.event_id for e in b.events]
    assert {e.run_id for e in b.events} == {"run-b-with-another-id"}


def test_a_run_writes_a_complete_verified_snapshot_every_n_ticks(parent: LocalRun) -> None:
    snaps = assemble(parent.parts)
    assert sorted(snaps) == [7, 15, 23, 31, 39]
    for tick, snap in snaps.items():
        assert isinstance(snap, Snapshot), snap
        assert snap.tick == tick
        assert len(snap.states) == len(parent.index.npc_ids)
        assert snap.start.catalog_digest == parent.index.catalog.digest
        assert snap.clock.tick == tick


@pytest.mark.parametrize("at", [7, 23])
@pytest.mark.parametrize("n_shards", [1, 3])
def test_restored_snapshot_plays_on_with_the_original_hashes(
    town: WorldIndex, parent: LocalRun, at: int, n_shards: int
) -> None:
    snap = assemble(parent.parts)[at]
    assert isinstance(snap, Snapshot)
    branch = LocalRun.from_snapshot(town, snap, run_id="branch", n_shards=n_shards)
    for _ in range(TICKS - at - 1):
        branch.step()
    assert branch.hashes == parent.hashes[at + 1 :]
    later = [e for e in parent.events if e.tick > at]

    def content(events: list) -> list:  # shard order differs with the shard count
        return sorted(
            (e.model_copy(update={"run_id": "x"}) for e in events),
            key=lambda e: (e.tick, e.event_id),
        )

    assert later and content(branch.events) == content(later)


def test_a_restored_snapshot_with_an_injection_diverges_only_from_then(
    town: WorldIndex, parent: LocalRun, argument: InjectedEvent
) -> None:
    snap = assemble(parent.parts)[15]
    assert isinstance(snap, Snapshot)
    branch = LocalRun.from_snapshot(town, snap, run_id="what-if")
    branch.step([argument])  # tick 16
    for _ in range(5):
        branch.step()
    assert branch.hashes[0] != parent.hashes[16]
    assert branch.completed[0].injected == [argument]


def test_a_corrupt_part_is_refused_with_its_place(parent: LocalRun) -> None:
    parts = [p.model_copy(deep=True) for p in parent.parts if p.tick == 7]
    shard_part = next(p for p in parts if p.source == "shard")
    victim = sorted(shard_part.states)[0]
    shard_part.states[victim]["rep"] = 99.0
    got = assemble(parts)[7]
    assert isinstance(got, Refused)
    assert f"shard part {shard_part.shard}/{shard_part.part}: checksum mismatch" in got.reason


def test_a_truncated_snapshot_is_refused(parent: LocalRun) -> None:
    parts = [p for p in parent.parts if p.tick == 7 and not (p.source == "shard" and p.shard == 1)]
    got = assemble(parts)[7]
    assert isinstance(got, Refused)
    assert got.reason == "truncated: shard 1 of 2 is missing"
    no_clock = [p for p in parent.parts if p.tick == 7 and p.source == "shard"]
    assert assemble(no_clock)[7] == Refused("parent", 7, "truncated: the clock's part is missing")


def test_states_are_split_into_bounded_parts_in_id_order() -> None:
    states = {f"npc{i:03d}": {"rep": 50.0, "mem": ["x" * 100]} for i in range(50)}
    chunks = split_states(states, max_bytes=1000)
    assert len(chunks) > 5
    assert [k for c in chunks for k in c] == sorted(states)
    assert split_states({}) == [{}]


def test_the_clock_part_checksum_covers_the_manifest(parent: LocalRun) -> None:
    start = parent.start_command()
    part = clock_part("parent", 3, 2, start, parent.clock.state())
    tampered = part.model_copy(update={"start": start.model_copy(update={"seed": 4})})
    shards = [
        p.model_copy(update={"tick": 3})
        for p in parent.parts
        if p.tick == 7 and p.source == "shard"
    ]
    assert isinstance(assemble([part, *shards])[3], Snapshot)
    assert isinstance(assemble([tampered, *shards])[3], Refused)


def test_clock_recovery_keeps_injections_no_completed_tick_took(argument: InjectedEvent) -> None:
    start = RunCommanded(command="start", run_id="r", seed=1, days=1)
    inj = [
        RunCommanded(
            command="inject",
            run_id="r",
            event=argument.model_copy(update={"summary": str(i)}),
        )
        for i in range(3)
    ]
    clock = RunClock.from_command(start, 1)
    clock.apply(inj[0])
    clock.start_next(0.0)
    from topics.models import ShardTickDone

    done = clock.record(
        ShardTickDone(
            run_id="r", tick=0, shard=0, n_shards=1, npcs=1, events=0, effects=0, state_digest=0
        ),
        0.0,
    )
    assert done is not None and [e.summary for e in done.injected] == ["0"]
    # two more arrive, tick 1 takes them, the clock dies before tick 1 completes
    runs = recover([start, *inj], [done], 1)
    assert [e.summary for e in runs["r"].injected] == ["1", "2"]
    assert runs["r"].start_next(0.0) == 1
    assert [e.summary for e in runs["r"].in_flight] == ["1", "2"]


def test_a_branch_clock_continues_after_its_base(parent: LocalRun) -> None:
    base = parent.clock.state()
    start = RunCommanded(
        command="start",
        run_id="b",
        seed=3,
        days=1,
        parent_run="parent",
        branch_tick=base.tick,
        base=base,
    )
    clock = RunClock.from_command(start, 2)
    assert clock.current == base.tick and clock.waiting
    assert clock.total_ticks == base.tick + 1 + 96
    assert clock.start_next(0.0) == base.tick + 1
    msg = clock.tick_message(base.tick + 1, 0)
    want = parent.clock.tick_message(base.tick + 1, 0)
    same = ("recent_events", "posts_last_hour", "mean_affinity", "conflict_share", "director_last")
    assert {k: getattr(msg, k) for k in same} == {k: getattr(want, k) for k in same}
    recovered = recover([start], [], 2)["b"]
    assert recovered.current == base.tick
    assert recovered.tick_message(base.tick + 1, 0).recent_events == want.recent_events
