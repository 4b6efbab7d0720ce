"""Replay, branch and compare over run logs (sim.replay), with in-process runs as the logs."""

from __future__ import annotations

import pytest

from sim.barrier import ShardBarrier
from sim.local import LocalRun
from sim.replay import BranchError, RunLog, diff, plan_branch, replay, world_at
from sim.snapshot import Snapshot, assemble, restore_parts
from sim.world import WorldIndex, shard_of
from topics.models import InjectedEvent

TICKS = 48


def log_of(run: LocalRun, start=None) -> RunLog:
    return RunLog.of(start or run.start_command(), run.completed, run.events, run.parts)


@pytest.fixture(scope="module")
def parent(town: WorldIndex, argument: InjectedEvent) -> LocalRun:
    run = LocalRun(town, "parent", seed=5, n_shards=2, snapshot_every=16)
    for t in range(TICKS):
        run.step([argument] if t in (3, 8) else None)
    return run


def test_replay_of_a_run_is_identical_and_verifies_its_snapshots(
    town: WorldIndex, parent: LocalRun
) -> None:
    report = replay(town, log_of(parent))
    assert report.identical, report.first_difference
    assert report.ticks == TICKS
    assert report.snapshots == {15: "verified", 31: "verified", 47: "verified"}


def test_replay_names_the_first_tick_whose_hash_differs(town: WorldIndex, parent: LocalRun) -> None:
    log = log_of(parent)
    log.ticks[9] = log.ticks[9].model_copy(update={"state_hash": "0" * 16})
    report = replay(town, log)
    assert not report.identical
    assert report.first_difference is not None
    assert (report.first_difference.tick, report.first_difference.what) == (9, "state hash")
    assert report.ticks == 10


def test_replay_names_events_missing_from_or_added_to_the_log(
    town: WorldIndex, parent: LocalRun
) -> None:
    log = log_of(parent)
    victim = next(e for e in log.events if e.tick > 20)
    log.events.remove(victim)
    report = replay(town, log)
    diff_ = report.first_difference
    assert diff_ is not None and diff_.what == "events" and diff_.tick == victim.tick
    assert diff_.only_in_replay == [victim.event_id] and diff_.only_in_log == []


def test_replay_without_the_logged_injection_would_differ(
    town: WorldIndex, parent: LocalRun
) -> None:
    log = log_of(parent)
    log.ticks[3] = log.ticks[3].model_copy(update={"injected": []})
    report = replay(town, log)
    assert report.first_difference is not None and report.first_difference.tick == 3


@pytest.mark.parametrize("at", [10, 15, 31, 40])
def test_a_no_change_branch_reproduces_the_parent(
    town: WorldIndex, parent: LocalRun, at: int
) -> None:
    plan = plan_branch(town, log_of(parent), at, n_shards=3)
    assert plan.start.parent_run == "parent" and plan.start.branch_tick == at
    assert plan.restored_from == max(t for t in (-1, 15, 31) if t <= at)
    assert plan.replayed == at - plan.restored_from
    branch = LocalRun(town, plan.run_id, plan.start.seed, n_shards=3)
    first = plan.restores[0]
    assert {r.shard for r in plan.restores} == {0, 1, 2} and first.tick == at
    for msg in plan.restores:
        branch.shards[msg.shard].on_restore(msg)
    branch.clock.restore(plan.start.base)
    for _ in range(TICKS - at - 1):
        branch.step()
    assert branch.hashes == parent.hashes[at + 1 :]
    # its own first snapshot is the world at the branch tick
    snap = assemble(plan.parts)[at]
    assert isinstance(snap, Snapshot) and snap.states == world_at(town, log_of(parent), at)


def test_a_branch_with_an_injection_diverges_at_its_first_tick(
    town: WorldIndex, parent: LocalRun, argument: InjectedEvent
) -> None:
    plan = plan_branch(town, log_of(parent), 24, n_shards=1, injected=[argument])
    child = LocalRun.from_snapshot(town, assemble(plan.parts)[24], run_id=plan.run_id)
    assert isinstance(assemble(plan.parts)[24], Snapshot)
    child.step(plan.start.injected)
    for _ in range(5):
        child.step()
    result = diff(log_of(parent), log_of(child, plan.start), parent.states, child.states)
    assert result.first_divergent_tick == 25
    assert result.common_ticks == 6
    assert result.events_only_in_b >= 1
    assert result.relationships_moved and result.relationships_moved[0]["delta"] > 0


def test_an_unchanged_branch_shows_no_divergence(town: WorldIndex, parent: LocalRun) -> None:
    plan = plan_branch(town, log_of(parent), 31, n_shards=1)
    child = LocalRun.from_snapshot(town, assemble(plan.parts)[31], run_id=plan.run_id)
    for _ in range(TICKS - 32):
        child.step()
    result = diff(log_of(parent), log_of(child, plan.start))
    assert result.first_divergent_tick is None and result.only_in_a == result.only_in_b == []
    child_log = RunLog.of(plan.start, child.completed, child.events, plan.parts + child.parts)
    report = replay(town, child_log)
    assert report.identical and report.from_tick == 32 and report.ticks == TICKS - 32
    assert not replay(town, log_of(child, plan.start)).identical  # without its first snapshot


def test_branching_beyond_the_run_names_its_last_tick(town: WorldIndex, parent: LocalRun) -> None:
    with pytest.raises(BranchError, match=f"its last tick is {TICKS - 1}") as err:
        plan_branch(town, log_of(parent), TICKS + 5, n_shards=1)
    assert err.value.status == 422


def test_a_changed_catalog_is_refused_with_both_digests_unless_asked(
    town: WorldIndex, parent: LocalRun
) -> None:
    start = parent.start_command().model_copy(update={"catalog_digest": "f" * 64})
    with pytest.raises(BranchError, match="f" * 64) as err:
        plan_branch(town, log_of(parent, start), 10, n_shards=1)
    assert err.value.status == 409 and town.catalog.digest in str(err.value)
    assert plan_branch(town, log_of(parent, start), 10, n_shards=1, allow_catalog_change=True)


def test_a_corrupt_snapshot_falls_back_to_an_earlier_one_and_says_so(
    town: WorldIndex, parent: LocalRun
) -> None:
    log = log_of(parent)
    bad = next(p for p in log.parts if p.tick == 31 and p.source == "shard")
    log.parts[log.parts.index(bad)] = bad.model_copy(update={"sha256": "0" * 64})
    plan = plan_branch(town, log, 40, n_shards=1)
    assert plan.restored_from == 15 and plan.replayed == 25
    assert "snapshot at tick 31 refused" in plan.notes[0] and "checksum mismatch" in plan.notes[0]


def test_branch_ids_are_derived_from_what_makes_the_branch(
    town: WorldIndex, parent: LocalRun
) -> None:
    a = plan_branch(town, log_of(parent), 10, n_shards=1)
    b = plan_branch(town, log_of(parent), 10, n_shards=1)
    c = plan_branch(town, log_of(parent), 10, n_shards=1, seed=99)
    assert a.run_id == b.run_id != c.run_id and len(a.run_id) <= 64


def test_a_branch_does_not_inherit_the_parents_later_injections(
    town: WorldIndex, parent: LocalRun
) -> None:
    """An injection is an admin's act on one run: a branch made before it goes without it."""
    plan = plan_branch(town, log_of(parent), 5, n_shards=1)
    child = LocalRun.from_snapshot(town, assemble(plan.parts)[5], run_id=plan.run_id)
    for _ in range(8):
        child.step()
    assert child.hashes[:2] == parent.hashes[6:8]  # ticks 6 and 7, before it
    assert child.hashes[2] != parent.hashes[8]  # the parent's tick 8 took the injection
    assert child.completed[2].injected == [] and parent.completed[8].injected


def test_replay_compares_content_not_where_the_world_was_found(
    town: WorldIndex, parent: LocalRun
) -> None:
    """A run started on a world directory logs that path in its events; the replay, on
    the same catalog, is still identical (the catalog digest says which world it is)."""
    log = log_of(parent)
    log.events = [e.model_copy(update={"world": "/srv/worlds/town"}) for e in log.events]
    assert replay(town, log).identical


def test_a_restore_cut_off_midway_resumes_from_the_shard_table(
    town: WorldIndex, parent: LocalRun
) -> None:
    """A branch's shard that stops after some restore parts (kill -9), is rebuilt from its
    table (restoring: the NPCs still to come are not seeded) and takes the rest, plays
    exactly like the parent."""
    at = 20
    log = log_of(parent)
    plan = plan_branch(town, log, at, n_shards=1)
    parts = restore_parts(
        plan.run_id, at, plan.start, world_at(town, log, at), shard_of, 1, max_bytes=2_000
    )
    assert len(parts) >= 3
    branch = LocalRun(town, plan.run_id, plan.start.seed, restoring=True)
    for msg in parts[:2]:
        branch._carry_out(0, branch.shards[0].on_restore(msg))
    table = branch.tables[0]
    again = ShardBarrier.recover(town, branch.tick_message(0, 0), table.get, restoring=True)
    assert again.restored == {0, 1} and len(again.states) < len(town.npc_ids)
    branch.shards[0] = again
    for msg in [parts[1], *parts[2:]]:  # the last one taken again: a redelivery
        branch._carry_out(0, again.on_restore(msg))
    assert again.finished == at and len(again.states) == len(town.npc_ids)
    branch.clock.restore(plan.start.base)
    for _ in range(TICKS - at - 1):
        branch.step()
    assert branch.hashes == parent.hashes[at + 1 :]
