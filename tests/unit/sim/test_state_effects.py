"""apply_effects: sorting once after the last effect leaves the state that sorting after each did.

apply_effects sorts the sorted fields (relationships, cooldowns, posts read, follows) once
after the last effect, not after each: the same state, without the quadratic tick of an
NPC who gets thousands of new relationships at once. :func:`reference` is the code before
that change (it sorted after every effect): the property compares the two.
"""

from __future__ import annotations

import copy
from typing import Any, get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.state import MAX_MEMORIES, _clamp, apply_effects, digest, top_memories
from topics.models import Effect

TICK = 40
FIELDS = get_args(Effect.model_fields["field"].annotation)  # every kind of effect
OTHERS = [f"npc_{i:02d}" for i in range(12)] + ["work", "social", "post_a", "post_b"]


def start() -> dict[str, Any]:
    return {
        "rep": 50.0,
        "rel": {"npc_03": [10.0, 30.0, 5.0], "npc_07": [-20.0, 10.0, 2.0]},
        "mem": [[30 + i, f"ev_{i:02d}", "x", 0.5] for i in range(20)],
        "goal": {"social": 0.2, "work": 0.5},
        "cool": {"gossip": 35},
        "fol": ["npc_03"],
        "seen": [[38, "post_old"], [41, "post_c"], [44, "post_d"]],
    }


def reference(state: dict[str, Any], effects: list[Effect], tick: int) -> None:
    """apply_effects as it was: every sorted field sorted again after each effect."""
    for eff in effects:
        f = eff.field
        if f in ("affinity", "trust", "familiarity"):
            if eff.other is None:
                continue
            rel = state["rel"].get(eff.other)
            if rel is None:
                rel = state["rel"][eff.other] = [0.0, 20.0, 0.0]
                state["rel"] = dict(sorted(state["rel"].items()))
                rel = state["rel"][eff.other]
            i = ("affinity", "trust", "familiarity").index(f)
            rel[i] = _clamp(rel[i] + eff.delta, -100.0 if i == 0 else 0.0, 100.0)
        elif f == "reputation":
            state["rep"] = _clamp(state["rep"] + eff.delta, 0.0, 100.0)
        elif f == "goal_progress":
            if eff.other is None or eff.other not in state["goal"]:
                continue
            state["goal"][eff.other] = _clamp(state["goal"][eff.other] + eff.delta / 100, 0.0, 1.0)
        elif f == "memory":
            state["mem"].append([tick, eff.event_id, eff.text or "", _clamp(eff.delta, 0.0, 1.0)])
            if len(state["mem"]) > MAX_MEMORIES:
                state["mem"] = top_memories(state, tick, MAX_MEMORIES)
                state["mem"].sort(key=lambda m: (m[0], m[1]))
        elif f == "acted" and eff.other is not None:
            state["cool"][eff.other] = tick
            state["cool"] = dict(sorted(state["cool"].items()))
        elif f == "seen" and eff.other is not None:
            seen = [s for s in state.get("seen", []) if s[0] >= tick]
            seen.append([int(eff.delta), eff.other])
            state["seen"] = sorted(seen)
        elif f == "follow" and eff.other is not None:
            fol = set(state.get("fol", []))
            if eff.delta > 0:
                fol.add(eff.other)
            else:
                fol.discard(eff.other)
            state["fol"] = sorted(fol)


effect = st.builds(
    Effect,
    event_id=st.sampled_from([f"ev_{i:02d}" for i in range(30)]),
    npc_id=st.just("npc_00"),
    field=st.sampled_from(FIELDS),
    other=st.one_of(st.none(), st.sampled_from(OTHERS)),
    delta=st.one_of(
        st.integers(TICK - 3, TICK + 4).map(float),
        st.floats(-30, 30, allow_nan=False).map(lambda x: round(x, 3)),
    ),
    text=st.sampled_from(["", "met at the bakery"]),
)


@settings(max_examples=400, deadline=None)
@given(effects=st.lists(effect, max_size=60))
def test_effects_sorted_once_leave_the_state_of_sorting_after_each(effects: list[Effect]) -> None:
    at_once, one_by_one = start(), start()
    changed = apply_effects(at_once, effects, TICK)
    reference(one_by_one, effects, TICK)
    assert at_once == one_by_one
    assert list(at_once["rel"]) == list(one_by_one["rel"])  # dict order is in the digest
    assert list(at_once["cool"]) == list(one_by_one["cool"])
    assert digest("npc_00", at_once) == digest("npc_00", one_by_one)
    assert changed == bool(effects)


def test_many_new_relationships_are_sorted_once_and_in_order() -> None:
    state = start()
    effects = [
        Effect(event_id=f"ev_{i:05d}", npc_id="npc_00", field="familiarity", other=f"r_{i:05d}")
        for i in reversed(range(3000))
    ]
    apply_effects(state, effects, TICK)
    assert list(state["rel"]) == sorted(state["rel"])
    assert len(state["rel"]) == 3002
    before = copy.deepcopy(state)
    apply_effects(state, [], TICK)
    assert state == before
