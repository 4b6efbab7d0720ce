"""The engine-boundary rules (sim.deliberate.check): every rule has an accepted and a
rejected case, and garbage decisions of every kind are refused with their reason.

The scene: day 1, 12:00 (tick 48) in the starter town. At the town hall are Eleanor
Hart and Victor Crane (rivals), Bea Summers (who wants to befriend Carla Ruiz) and
Carla Ruiz; Frank Dolan is at the cafe.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sim.decide import Ctx
from sim.deliberate import REASONS, check
from sim.state import State, seed_state
from sim.world import WorldIndex
from tests.unit.sim.catalog_edit import tick_at, with_place


def ctx_at(index: WorldIndex, tick: int = 48) -> Ctx:
    return Ctx(index, tick_at(tick))


def state_of(index: WorldIndex, npc: str, **edit: Any) -> State:
    state = orjson.loads(orjson.dumps(seed_state(index, npc)))
    for key, value in edit.items():
        if key == "rel":
            state["rel"].update(value)
        else:
            state[key] = value
    return state


def greet(target: str, **extra: Any) -> dict[str, Any]:
    return {"action": "socialize", "event_type": "greeting", "target": target, **extra}


# (rule, NPC, accepted answer, rejected answer, state edits for both, tick)
TABLE: list[tuple[str, str, Any, Any, dict[str, Any], int]] = [
    ("unknown_action", "eleanor_hart", greet("bea_summers"), {"action": "fly"}, {}, 48),
    (
        "unknown_event_type",
        "eleanor_hart",
        greet("bea_summers"),
        {"action": "socialize", "event_type": "insult", "target": "bea_summers"},
        {},
        48,
    ),
    ("schema", "eleanor_hart", greet("bea_summers"), greet("bea_summers", mood="x"), {}, 48),
    ("asleep", "eleanor_hart", greet("bea_summers"), greet("bea_summers"), {}, 48),
    (
        "place_unreachable",
        "eleanor_hart",
        greet("bea_summers", place="town_hall"),
        greet("bea_summers", place="daily_grind"),
        {},
        48,
    ),
    (
        "place_not_allowed",
        "eleanor_hart",
        greet("bea_summers"),
        {"action": "socialize", "event_type": "coffee_together", "target": "bea_summers"},
        {},
        48,
    ),
    ("precondition", "greta_vogel", greet("felix_vogel"), greet("felix_vogel"), {}, 21),
    ("cooldown", "eleanor_hart", greet("bea_summers"), greet("bea_summers"), {}, 48),
    ("self_target", "eleanor_hart", greet("bea_summers"), greet("eleanor_hart"), {}, 48),
    ("unknown_target", "eleanor_hart", greet("bea_summers"), greet("nobody_at_all"), {}, 48),
    ("target_unreachable", "eleanor_hart", greet("bea_summers"), greet("frank_dolan"), {}, 48),
    (
        "relationship",
        "eleanor_hart",
        {"action": "confront", "event_type": "rivalry_jab", "target": "victor_crane"},
        {"action": "confront", "event_type": "rivalry_jab", "target": "bea_summers"},
        {},
        48,
    ),
    (
        "goal_conflict",
        "bea_summers",
        {"action": "confront", "event_type": "argument", "target": "eleanor_hart"},
        {"action": "confront", "event_type": "argument", "target": "carla_ruiz"},
        {"rel": {"carla_ruiz": [0.0, 20.0, 10.0], "eleanor_hart": [0.0, 20.0, 10.0]}},
        48,
    ),
]


@pytest.mark.parametrize("rule", [row[0] for row in TABLE])
def test_rule_accepts_and_rejects(town: WorldIndex, rule: str) -> None:
    _, npc, good, bad, edits, tick = next(row for row in TABLE if row[0] == rule)
    state = state_of(town, npc, **edits)
    assert (
        check(ctx_at(town, tick if rule != "precondition" else 24), npc, state, good).reason is None
    )
    bad_ctx = ctx_at(town, tick)
    if rule == "asleep":
        bad_ctx = ctx_at(town, 8)  # 02:00: Eleanor is at no place
    if rule == "cooldown":
        state = state_of(town, npc, cool={"greeting": tick - 1}, **edits)
    if rule == "precondition":  # 05:15 at the bakery: greetings start at 06:00
        assert town.location[npc][5] == "vogel_bakery"
    verdict = check(bad_ctx, npc, state, bad)
    assert verdict.reason == rule


def test_rule_table_covers_every_boundary_rule() -> None:
    covered = {row[0] for row in TABLE} | {"place_closed", "place_full", "no_target"}
    covered |= {"unknown_post", "post_gone"}  # tests/unit/sim/test_deliberate_feed.py
    assert covered == set(REASONS)


def test_rule_place_closed(town: WorldIndex) -> None:
    # the town hall closes at 12:00 in this copy; Eleanor is scheduled there (static
    # whereabouts say so, so only the boundary rule can refuse it)
    index = with_place(town.catalog, "town_hall", open_hour=8, close_hour=12)
    index.location["eleanor_hart"] = list(town.location["eleanor_hart"])
    index.location["bea_summers"] = list(town.location["bea_summers"])
    index.occupancy[12]["town_hall"] = ["bea_summers", "eleanor_hart"]
    state = state_of(index, "eleanor_hart")
    assert check(ctx_at(index, 44), "eleanor_hart", state, greet("bea_summers")).reason is None
    assert check(ctx_at(index, 48), "eleanor_hart", state, greet("bea_summers")).reason == (
        "place_closed"
    )


@pytest.mark.parametrize(("capacity", "reason"), [(4, None), (3, "place_full")])
def test_rule_place_full(town: WorldIndex, capacity: int, reason: str | None) -> None:
    # four people at the town hall at noon: over a capacity of 3 (admission keeps a
    # streamed run within capacity; the boundary checks it anyway)
    index = with_place(town.catalog, "town_hall", capacity=capacity)
    index.occupancy[12]["town_hall"] = ["bea_summers", "carla_ruiz", "eleanor_hart", "zoe_kim"]
    index.location["bea_summers"][12] = index.location["eleanor_hart"][12] = "town_hall"
    state = state_of(index, "eleanor_hart")
    assert check(ctx_at(index, 48), "eleanor_hart", state, greet("bea_summers")).reason == reason


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        ("not json at all", "unknown_action"),
        (None, "unknown_action"),
        ([1, 2, 3], "unknown_action"),
        ({}, "unknown_action"),
        ({"action": 7}, "unknown_action"),
        ({"action": "teleport", "target": "bea_summers"}, "unknown_action"),
        ({"action": "socialize"}, "unknown_event_type"),
        ({"action": "socialize", "event_type": "greeting"}, "schema"),  # no target
        ({"action": "socialize", "event_type": "greeting", "target": 42}, "schema"),
        ({"action": "socialize", "event_type": "greeting", "target": "Bea!"}, "schema"),
        ({"action": "wait", "extra": True}, "schema"),
        ({"action": "speak_out", "event_type": "scandal_leak"}, "unknown_event_type"),
        ({"action": "confront", "event_type": "insult", "target": "carla_ruiz"}, "relationship"),
        ({"action": "socialize", "event_type": "greeting", "target": "ghost"}, "unknown_target"),
    ],
)
def test_garbage_decisions_are_rejected_with_their_reason(
    town: WorldIndex, garbage: Any, reason: str
) -> None:
    state = state_of(town, "eleanor_hart")
    assert check(ctx_at(town), "eleanor_hart", state, garbage).reason == reason


def test_wait_is_always_accepted_while_awake(town: WorldIndex) -> None:
    state = state_of(town, "eleanor_hart")
    verdict = check(ctx_at(town), "eleanor_hart", state, {"action": "wait", "reason": "tired"})
    assert verdict.reason is None and verdict.etype is None
    assert check(ctx_at(town, 8), "eleanor_hart", state, {"action": "wait"}).reason == "asleep"
