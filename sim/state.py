"""NPC state: seeding from the catalog, applying effects, hashing.

State is a plain JSON-ready dict so it can live in a faust table::

    {"rep": 50.0,                                  # reputation 0..100
     "rel": {"other_id": [affinity, trust, familiarity]},
     "mem": [[tick, event_id, text, salience], ...],  # at most MAX_MEMORIES
     "goal": {"kind": progress},                   # 0..1
     "cool": {"event_type": last_tick}}            # for cooldowns and novelty

and, only when the catalog's feed loop is on (:mod:`sim.feed`; a world without it keeps
the state, its hash and snapshots as they were)::

     "fol": ["other_id", ...],                     # whom it follows, sorted
     "seen": [[last_tick, post_key], ...]          # posts read while still in the feed
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from sim.world import WorldIndex
from topics.models import Effect
from worldfeed.ids import state_digest

MAX_MEMORIES = 24
MEMORY_DECAY_PER_TICK = 0.995  # salience half-life ~ 138 ticks (~1.4 days at 15 min)

State = dict[str, Any]
FOLLOWED_TAGS = frozenset({"family", "friend", "romantic"})  # followed from the start


def seed_state(index: WorldIndex, npc_id: str) -> State:
    """The initial state of an NPC from the catalog."""
    card = index.card(npc_id)
    rel = index.relationships.get(npc_id, {})
    goals = index.goals.get(npc_id, {})
    state: State = {
        "rep": round(float(50 + card.fame / 4), 4),
        "rel": {k: list(rel[k]) for k in sorted(rel)},
        "mem": [],
        "goal": dict(sorted(goals.items())),
        "cool": {},
    }
    feed = index.catalog.feed
    if feed.enabled:
        state["fol"] = sorted(
            other
            for other, r in rel.items()
            if r[0] >= feed.follow_min_affinity
            or index.tags.get((npc_id, other), frozenset()) & FOLLOWED_TAGS
        )
        state["seen"] = []
    return state


def memory_weight(mem: list[Any], tick: int) -> float:
    """Salience decayed to ``tick``: what ranks memories for prompts and references."""
    return float(mem[3]) * MEMORY_DECAY_PER_TICK ** max(0, tick - int(mem[0]))


def top_memories(state: State, tick: int, k: int) -> list[list[Any]]:
    """The k memories with the highest decayed salience (ties by event id)."""
    return heapq.nsmallest(k, state["mem"], key=lambda m: (-memory_weight(m, tick), m[1]))


def _clamp(value: float, lo: float, hi: float) -> float:
    return round(min(hi, max(lo, value)), 4)


def apply_effects(state: State, effects: Iterable[Effect], tick: int) -> bool:
    """Apply effects (already in canonical order) to one NPC's state; True if it changed.

    The sorted fields (relationships, cooldowns, posts read, follows) are sorted once, after
    the last effect: an NPC whose post a thousand readers react to gets a thousand new
    relationships in one tick, and sorting after each made that tick quadratic.
    """
    changed = False
    new_rel = new_cool = False
    seen: list[list[Any]] | None = None
    fol: set[str] | None = None
    for eff in effects:
        changed = True
        f = eff.field
        if f in ("affinity", "trust", "familiarity"):
            if eff.other is None:
                continue
            rel = state["rel"].get(eff.other)
            if rel is None:
                rel = state["rel"][eff.other] = [0.0, 20.0, 0.0]
                new_rel = True
            i = ("affinity", "trust", "familiarity").index(f)
            lo = -100.0 if i == 0 else 0.0
            rel[i] = _clamp(rel[i] + eff.delta, lo, 100.0)
        elif f == "reputation":
            state["rep"] = _clamp(state["rep"] + eff.delta, 0.0, 100.0)
        elif f == "goal_progress":
            if eff.other is None or eff.other not in state["goal"]:
                continue  # progress only on goals the NPC has
            state["goal"][eff.other] = _clamp(state["goal"][eff.other] + eff.delta / 100, 0.0, 1.0)
        elif f == "memory":
            state["mem"].append([tick, eff.event_id, eff.text or "", _clamp(eff.delta, 0.0, 1.0)])
            if len(state["mem"]) > MAX_MEMORIES:
                state["mem"] = top_memories(state, tick, MAX_MEMORIES)
                state["mem"].sort(key=lambda m: (m[0], m[1]))
        elif f == "acted" and eff.other is not None:
            state["cool"][eff.other] = tick
            new_cool = True
        elif f == "seen" and eff.other is not None:
            if seen is None:
                seen = []
            seen.append([int(eff.delta), eff.other])
        elif f == "follow" and eff.other is not None:
            if fol is None:
                fol = set(state.get("fol", []))
            if eff.delta > 0:
                fol.add(eff.other)
            else:
                fol.discard(eff.other)
    if new_rel:
        state["rel"] = dict(sorted(state["rel"].items()))
    if new_cool:
        state["cool"] = dict(sorted(state["cool"].items()))
    if seen:
        # read posts that left the feed are forgotten as the next are read (the posts read
        # now are kept, as they were when each was filtered as the next came)
        old = state.get("seen", [])
        state["seen"] = sorted([*(s for s in [*old, *seen[:-1]] if s[0] >= tick), seen[-1]])
    if fol is not None:
        state["fol"] = sorted(fol)
    return changed


def canonical_order(effects: Iterable[Effect]) -> list[Effect]:
    """Effects sorted by event id (then NPC, field, other): clamping is deterministic."""
    return sorted(effects, key=lambda e: (e.event_id, e.npc_id, e.field, e.other or "", e.delta))


def digest(npc_id: str, state: State) -> int:
    """64-bit hash of one NPC's state."""
    return state_digest(npc_id, state)
