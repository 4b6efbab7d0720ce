"""NPCs that think, in process (sim.deliberate through sim.barrier and sim.local): who is
focal, what they are asked, decisions applied at t+k, fallbacks recorded, and a run
re-derived from its recorded decisions without a decider."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from catalog.generate import generate_world
from sim.local import LocalRun, recorded
from sim.snapshot import Snapshot, assemble
from sim.world import WorldIndex
from topics.models import DecisionMade, DecisionRequested

TICKS = 96  # day 1


def made(req: DecisionRequested, answer: Any, status: str = "ok") -> DecisionMade:
    reason = answer.get("reason") if isinstance(answer, dict) else None
    return req.decided(
        status,  # type: ignore[arg-type]
        answer=answer if isinstance(answer, dict) else None,
        reason=reason,
        attempts=1,
    )


def eager(req: DecisionRequested) -> DecisionMade:
    """A fake LLM that picks the first allowed action with a type (and its first target);
    for a cohort, an even distribution over every allowed action's first type."""
    allowed: dict[str, Any] = req.situation["allowed"]
    if len(req.npcs) > 1:
        choices = [
            {"action": k, "event_type": v["event_types"][0], "weight": 1.0}
            for k, v in allowed.items()
            if v["event_types"]
        ]
        return made(req, {"choices": choices or [{"action": "wait", "weight": 1}]})
    for kind, v in allowed.items():
        if v["event_types"] and (v["targets"] or kind == "speak_out"):
            answer = {"action": kind, "event_type": v["event_types"][0], "reason": "why not"}
            if v["targets"]:
                answer["target"] = v["targets"][0]
            return made(req, answer)
    return made(req, {"action": "wait", "reason": "nothing to do"})


def play(
    index: WorldIndex,
    budget: int,
    decider: Callable[[DecisionRequested], DecisionMade] | None = None,
    n_shards: int = 1,
    ticks: int = TICKS,
    **kw: Any,
) -> LocalRun:
    run = LocalRun(index, "think", 7, n_shards, decide_budget=budget, decider=decider, **kw)
    for _ in range(ticks):
        run.step()
    return run


@pytest.fixture(scope="module")
def thinking(town: WorldIndex) -> LocalRun:
    return play(town, 4, eager)


def test_off_by_default_asks_nothing(town: WorldIndex) -> None:
    run = play(town, 0, eager, ticks=48)
    assert run.requests == [] and run.outcomes == []
    assert {e.source for e in run.events} <= {"npc", "scheduled", "director", "admin"}


def test_accepted_decisions_change_the_world(town: WorldIndex, thinking: LocalRun) -> None:
    outcomes = Counter(o.outcome for o in thinking.outcomes)
    assert outcomes["accepted"] > 100
    llm = [e for e in thinking.events if e.source == "llm"]
    assert len(llm) > 50
    off = play(town, 0)
    assert thinking.hashes[-1] != off.hashes[-1]
    # every accepted decision with an event names it, and the event is in the log
    ids = {e.event_id for e in thinking.events}
    for o in thinking.outcomes:
        if o.outcome == "accepted" and o.event_type is not None:
            assert o.event_id in ids
            assert o.model_reason == "why not"


def test_focal_npcs_are_capped_by_the_budget_and_the_same_for_any_shard_count(
    town: WorldIndex, thinking: LocalRun
) -> None:
    per_tick = Counter(r.tick for r in thinking.requests for _ in r.npcs)
    assert max(per_tick.values()) <= 4
    three = play(town, 4, eager, n_shards=3)
    assert three.hashes == thinking.hashes
    assert sorted(r.request_id for r in three.requests) == sorted(
        r.request_id for r in thinking.requests
    )
    assert sorted(e.event_id for e in three.events) == sorted(e.event_id for e in thinking.events)


def test_decisions_apply_k_ticks_after_the_request(thinking: LocalRun) -> None:
    asked = {r.request_id: r.tick for r in thinking.requests}
    assert thinking.outcomes
    for o in thinking.outcomes:
        assert o.tick == asked[o.request_id] + 1  # the town's deadline_ticks


def test_field_Decide_deadline_ticks_delays_the_decision(town: WorldIndex) -> None:
    run = play(town, 4, eager, ticks=48, decide_deadline=3)
    asked = {r.request_id: r.tick for r in run.requests}
    assert run.outcomes
    assert all(o.tick == asked[o.request_id] + 3 for o in run.outcomes)
    assert all(r.due_tick == r.tick + 3 for r in run.requests)


def test_replay_reads_recorded_decisions_and_never_asks(
    thinking: LocalRun, town: WorldIndex
) -> None:
    log = {d.request_id: d for d in thinking.decisions}
    again = play(town, 4, recorded(log), n_shards=2)  # the log is the only decider
    assert again.hashes == thinking.hashes
    assert sorted(e.event_id for e in again.events) == sorted(e.event_id for e in thinking.events)

    def by_id(run: LocalRun) -> list[dict[str, Any]]:
        return sorted((o.model_dump() for o in run.outcomes), key=lambda o: o["decision_id"])

    assert by_id(again) == by_id(thinking)
    # a log that lost its decisions does not reproduce the run: replay shows it
    lossy = play(town, 4, recorded({}), n_shards=2)
    assert lossy.hashes != thinking.hashes


def test_a_run_without_answers_records_fallbacks_and_acts_by_the_rules(
    town: WorldIndex,
) -> None:
    silent = play(town, 4, None)
    assert silent.outcomes
    assert {(o.outcome, o.reason_code) for o in silent.outcomes} == {("fallback", "timeout")}
    # a fallback is the rules' own choice: the same events as a run that never deliberates
    off = play(town, 0)
    assert [e.event_id for e in silent.events] == [e.event_id for e in off.events]
    assert all(e.source != "llm" for e in silent.events)


@pytest.mark.parametrize(
    ("answer", "status", "outcome", "reason"),
    [
        ({"action": "dance"}, "ok", "rejected", "unknown_action"),
        ({"action": "socialize", "event_type": "insult"}, "ok", "rejected", "unknown_event_type"),
        ({"action": "socialize", "event_type": "greeting"}, "ok", "rejected", "schema"),
        (
            {"action": "socialize", "event_type": "greeting", "target": "Nobody Here"},
            "repaired",
            "rejected",
            "schema",
        ),
        (None, "invalid", "fallback", "invalid"),
        (None, "error", "fallback", "error"),
        (None, "timeout", "fallback", "timeout"),
    ],
)
def test_garbage_decisions_become_recorded_rule_choices(
    town: WorldIndex, answer: Any, status: str, outcome: str, reason: str
) -> None:
    run = play(town, 4, lambda req: made(req, answer, status), ticks=48)
    assert run.outcomes
    assert {(o.outcome, o.reason_code, o.status) for o in run.outcomes} == {
        (outcome, reason, status)
    }
    off = play(town, 0, ticks=48)
    assert [e.event_id for e in run.events] == [e.event_id for e in off.events]


def test_decisions_survive_a_snapshot_and_restore(town: WorldIndex) -> None:
    parent = LocalRun(town, "p", 7, 2, snapshot_every=24, decide_budget=4, decider=eager)
    for _ in range(60):
        parent.step()
    snap = assemble(parent.parts)[47]
    assert isinstance(snap, Snapshot)
    assert any("pend" in s for s in snap.states.values())  # a decision in flight
    log = {d.request_id: d for d in parent.decisions}
    child = LocalRun.from_snapshot(town, snap, n_shards=3, decider=recorded(log), answers=log)
    for _ in range(60 - 48):
        child.step()
    assert child.hashes == parent.hashes[48:]


def test_field_Decide_min_salience_limits_who_deliberates(town: WorldIndex) -> None:
    from tests.unit.sim.catalog_edit import rebuild

    calm = rebuild(town.catalog)
    object.__setattr__(
        calm.catalog, "decide", town.catalog.decide.model_copy(update={"min_salience": 1.4})
    )
    some = play(town, 30, None, ticks=48)
    fewer = play(calm, 30, None, ticks=48)
    assert (
        0
        < len({n for r in fewer.requests for n in r.npcs})
        < len({n for r in some.requests for n in r.npcs})
    )


def test_field_Decide_cohort_min_one_call_decides_for_similar_npcs() -> None:
    world = generate_world(400, seed=3)
    index = WorldIndex.build(world)
    solo = index.catalog.decide.model_copy(update={"cohort_min": 0})
    grouped = index.catalog.decide.model_copy(update={"cohort_min": 2})
    object.__setattr__(index.catalog, "decide", solo)
    alone = play(index, 60, eager, ticks=40)
    object.__setattr__(index.catalog, "decide", grouped)
    together = play(index, 60, eager, ticks=40)
    two = play(index, 60, eager, n_shards=2, ticks=40)
    members = sum(len(r.npcs) for r in together.requests)
    assert any(len(r.npcs) > 1 for r in together.requests)
    assert len(together.requests) < len(alone.requests)
    assert members == sum(len(r.npcs) for r in alone.requests) or members > len(together.requests)
    assert two.hashes == together.hashes  # cohorts span shards: the same world
    cohort = [o for o in together.outcomes if o.cohort]
    assert cohort and Counter(o.outcome for o in cohort)["accepted"] > 0
    object.__setattr__(index.catalog, "decide", solo)


def test_field_ActionKind_action_schema_narrows_the_answer_schema(thinking: LocalRun) -> None:
    req = next(r for r in thinking.requests if len(r.situation["allowed"]) > 2)
    variants = req.answer_schema["oneOf"]
    kinds = [v["properties"]["action"]["const"] for v in variants]
    assert kinds == list(req.situation["allowed"])
    for v in variants:
        allowed = req.situation["allowed"][v["properties"]["action"]["const"]]
        if "event_type" in v["properties"]:
            assert v["properties"]["event_type"] == {"enum": allowed["event_types"]}


def test_field_DecideTemplate_system_is_the_system_prompt(thinking: LocalRun) -> None:
    assert all(
        r.system.startswith("You decide what one person in Brookfield") for r in thinking.requests
    )


def test_field_ActionKind_description_is_in_the_prompt(
    thinking: LocalRun, town: WorldIndex
) -> None:
    req = thinking.requests[0]
    for kind in req.situation["allowed"]:
        action = town.catalog.decide.action(kind)
        assert action is not None and action.description in req.prompt


def test_field_DecideTemplate_max_tokens_goes_with_the_request(thinking: LocalRun) -> None:
    assert {r.max_tokens for r in thinking.requests} == {96}


def test_field_DecideTemplate_max_nearby_caps_who_is_listed(thinking: LocalRun) -> None:
    assert max(len(r.situation["nearby"]) for r in thinking.requests) <= 8
    crowded = [r for r in thinking.requests if len(r.situation["nearby"]) == 8]
    assert crowded, "no request from a crowded place to check the cap"


def test_the_prompt_hash_names_the_prompt(thinking: LocalRun) -> None:
    by_hash: dict[str, str] = {}
    for r in thinking.requests:
        assert by_hash.setdefault(r.prompt_hash, r.prompt) == r.prompt


def test_replay_and_branch_plans_read_decisions_from_the_log(town: WorldIndex) -> None:
    from sim.replay import RunLog, plan_branch, replay

    run = LocalRun(town, "logged", 7, 2, snapshot_every=24, decide_budget=4, decider=eager)
    for _ in range(40):
        run.step()
    log = RunLog.of(
        run.start_command(), run.completed, run.events, run.parts, decisions=run.decisions
    )
    report = replay(town, log)
    assert report.identical, report.first_difference
    lost = RunLog.of(run.start_command(), run.completed, run.events, run.parts)
    assert not replay(town, lost).identical  # the decisions are part of the log
    plan = plan_branch(town, log, 30, n_shards=2)
    assert (plan.start.decide_budget, plan.start.decide_deadline) == (4, 1)
    pending = {s["pend"][1] for part in plan.restores for s in part.states.values() if "pend" in s}
    assert pending and {d.request_id for d in plan.decisions} == pending
    assert {d.run_id for d in plan.decisions} == {plan.run_id}


def test_llm_chosen_events_are_written_up_like_any_other(
    town: WorldIndex, thinking: LocalRun
) -> None:
    from sim.impact import Story, render_requests

    llm = [e for e in thinking.events if e.source == "llm"]
    requests = [r for e in llm for r in render_requests(town, Story(e))]
    assert requests, "no LLM-chosen event crossed a channel threshold"
    assert {r.event.source for r in requests} == {"llm"}
