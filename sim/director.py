"""The director: scheduled and conditional world events from the catalog.

Every shard evaluates the same rules on the same static inputs (tick, seed,
catalog, the clock's activity count) and emits only the events whose actor it owns,
so each director event happens exactly once, whatever the partition count.
"""

from __future__ import annotations

from catalog.models import WEEKDAYS, ConditionTrigger, DirectorRule, NpcSelector, PlaceSelector
from sim.calendar import MINUTES_PER_HOUR, day_of, hour_of, minute_of_day
from sim.world import WorldIndex
from topics.models import TickStarted
from worldfeed.ids import rng_for, stable_hash64

TWO64 = float(1 << 64)


def weekday(index: WorldIndex, day: int) -> str:
    """Weekday name of a 1-based day."""
    start = WEEKDAYS.index(index.catalog.world.start_weekday)
    return WEEKDAYS[(start + day - 1) % 7]


def _minute(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * MINUTES_PER_HOUR + int(m)


def _metric(index: WorldIndex, tick: TickStarted, trigger: ConditionTrigger) -> float | None:
    hour = hour_of(tick.sim_minute)
    if trigger.metric == "events_last_hour":
        return float(tick.recent_events)
    if trigger.metric == "active_npcs":
        return float(sum(len(v) for v in index.occupancy[hour].values()))
    return None  # posts_last_hour / mean_affinity are not visible to the shards (see note)


def _is_due(index: WorldIndex, rule: DirectorRule, tick: TickStarted) -> bool:
    day = day_of(tick.sim_minute)
    now = minute_of_day(tick.sim_minute)
    trig = rule.trigger
    if trig.type == "schedule":
        at = _minute(trig.time)
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
        return max(pool, key=lambda n: (index.npc(n).fame, n))
    return rng_for(tick.seed, tick.tick, salt, "director-pick").choice(pool)


def _pick_place(
    index: WorldIndex, sel: PlaceSelector, actor: str, tick: TickStarted, salt: str
) -> str:
    if sel.place is not None:
        return sel.place
    if sel.kind is not None:
        pool = sorted(p.id for p in index.catalog.places.values() if p.kind == sel.kind)
        if pool:
            return rng_for(tick.seed, tick.tick, salt, "director-place").choice(pool)
    return index.location[actor][hour_of(tick.sim_minute)] or index.npc(actor).home


def due_director_events(
    index: WorldIndex, tick: TickStarted
) -> list[tuple[DirectorRule, str, str | None, str]]:
    """Director rules that fire on this tick, with their actor, target and place."""
    out = []
    for rule in index.catalog.director:
        if not _is_due(index, rule, tick):
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
        out.append((rule, actor, target, place))
    return out
