"""The director: scheduled and conditional world events from the catalog.

Every shard evaluates the same rules on the same inputs (tick, seed, catalog and the
tick-wide values the clock puts in ``TickStarted``) and emits only the events whose
actor it owns, so each director event happens exactly once, whatever the partition
count.

Tick-wide values are the tick's inputs, never a shard's live view: each shard reports
integer tallies in ``ShardTickDone`` (:func:`relationship_tally`, the render requests
its events make, the rules it fired) and the clock sums them into the next tick:

* ``events_last_hour`` / ``posts_last_hour``: events and base-score render requests
  of the last simulated hour's ticks;
* ``mean_affinity``: the mean of every relationship's affinity (summed in thousandths);
* ``conflict_share``: the share of NPCs with a relationship at or below
  :data:`CONFLICT_AFFINITY`;
* ``active_npcs``: derived from the static schedules (the hour's occupancy).

A closed place hosts no event: a rule picks its place only among those open at the
tick's hour (``open_for``: open, or the actor's home); when none is, it does not fire on
that tick (and its cooldown does not start).

A rule with ``cooldown_ticks`` does not fire again until that many ticks after it
last fired: the clock records which rules fired (from the shards' reports, kept in
``TickCompleted`` so recovery rebuilds it) and sends ``director_last`` with every tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog.event_refs import open_for
from catalog.models import WEEKDAYS, ConditionTrigger, DirectorRule, NpcSelector, PlaceSelector
from sim.calendar import day_of, hour_of, minute_at, minute_of_day
from sim.world import WorldIndex, shard_of
from topics.models import AFFINITY_SCALE, TickStarted
from worldfeed.ids import rng_for, stable_hash64

TWO64 = float(1 << 64)
CONFLICT_AFFINITY = -30.0  # an NPC with a relationship at or below this is in conflict


def relationship_tally(state: Mapping[str, Any]) -> tuple[int, int, int]:
    """An NPC's share of the tick-wide values: (affinity sum in thousandths, relationships,
    1 if in conflict else 0). Integers, so shard sums add up the same in any grouping."""
    rels = state["rel"].values()
    milli = sum(round(r[0] * AFFINITY_SCALE) for r in rels)
    conflict = any(r[0] <= CONFLICT_AFFINITY for r in rels)
    return milli, len(rels), int(conflict)


def weekday(index: WorldIndex, day: int) -> str:
    """Weekday name of a 1-based day."""
    start = WEEKDAYS.index(index.catalog.world.start_weekday)
    return WEEKDAYS[(start + day - 1) % 7]


def _metric(index: WorldIndex, tick: TickStarted, trigger: ConditionTrigger) -> float | None:
    hour = hour_of(tick.sim_minute)
    if trigger.metric == "events_last_hour":
        return float(tick.recent_events)
    if trigger.metric == "posts_last_hour":
        return float(tick.posts_last_hour)
    if trigger.metric == "mean_affinity":
        return tick.mean_affinity  # None before the first tick completed: not checked
    if trigger.metric == "conflict_share":
        return tick.conflict_share
    if trigger.metric == "active_npcs":
        return float(sum(len(v) for v in index.occupancy[hour].values()))
    return None


def cooling(rule: DirectorRule, tick: TickStarted) -> bool:
    """True while the rule's cooldown since it last fired has not run out."""
    last = tick.director_last.get(rule.id)
    return last is not None and tick.tick - last < rule.cooldown_ticks


def _is_due(index: WorldIndex, rule: DirectorRule, tick: TickStarted) -> bool:
    day = day_of(tick.sim_minute)
    now = minute_of_day(tick.sim_minute)
    trig = rule.trigger
    if trig.type == "schedule":
        at = minute_at(1, trig.time)  # its minute of the day
        if not (now <= at < now + tick.step_minutes):
            return False
        if trig.days is not None and day not in trig.days:
            return False
        return trig.weekdays is None or weekday(index, day) in trig.weekdays
    hour = hour_of(tick.sim_minute)
    if (
        tick.tick == 0
        or tick.tick % trig.check_every_ticks
        or not (trig.start_hour <= hour < trig.end_hour)
    ):
        return False
    value = _metric(index, tick, trig)
    if value is None:
        return False
    return {
        "<": value < trig.value,
        "<=": value <= trig.value,
        ">": value > trig.value,
        ">=": value >= trig.value,
    }[trig.op]


def _pick_npc(
    index: WorldIndex, sel: NpcSelector, tick: TickStarted, salt: str, exclude: str | None = None
) -> str | None:
    if sel.npc is not None:
        return sel.npc
    pool = [n for n in index.with_occupation(sel.occupation) if n != exclude]
    if not pool:
        return None
    if sel.pick == "most_famous":
        return max(pool, key=lambda n: (index.card(n).fame, n))
    return rng_for(tick.seed, tick.tick, salt, "director-pick").choice(pool)


def _pick_place(
    index: WorldIndex, sel: PlaceSelector, actor: str, tick: TickStarted, salt: str
) -> str | None:
    """The rule's place, open at the tick's hour (or the actor's home); None: none is."""
    hour = hour_of(tick.sim_minute)
    if sel.place is not None:
        return sel.place if open_for(index.catalog, sel.place, actor, hour) else None
    if sel.kind is not None:
        pool = sorted(
            p.id
            for p in index.catalog.places.values()
            if p.kind == sel.kind and open_for(index.catalog, p.id, actor, hour)
        )
        if not pool:
            return None
        return rng_for(tick.seed, tick.tick, salt, "director-place").choice(pool)
    # where the actor is: admission already sent them home from a closed place
    return index.location[actor][hour] or index.card(actor).home


def due_director_events(
    index: WorldIndex, tick: TickStarted
) -> list[tuple[DirectorRule, str, str | None, str]]:
    """Director rules that fire on this tick, with their actor, target and place."""
    out = []
    for rule in index.catalog.director:
        if cooling(rule, tick) or not _is_due(index, rule, tick):
            continue
        if stable_hash64(tick.seed, tick.tick, rule.id, "fire") / TWO64 >= rule.probability:
            continue
        actor = _pick_npc(index, rule.participants.actor, tick, f"{rule.id}:actor")
        if actor is None:
            continue
        target = None
        if rule.participants.target is not None:
            target = _pick_npc(index, rule.participants.target, tick, f"{rule.id}:target", actor)
        place = _pick_place(index, rule.participants.place, actor, tick, f"{rule.id}:place")
        if place is None:  # no place for it is open at this hour: it does not fire
            continue
        out.append((rule, actor, target, place))
    return out


def fired_on_shard(index: WorldIndex, tick: TickStarted) -> list[str]:
    """Ids of the director rules whose event this tick's shard emits (its actor's shard)."""
    return sorted(
        {
            rule.id
            for rule, actor, _, _ in due_director_events(index, tick)
            if shard_of(actor, tick.n_shards) == tick.shard
        }
    )
