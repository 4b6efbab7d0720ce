"""Decisions at the tick barrier (sim.barrier) and the clock (sim.clock): a tick waits for
the decisions due at it, a late or repeated one is ignored and counted, a decision that
arrives before its shard's machine is rebuilt is found in the table, and a recovering
clock names the same focal NPCs."""

from __future__ import annotations

from sim.barrier import ShardBarrier, park_decision
from sim.clock import RunClock, recover
from sim.local import LocalRun, unanswered
from sim.world import WorldIndex
from topics.codec import encode
from topics.models import DecisionMade, DecisionRequested, RunCommanded


def _until_requests(run: LocalRun) -> list[DecisionRequested]:
    for _ in range(96):
        run.step()
        if run.requests:
            return run.requests
    raise AssertionError("no decision requested in a day")


def test_a_tick_waits_for_its_decisions_and_plays_when_the_last_arrives(
    town: WorldIndex,
) -> None:
    run = LocalRun(town, "w", 7, 1, decide_budget=4)
    reqs = _until_requests(run)
    due = reqs[0].due_tick
    shard: ShardBarrier = run.shards[0]
    run.clock.start_next(0.0)
    tick = run.tick_message(due, 0)
    assert tick.tick == due
    step = shard.on_tick(tick)  # nothing delivered yet: the shard holds the tick
    assert shard.waiting is not None and step.events == [] and step.batches == []
    answers = [unanswered(r) for r in reqs]
    for made in answers[:-1]:
        step = shard.on_decision(made, encode(made))
        assert shard.waiting is not None and not step.batches
    step = shard.on_decision(answers[-1], encode(answers[-1]))
    assert shard.waiting is None
    assert step.batches, "the held tick was played"
    assert {o.request_id for o in step.outcomes} == {r.request_id for r in reqs}
    assert all(o.outcome == "fallback" and o.reason_code == "timeout" for o in step.outcomes)
    # an answer that comes after its tick was played is ignored and counted
    late = answers[0].model_copy(update={"status": "ok", "answer": {"action": "wait"}})
    before = shard.ignored
    assert shard.on_decision(late, encode(late)).writes == []
    assert shard.ignored == before + 1


def test_a_decision_parked_before_the_machine_exists_is_found_on_recovery(
    town: WorldIndex,
) -> None:
    run = LocalRun(town, "p", 7, 1, decide_budget=4)
    reqs = _until_requests(run)
    made = unanswered(reqs[0])
    table = dict(run.tables[0])
    for write in park_decision(made, encode(made)).writes:
        table[write.key] = write.value
    rebuilt = ShardBarrier.recover(town, run.tick_message(0, 0), table.get)
    assert rebuilt.decisions[made.request_id] == made
    assert made.request_id not in rebuilt.missing_decisions(made.due_tick)


def test_a_recovering_clock_names_the_same_focal_npcs(town: WorldIndex) -> None:
    run = LocalRun(town, "c", 7, 2, decide_budget=4)
    for _ in range(30):
        run.step()
    assert run.clock.focal, "nobody focal after 30 ticks"
    start = run.start_command().model_copy(update={"days": 1.0})
    again: RunClock = recover([start], run.completed, 2)["c"]
    assert again.focal == run.clock.focal
    assert again.tick_message(30, 0).focal == run.clock.tick_message(30, 0).focal
    assert again.decide_budget == 4


def test_the_start_command_carries_the_deliberation(town: WorldIndex) -> None:
    run = LocalRun(town, "m", 7, 1, decide_budget=5, decide_deadline=2)
    start = run.start_command()
    assert (start.decide_budget, start.decide_deadline) == (5, 2)
    clock = RunClock.from_command(
        RunCommanded(command="start", run_id="m", decide_budget=5, decide_deadline=2), 1
    )
    assert clock.tick_message(0, 0).decide_budget == 5
    assert clock.tick_message(0, 0).decide_deadline == 2


def test_decision_messages_round_trip_the_codec() -> None:
    made = DecisionMade(
        request_id="dq_1",
        run_id="r",
        tick=1,
        due_tick=2,
        shard=0,
        npcs=["a"],
        prompt_hash="x",
        status="ok",
        answer={"action": "wait"},
    )
    assert DecisionMade.model_validate_json(encode(made)) == made
