"""What every NPC of a shard does on one tick.

Inputs: the static world index, the shard's NPC states *as of the start of the tick*,
and the tick. Every random choice draws from an RNG derived from
``(seed, tick, npc_id, purpose)``, so the result does not depend on partition count,
worker count, dict order or timing.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from catalog.event_refs import closed_problem, event_problems
from catalog.models import EventType
from sim.calendar import day_of, hour_of
from sim.goals import GoalReading, read_goals
from sim.state import State, memory_weight, top_memories
from sim.world import WorldIndex, shard_of
from topics.models import Effect, EventHappened, ImpactScore, InjectedEvent, TickStarted
from worldfeed.ids import derive_id, hash_prefix, hash_text, rng_for

BASE_ACT_RATE = 0.05  # chance per awake tick that an average NPC does something
MAX_TARGET_SAMPLE = 12
MAX_WITNESSES = 3
NOVELTY_WINDOW_TICKS = 96
HOSTILITY_CONFLICT = 0.5  # conflict x1.5 at affinity -100 (see conflict_scale)
RIVAL_CONFLICT = 0.3  # and +0.3 between catalog rivals
WEIGHTS = {"novelty": 0.35, "conflict": 0.35, "status": 0.3}  # cascade multiplies (see score)
TWO64 = float(1 << 64)


@dataclass(frozen=True)
class Ctx:
    """What a decision needs besides the NPC's own state."""

    index: WorldIndex
    tick: TickStarted

    @property
    def hour(self) -> int:
        """Hour of the day (0..23) at the start of the tick."""
        return hour_of(self.tick.sim_minute)

    @property
    def day(self) -> int:
        """1-based simulated day of the tick."""
        return day_of(self.tick.sim_minute)


def decide_shard(
    index: WorldIndex,
    tick: TickStarted,
    states: Mapping[str, State],
    skip: Collection[str] = (),
) -> list[EventHappened]:
    """Every event the shard's NPCs cause on this tick, sorted by event id.

    ``skip``: NPCs whose action this tick is an LLM decision (:mod:`sim.deliberate`),
    not the rules' (scheduled, director and injected events still include them)."""
    ctx = Ctx(index, tick)
    events: list[EventHappened] = []
    hour, location, traits = ctx.hour, index.location, index.traits
    # the hot loop: most NPCs are asleep or do nothing this tick. The act draw is
    # stable_hash64(seed, tick, npc, "act") / 2**64 with the common prefix hashed once.
    # An NPC at a goal's target place acts more often (sim.goals): read only for the few
    # NPCs with such a goal whose draw missed the plain chance.
    prefix = hash_prefix(tick.seed, tick.tick)
    place_goals = index.goal_place_npcs
    for npc_id in index.shard_npcs(tick.shard, tick.n_shards):
        place = location[npc_id][hour]
        if place is None or (skip and npc_id in skip):
            continue
        chance = BASE_ACT_RATE * (0.5 + traits[npc_id]["extraversion"])
        draw = hash_text(f"{prefix}{npc_id}\x1fact\x1f") / TWO64
        if draw >= chance and (
            npc_id not in place_goals
            or draw >= chance * read_goals(index, npc_id, states[npc_id]).place_weight(place)
        ):
            continue
        ev = _decide_npc(ctx, npc_id, states[npc_id])
        if ev is not None:
            events.append(ev)
    events.extend(_scheduled(ctx, states))
    events.extend(_injected(ctx, states))
    # de-duplicate by id (two paths can produce the same derived id) and sort canonically
    return sorted({e.event_id: e for e in events}.values(), key=lambda e: e.event_id)


def decide_npc_by_rules(ctx: Ctx, npc_id: str, state: State) -> EventHappened | None:
    """What the rules make one NPC do this tick (the act draw, then the choice): exactly
    what :func:`decide_shard` would, for one NPC. A rejected or missing LLM decision
    becomes this."""
    index, tick = ctx.index, ctx.tick
    place = index.location[npc_id][ctx.hour]
    if place is None:
        return None
    chance = BASE_ACT_RATE * (0.5 + index.traits[npc_id]["extraversion"])
    draw = hash_text(f"{hash_prefix(tick.seed, tick.tick)}{npc_id}\x1fact\x1f") / TWO64
    if draw >= chance and (
        npc_id not in index.goal_place_npcs
        or draw >= chance * read_goals(index, npc_id, state).place_weight(place)
    ):
        return None
    return _decide_npc(ctx, npc_id, state)


def _trait_weight(etype: EventType, traits: Mapping[str, float]) -> float:
    w = etype.base_weight
    for trait, mult in etype.trait_weights.items():
        if mult > 0:
            w *= mult ** (2 * traits[trait] - 1)
    return w


def _decide_npc(ctx: Ctx, npc_id: str, state: State) -> EventHappened | None:
    """What an awake NPC that acts this tick (see decide_shard) does."""
    index, t = ctx.index, ctx.tick
    place = index.location[npc_id][ctx.hour]
    if place is None:
        return None
    traits = index.traits[npc_id]
    rng = rng_for(t.seed, t.tick, npc_id, "choose")
    kind = index.catalog.places[place].kind
    goals = read_goals(index, npc_id, state)
    wanted = goals.targets_here(ctx.hour, place) if goals.goals else []
    candidates = []
    for etype in index.types_by_kind.get((ctx.hour, kind), ()):
        last = state["cool"].get(etype.id)
        if last is not None and t.tick - last < etype.cooldown_ticks:
            continue
        w = _trait_weight(etype, traits)
        if goals.goals:
            aimable = [o for o in wanted if can_target(index, npc_id, state, etype, o)]
            w *= goals.type_weight(etype, aimable if etype.needs_target else ())
        if w > 0:
            candidates.append((etype, w))
    for _ in range(3):
        if not candidates:
            return None
        etype = rng.choices([c[0] for c in candidates], [c[1] for c in candidates])[0]
        target = None
        if etype.needs_target:
            target = _pick_target(ctx, rng, npc_id, state, place, etype, goals)
            if target is None:
                candidates = [c for c in candidates if c[0] is not etype]
                continue
        return build_event(ctx, etype, npc_id, target, place, state, rng, source="npc")
    return None


def _pick_target(
    ctx: Ctx,
    rng: random.Random,
    npc_id: str,
    state: State,
    place: str,
    etype: EventType,
    goals: GoalReading,
) -> str | None:
    """A target at the same place: a sample of who is here (plus any goal target here),
    filtered by the type's rules, drawn with goal targets weighted by their pull."""
    here = ctx.index.occupancy[ctx.hour].get(place, [])
    if len(here) <= 1:
        return None
    sample = here if len(here) <= MAX_TARGET_SAMPLE else rng.sample(here, MAX_TARGET_SAMPLE)
    wanted = goals.targets_here(ctx.hour, place) if goals.goals else []
    if wanted:
        sample = list(sample) + [w for w in wanted if w not in sample]
    ok = [o for o in sample if can_target(ctx.index, npc_id, state, etype, o)]
    if not ok:
        return None
    if wanted and any(w in ok for w in wanted):
        return rng.choices(ok, [goals.target_weight(o) for o in ok])[0]
    return rng.choice(ok)


def can_target(index: WorldIndex, npc_id: str, state: State, etype: EventType, other: str) -> bool:
    """Whether ``npc_id`` may aim an event of ``etype`` at ``other``: the type's target filter
    and affinity preconditions, read from the actor's state at the start of the tick."""
    if other == npc_id:
        return False
    rel = state["rel"].get(other)
    f = etype.target_filter
    if f == "known" and rel is None:
        return False
    if f == "stranger" and rel is not None:
        return False
    if f in ("friend", "rival", "family", "coworker", "romantic"):
        if f not in index.tags.get((npc_id, other), frozenset()):
            return False
    pre = etype.preconditions
    affinity = rel[0] if rel else 0.0
    if pre.min_affinity is not None and affinity < pre.min_affinity:
        return False
    return pre.max_affinity is None or affinity <= pre.max_affinity


def _witnesses(ctx: Ctx, rng: random.Random, place: str | None, exclude: set[str]) -> list[str]:
    if place is None:
        return []
    here = ctx.index.occupancy[ctx.hour].get(place, [])
    if len(here) > 64:
        here = rng.sample(here, 64)
    pool = [n for n in here if n not in exclude]
    return sorted(rng.sample(pool, min(MAX_WITNESSES, len(pool))))


def _fmt(template: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def build_event(
    ctx: Ctx,
    etype: EventType,
    actor: str,
    target: str | None,
    place: str | None,
    state: State,
    rng: random.Random,
    source: str,
    summary: str | None = None,
) -> EventHappened:
    """An event with derived id, witnesses, effects and base impact."""
    index, t = ctx.index, ctx.tick
    # the content id: the same event in two runs (a replay, a branch) has the same id
    event_id = derive_id("ev", t.tick, etype.id, actor, target or "", place or "")
    witnesses = _witnesses(ctx, rng, place, {actor, target or actor})
    names = {
        "actor": index.card(actor).display_name,
        "target": index.card(target).display_name if target else "someone",
        "place": index.place_name(place),
    }
    text = summary or _fmt(etype.summary, **names)
    refs = _references(state, t.tick, etype)
    effects = type_effects(etype, event_id, actor, target, witnesses, names, text)
    effects.append(Effect(event_id=event_id, npc_id=actor, field="acted", other=etype.id))
    return EventHappened(
        event_id=event_id,
        run_id=t.run_id,
        world=t.world,
        tick=t.tick,
        sim_minute=t.sim_minute,
        type=etype.id,
        actor=actor,
        target=target,
        place=place,
        witnesses=witnesses,
        summary=text,
        source=source,
        refs=refs,
        actor_memories=[
            m[2] for m in top_memories(state, t.tick, index.catalog.world.memory_top_k)
        ],
        effects=effects,
        impact=base_impact(index, etype, actor, target, state, t.tick, bool(refs)),
    )


REFERENCE_MIN_WEIGHT = 0.3  # a memory weighs at least this (decayed salience) to be referred to


def _references(state: State, tick: int, etype: EventType) -> list[str]:
    """Talk-like events (high cascade) refer back to the actor's most salient memory."""
    if etype.impact.cascade < 0.5 or not state["mem"]:
        return []
    best = max(state["mem"], key=lambda m: (memory_weight(m, tick), m[1]))
    return [best[1]] if memory_weight(best, tick) >= REFERENCE_MIN_WEIGHT else []


def type_effects(
    etype: EventType,
    event_id: str,
    actor: str,
    target: str | None,
    witnesses: list[str],
    names: dict[str, str],
    text: str,
) -> list[Effect]:
    """The effects an event of ``etype`` has, from the catalog's effect specs."""
    out: list[Effect] = []
    roles = {"actor": actor, "target": target}
    for spec in etype.effects:
        if spec.who == "witnesses":
            who = witnesses
        else:
            one = roles[spec.who]
            who = [one] if one else []
        for npc_id in who:
            if spec.field == "memory":
                mem = _fmt(spec.memory, **names) if spec.memory else text
                out.append(
                    Effect(
                        event_id=event_id,
                        npc_id=npc_id,
                        field="memory",
                        delta=spec.salience if spec.salience is not None else 0.5,
                        text=mem,
                    )
                )
            elif spec.field == "goal_progress":
                out.append(
                    Effect(
                        event_id=event_id,
                        npc_id=npc_id,
                        field="goal_progress",
                        other=spec.goal_kind,
                        delta=spec.delta,
                    )
                )
            elif spec.field == "reputation":
                out.append(
                    Effect(event_id=event_id, npc_id=npc_id, field="reputation", delta=spec.delta)
                )
            else:
                other = roles.get(spec.toward) if spec.toward else None
                if other is None or other == npc_id:
                    continue
                out.append(
                    Effect(
                        event_id=event_id,
                        npc_id=npc_id,
                        field=spec.field,
                        other=other,
                        delta=spec.delta,
                    )
                )
    return out


def base_impact(
    index: WorldIndex,
    etype: EventType,
    actor: str,
    target: str | None,
    state: State,
    tick: int,
    has_refs: bool,
) -> ImpactScore:
    """Impact at creation, from the type's components and the actor's state at the start
    of the tick (``state``; the target's live state is another shard's, so the target
    counts by the catalog):

    * novelty: halved when the actor did this type within :data:`NOVELTY_WINDOW_TICKS`;
    * conflict: scaled by the actor's relationship to the target (:func:`conflict_scale`):
      a quarrel between rivals is bigger news than one between strangers;
    * status: half the type's, half the standing of the better known of the two: the
      actor's live reputation (:func:`standing`), the target's catalog fame;
    * cascade: the type's, 0.6 of it when the event refers back to an earlier one, else 0.3.
    """
    who = max(standing(state["rep"]), index.card(target).fame if target else 0.0) / 100
    last = state["cool"].get(etype.id)
    repeated = last is not None and tick - last < NOVELTY_WINDOW_TICKS
    novelty = etype.impact.novelty * (0.5 if repeated else 1.0)
    conflict = etype.impact.conflict * conflict_scale(index, actor, target, state)
    status = min(1.0, 0.5 * etype.impact.status + 0.5 * who)
    cascade = etype.impact.cascade * (0.6 if has_refs else 0.3)
    return score(novelty, conflict, status, cascade)


def standing(reputation: float) -> float:
    """How well known an NPC is, 0..100, from its live reputation (0..100).

    Reputation starts at ``50 + fame / 4`` (:func:`sim.state.seed_state`), so at the
    start this is the catalog fame; renown and notoriety both count (a disgraced mayor
    is still news).
    """
    return min(100.0, 4 * abs(float(reputation) - 50))


def conflict_scale(index: WorldIndex, actor: str, target: str | None, state: State) -> float:
    """Multiplier on an event's conflict component from the actor->target relationship at
    the start of the tick: ``1 + HOSTILITY_CONFLICT * max(0, -affinity) / 100``, plus
    :data:`RIVAL_CONFLICT` when the catalog tags the pair as rivals. Strangers and
    friends: 1."""
    if target is None:
        return 1.0
    rel = state["rel"].get(target)
    affinity = float(rel[0]) if rel else 0.0
    scale = 1.0 + HOSTILITY_CONFLICT * max(0.0, -affinity) / 100
    if "rival" in index.tags.get((actor, target), frozenset()):
        scale += RIVAL_CONFLICT
    return scale


def score(novelty: float, conflict: float, status: float, cascade: float) -> ImpactScore:
    """Combine the components: weighted novelty, conflict and status, amplified by cascade.

    ``total = min(1, (0.35 novelty + 0.35 conflict + 0.3 status) * (1 + cascade))``: a story
    people keep talking about can be worth up to twice its own weight, which is how an
    event crosses the news threshold later.
    """
    parts = {
        "novelty": round(min(1.0, novelty), 4),
        "conflict": round(min(1.0, conflict), 4),
        "status": round(min(1.0, status), 4),
        "cascade": round(min(1.0, cascade), 4),
    }
    own = sum(WEIGHTS[k] * parts[k] for k in WEIGHTS)
    total = round(min(1.0, own * (1 + parts["cascade"])), 4)
    return ImpactScore(total=total, **parts)


def _scheduled(ctx: Ctx, states: Mapping[str, State]) -> list[EventHappened]:
    t, index = ctx.tick, ctx.index
    out = []
    for sched in index.catalog.scheduled:
        if not t.sim_minute <= sched.sim_minute < t.sim_minute + t.step_minutes:
            continue
        if shard_of(sched.actor, t.n_shards) != t.shard:
            continue
        etype = index.catalog.event_types[sched.type]
        rng = rng_for(t.seed, t.tick, sched.actor, f"scheduled:{sched.id}")
        out.append(
            build_event(
                ctx,
                etype,
                sched.actor,
                sched.target,
                sched.place,
                states[sched.actor],
                rng,
                "scheduled",
                sched.summary,
            )
        )
    out.extend(_director(ctx, states))
    return out


def _director(ctx: Ctx, states: Mapping[str, State]) -> list[EventHappened]:
    from sim.director import due_director_events

    out = []
    for rule, actor, target, place in due_director_events(ctx.index, ctx.tick):
        if shard_of(actor, ctx.tick.n_shards) != ctx.tick.shard:
            continue
        etype = ctx.index.catalog.event_types[rule.event_type]
        rng = rng_for(ctx.tick.seed, ctx.tick.tick, actor, f"director:{rule.id}")
        out.append(
            build_event(
                ctx, etype, actor, target, place, states[actor], rng, "director", rule.summary
            )
        )
    return out


def _injected(ctx: Ctx, states: Mapping[str, State]) -> list[EventHappened]:
    out = []
    t, index = ctx.tick, ctx.index
    for i, inj in enumerate(t.injected):
        if not _valid_injection(index, inj, ctx.hour) or shard_of(inj.actor, t.n_shards) != t.shard:
            continue
        etype = index.catalog.event_types[inj.type]
        place = inj.place or index.location[inj.actor][ctx.hour] or index.card(inj.actor).home
        rng = rng_for(t.seed, t.tick, inj.actor, f"injected:{i}")
        out.append(
            build_event(
                ctx,
                etype,
                inj.actor,
                inj.target,
                place,
                states[inj.actor],
                rng,
                "admin",
                inj.summary,
            )
        )
    return out


def _valid_injection(index: WorldIndex, inj: InjectedEvent, hour: int) -> bool:
    """The API refuses what the catalog rule refuses; a message from elsewhere is skipped.

    So is an event at a place closed at the tick's hour: only the shard knows the hour
    (the actor's own location, ``place`` None, is open: admission keeps it so)."""
    cat = index.catalog
    if event_problems(cat, inj.type, inj.actor, inj.target, inj.place):
        return False
    return closed_problem(cat, inj.actor, inj.place, hour, f"{hour:02d}:00") is None
