"""NPCs that think: who deliberates, what they are asked, and the engine-boundary rules
that accept or reject what the LLM chose. Pure: no I/O, no LLM, no clock.

The loop (see README "NPCs that think"):

1. **Who.** After tick t-1 each shard reports its most salient NPCs for tick t
   (:func:`shard_salient`: an urgent goal, an open conflict, a fresh high-impact memory,
   fame), at most the run's budget; the clock keeps the world's top ``budget``
   (:func:`pick_focal`) and names them in tick t's ``TickStarted.focal``. The choice
   reads state at the start of tick t and ranks ties by a seeded hash, so it is the
   same for any partition count.
2. **Ask.** At tick t a shard turns its focal NPCs into :class:`DecisionRequested`
   messages (:func:`requests_for`): the situation as data, the prompt rendered from
   the catalog's template, the JSON Schema an answer must meet, and its hash. Focal
   NPCs sharing place, occupation and top goal kind form a cohort (``cohort_min``):
   one request, whose answer is a distribution each member draws from with its own RNG.
3. **Apply at t+k.** The barrier holds the tick until every decision due at it is in
   the log (a ``DecisionMade``: an answer, or a recorded timeout or failure). Each NPC's
   decision is checked against its state at the start of the due tick
   (:func:`check`); accepted, it becomes the NPC's event (``source="llm"``); rejected
   or missing, the rules choose as they would have (:func:`resolve`). Either way a
   :class:`DecisionResolved` says what happened and why (``reason_code``).

Nothing here reads the wall clock: a late answer becomes a recorded fallback in the
shell that waits for it (``streams/``, :mod:`sim.local`), and the log alone decides
the run.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from catalog.event_refs import is_open
from catalog.models import ActionKind, Decide, EventType
from sim.calendar import hour_of
from sim.decide import Ctx, build_event, can_target, decide_npc_by_rules
from sim.director import CONFLICT_AFFINITY
from sim.feed import FeedRead, Reaction, follow_change, reaction_event, reaction_kind
from sim.goals import read_goals
from sim.state import State, memory_weight, top_memories
from sim.world import WorldIndex
from topics.models import (
    DecisionMade,
    DecisionRequested,
    DecisionResolved,
    EventHappened,
    FeedPost,
    TickStarted,
)
from worldfeed.ids import derive_id, stable_hash64

SALIENCE_SCALE = 1000  # salience is reported in thousandths (integers sum the same anywhere)
URGENT_PRIORITY = 4  # a goal of this priority or more, unfinished, is urgent
FRESH_TICKS = 8  # a memory this recent ...
HIGH_IMPACT = 0.6  # ... and this salient (decayed) is fresh and high-impact
FAME_WEIGHT = 0.5  # fame 100 adds this much
FRIENDLY_GOALS = frozenset({"befriend", "romance", "reconcile"})
MAX_REASON = 200

# Every reason an answer can be refused, in the order the checks run.
REASONS: tuple[str, ...] = (
    "unknown_action",  # not an object with a known action kind
    "unknown_event_type",  # the kind does not map to this event type
    "schema",  # breaks the kind's action_schema (a missing target, an unknown field...)
    "asleep",  # the NPC is at no place at the due tick
    "place_unreachable",  # names a place the NPC is not at
    # a feed kind (a reaction to a post read; then self_target, precondition, cooldown,
    # relationship and goal_conflict as below, toward the post's author):
    "unknown_post",  # names a post the NPC has not read (or no longer remembers reading)
    "post_gone",  # the post it read is no longer in the feed at the due tick
    "place_closed",  # the place is closed at the hour
    "place_not_allowed",  # the event type cannot happen at this kind of place
    "place_full",  # more people there than its capacity
    "precondition",  # the event type's hours
    "cooldown",  # the NPC did this type too recently
    "self_target",
    "unknown_target",
    "target_unreachable",  # not at the same place this hour
    "relationship",  # the type's target filter or affinity preconditions
    "goal_conflict",  # works against one of the NPC's unfinished goals
    "no_target",  # a cohort member's draw needs a target and nobody here fits
)
FALLBACKS: tuple[str, ...] = ("timeout", "invalid", "error", "missing")


def deliberation(decide: Decide, budget: int, deadline: int) -> tuple[int, int]:
    """A run's (budget, deadline) from the settings: budget -1 and deadline 0 mean the
    catalog's; a catalog without actions cannot deliberate (budget 0)."""
    b = decide.budget_per_tick if budget < 0 else budget
    return (b if decide.actions else 0), (deadline or decide.deadline_ticks)


# ---- 1. who deliberates -------------------------------------------------------------------------


def salience(index: WorldIndex, npc_id: str, state: State, tick: int) -> float:
    """How much an NPC has on its mind at the start of ``tick``: the sum of

    * an urgent goal: the highest priority/5 of its unfinished goals of priority
      :data:`URGENT_PRIORITY` or more;
    * an open conflict: 1 when a relationship is at or below the conflict affinity;
    * a fresh high-impact memory: the decayed salience of the strongest memory from the
      last :data:`FRESH_TICKS` ticks, when at least :data:`HIGH_IMPACT`;
    * fame: ``FAME_WEIGHT * fame / 100``.
    """
    score = 0.0
    goals = read_goals(index, npc_id, state).goals
    urgent = [g.priority for g in goals if g.priority >= URGENT_PRIORITY]
    if urgent:
        score += max(urgent) / 5
    if any(float(r[0]) <= CONFLICT_AFFINITY for r in state["rel"].values()):
        score += 1.0
    fresh = [memory_weight(m, tick) for m in state["mem"] if tick - int(m[0]) <= FRESH_TICKS]
    best = max(fresh, default=0.0)
    if best >= HIGH_IMPACT:
        score += best
    score += FAME_WEIGHT * index.card(npc_id).fame / 100
    return score


def _pending(state: State) -> bool:
    return "pend" in state


def focal_rank(seed: int, tick: int, milli: int, npc_id: str) -> tuple[int, int, str]:
    """The order focal NPCs are chosen in: salience, then a seeded hash (the same on every
    shard and in the clock, so a shard's cut keeps whoever the world's cut keeps)."""
    return (-milli, stable_hash64(seed, tick, npc_id, "focal"), npc_id)


def shard_salient(
    index: WorldIndex,
    npcs: Iterable[str],
    states: Mapping[str, State],
    seed: int,
    tick: int,
    hour: int,
    budget: int,
) -> list[tuple[int, str, str]]:
    """The shard's candidates for tick ``tick`` (at ``hour``): its awake NPCs without a
    decision pending whose salience reaches the catalog's ``min_salience``, as
    (thousandths, NPC, cohort key), the ``budget`` first by :func:`focal_rank`. Reported
    to the clock."""
    if budget <= 0:
        return []
    floor = index.catalog.decide.min_salience
    out = []
    for npc_id in npcs:
        state = states[npc_id]
        if index.location[npc_id][hour] is None or _pending(state):
            continue
        s = salience(index, npc_id, state, tick)
        if s >= floor:
            key = cohort_key(index, npc_id, state, hour)
            out.append((round(s * SALIENCE_SCALE), npc_id, key))
    out.sort(key=lambda c: focal_rank(seed, tick, c[0], c[1]))
    return out[:budget]


def pick_focal(
    seed: int, tick: int, reports: Iterable[Sequence[tuple[int, str, str]]], budget: int
) -> list[list[str]]:
    """The world's focal NPCs for ``tick``: the ``budget`` first by :func:`focal_rank` of
    every shard's candidates (not by shard or arrival order), grouped by cohort key: each
    group sorted, the groups by their first member."""
    pool = {npc: (milli, key) for report in reports for milli, npc, key in report}
    ranked = sorted(pool, key=lambda n: focal_rank(seed, tick, pool[n][0], n))
    groups: dict[str, list[str]] = {}
    for npc in ranked[:budget]:
        groups.setdefault(pool[npc][1], []).append(npc)
    return sorted(sorted(g) for g in groups.values())


# ---- 2. the situation and the request -----------------------------------------------------------


def allowed_actions(ctx: Ctx, npc_id: str, state: State) -> dict[str, dict[str, Any]]:
    """The action kinds the NPC may choose here and now, each with the event types and
    targets the rules would accept (``wait``-like kinds with no types are always allowed)."""
    index, hour = ctx.index, ctx.hour
    place = index.location[npc_id][hour]
    out: dict[str, dict[str, Any]] = {}
    if place is None:
        return out
    here = [o for o in index.occupancy[hour].get(place, []) if o != npc_id]
    for kind in index.catalog.decide.actions:
        if kind.feed:
            continue  # offered with the posts the NPC read (feed_actions)
        types, targets = [], set()
        for et in kind.event_types:
            etype = index.catalog.event_types[et]
            if _type_problem(ctx, npc_id, state, etype, place) is not None:
                continue
            if etype.needs_target:
                ok = [o for o in here if can_target(index, npc_id, state, etype, o)]
                if not ok:
                    continue
                targets.update(ok)
            types.append(et)
        if types or not kind.event_types:
            out[kind.id] = {
                "description": kind.description,
                "event_types": types,
                "targets": sorted(targets),
            }
    return out


def feed_actions(
    ctx: Ctx, npc_id: str, state: State, posts: Sequence[FeedPost]
) -> dict[str, dict[str, Any]]:
    """The feed kinds (reactions) the NPC may choose, with the reaction types allowed at the
    due tick (hours, cooldown) and the posts it may react to: those it read this tick and
    left to its decision (:func:`sim.feed.read_feed`). Empty without posts or with the
    feed loop off."""
    index = ctx.index
    out: dict[str, dict[str, Any]] = {}
    if not posts or not index.catalog.feed.enabled:
        return out
    for kind in index.catalog.decide.actions:
        if not kind.feed:
            continue
        types = [
            et
            for et in kind.event_types
            if _feed_type_problem(ctx, state, index.catalog.event_types[et]) is None
        ]
        if types:
            out[kind.id] = {
                "description": kind.description,
                "event_types": types,
                "targets": [],
                "posts": [p.key for p in posts],
            }
    return out


def _feed_type_problem(ctx: Ctx, state: State, etype: EventType) -> str | None:
    """Why the NPC cannot react with ``etype`` now (the type's hours, its cooldown); the
    feed is read anywhere, so the place's rules do not apply. None: it can."""
    pre = etype.preconditions
    if not pre.start_hour <= ctx.hour < pre.end_hour:
        return "precondition"
    last = state["cool"].get(etype.id)
    if last is not None and ctx.tick.tick - last < etype.cooldown_ticks:
        return "cooldown"
    return None


def post_view(index: WorldIndex, post: FeedPost) -> dict[str, Any]:
    """A post read, as the request shows it: its key, author, what it is about and how it
    is doing (what a :class:`FeedPost` holds: the post's text is written later, elsewhere)."""
    etype = index.catalog.event_types.get(post.type)
    return {
        "post": post.key,
        "author": post.author,
        "author_name": index.card(post.author).display_name,
        "event_type": post.type,
        "what": etype.name if etype is not None else post.type,
        "about": index.card(post.actor).display_name,
        "with": index.card(post.target).display_name if post.target else None,
        "likes": post.likes,
        "reposts": post.reposts,
        "replies": post.replies,
    }


def situation(
    ctx: Ctx, npc_id: str, state: State, posts: Sequence[FeedPost] = ()
) -> dict[str, Any]:
    """What the NPC knows at the start of the tick, as data (the request carries it);
    ``posts``: what it read in the feed this tick and may react to (with a feed kind)."""
    index, t = ctx.index, ctx.tick
    npc = index.npc(npc_id)
    tmpl = index.catalog.decide.template
    place = index.location[npc_id][ctx.hour]
    here = [o for o in index.occupancy[ctx.hour].get(place, []) if o != npc_id] if place else []
    goals = read_goals(index, npc_id, state).goals
    near = sorted(here, key=lambda o: (-(state["rel"].get(o, [0.0, 0.0, 0.0])[2]), o))
    near = near[: tmpl.max_nearby]
    out: dict[str, Any] = {
        "npc": npc_id,
        "name": npc.display_name,
        "occupation": npc.occupation,
        "voice": npc.voice,
        "place": place,
        "place_name": index.place_name(place),
        "time": f"day {ctx.day} {ctx.hour:02d}:{t.sim_minute % 60:02d}",
        "memories": [m[2] for m in top_memories(state, t.tick, tmpl.max_memories)],
        "goals": [
            {
                "kind": g.kind,
                "target": g.target,
                "priority": g.priority,
                "progress": round(float(state["goal"].get(g.kind, 0.0)), 4),
            }
            for g in goals[:5]
        ],
        "relationships": [
            {
                "npc": o,
                "affinity": state["rel"][o][0],
                "trust": state["rel"][o][1],
                "tags": sorted(index.tags.get((npc_id, o), frozenset())),
            }
            for o in near
            if o in state["rel"]
        ],
        "nearby": [{"npc": o, "name": index.card(o).display_name} for o in near],
        "allowed": allowed_actions(ctx, npc_id, state),
    }
    reacts = feed_actions(ctx, npc_id, state, posts)
    if reacts:
        out["posts"] = [post_view(index, p) for p in posts]
        out["allowed"].update(reacts)
    return out


def cohort_key(index: WorldIndex, npc_id: str, state: State, hour: int) -> str:
    """Place, occupation and top unfinished goal kind: NPCs sharing it may share one call."""
    goals = read_goals(index, npc_id, state).goals
    top = goals[0].kind if goals else "-"
    return f"{index.location[npc_id][hour]}|{index.card(npc_id).occupation}|{top}"


def _fmt(template: str, values: Mapping[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def _lines(sit: Mapping[str, Any]) -> dict[str, str]:
    goals = "; ".join(
        f"{g['kind']}" + (f" ({g['target']})" if g["target"] else "") + f" priority {g['priority']}"
        for g in sit["goals"]
    )
    rels = "; ".join(
        f"{r['npc']}: affinity {r['affinity']:g}"
        + (f" ({', '.join(r['tags'])})" if r["tags"] else "")
        for r in sit["relationships"]
    )
    actions = "; ".join(
        f"{k}: {v.get('description', '')}"
        + (f" [{', '.join(v['event_types'])}]" if v["event_types"] else "")
        for k, v in sit["allowed"].items()
    )
    posts = "; ".join(
        f"{p['post']}: by {p['author_name']} about {p['about']}"
        + (f" and {p['with']}" if p["with"] else "")
        + f" ({p['what']}), {p['likes']} likes"
        for p in sit.get("posts", ())
    )
    return {
        "posts": posts or "none",
        "name": sit["name"],
        "occupation": sit["occupation"],
        "voice": sit["voice"],
        "place_name": sit["place_name"],
        "time": sit["time"],
        "goals": goals or "none",
        "memories": "; ".join(sit["memories"]) or "none",
        "nearby": ", ".join(f"{n['name']} ({n['npc']})" for n in sit["nearby"]) or "nobody",
        "relationships": rels or "none",
        "actions": actions or "wait",
        "world_title": "",
    }


def answer_schema(decide: Decide, sit: Mapping[str, Any], cohort: bool) -> dict[str, Any]:
    """The JSON Schema an answer must meet: one of the allowed kinds' schemas, narrowed to
    the event types and targets allowed now (for constrained decoding); a cohort's answer
    is a distribution over allowed (action, event type) pairs."""
    allowed = sit["allowed"]
    if cohort:
        pairs = [
            {"action": k, "event_type": e} for k, v in allowed.items() for e in v["event_types"]
        ]
        return {
            "type": "object",
            "properties": {
                "choices": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 8,
                    "items": {
                        "type": "object",
                        "properties": {
                            "action": {"enum": sorted(allowed)},
                            "event_type": {"enum": sorted({p["event_type"] for p in pairs})}
                            if pairs
                            else {"type": "null"},
                            "weight": {"type": "number", "minimum": 0, "maximum": 1},
                        },
                        "required": ["action", "weight"],
                        "additionalProperties": False,
                    },
                },
                "reason": {"type": "string", "maxLength": MAX_REASON},
            },
            "required": ["choices"],
            "additionalProperties": False,
        }
    variants = []
    for kind in decide.actions:
        if kind.id not in allowed:
            continue
        schema = json.loads(json.dumps(kind.action_schema))
        props = schema.get("properties", {})
        if kind.event_types and "event_type" in props:
            props["event_type"] = {"enum": allowed[kind.id]["event_types"]}
        if "target" in props and allowed[kind.id]["targets"]:
            props["target"] = {"enum": allowed[kind.id]["targets"]}
        if kind.feed and "post" in props:
            props["post"] = {"enum": allowed[kind.id]["posts"]}
        variants.append(schema)
    return {"oneOf": variants} if variants else {"type": "object"}


def _placeholders(*texts: str) -> set[str]:
    out: set[str] = set()
    for text in texts:
        try:
            out |= {n for _, n, _, _ in string.Formatter().parse(text) if n is not None}
        except ValueError:
            continue
    return out


def _due_ctx(index: WorldIndex, tick: TickStarted) -> Ctx:
    """The NPC is asked about the due tick: where it will be then (static schedules), who
    will be there, what will be open; its state is the one it knows now."""
    k = tick.decide_deadline
    return Ctx(
        index,
        tick.model_copy(
            update={"tick": tick.tick + k, "sim_minute": tick.sim_minute + k * tick.step_minutes}
        ),
    )


def _asks(decide: Decide, groups: Iterable[Sequence[str]]) -> list[list[str]]:
    """The requests of the focal groups: a cohort of at least ``cohort_min`` is one request,
    anyone else is asked alone."""
    asks: list[list[str]] = []
    for group in groups:
        if decide.cohort_min > 0 and len(group) >= decide.cohort_min:
            asks.append(list(group))
        else:
            asks.extend([n] for n in group)
    return asks


def deliberating(
    index: WorldIndex,
    tick: TickStarted,
    states: Mapping[str, State],
    groups: Iterable[Sequence[str]],
) -> set[str]:
    """The shard's focal NPCs who choose their reactions to what they read this tick with
    the LLM: those asked alone (a cohort's distribution cannot name one member's post) and
    awake at the due tick (asked at all), when the feed loop is on and the catalog has a
    feed kind. The rules draw no reaction for them (:func:`sim.feed.read_feed`)."""
    cat = index.catalog
    if not cat.feed.enabled or not any(a.feed for a in cat.decide.actions):
        return set()
    hour = _due_ctx(index, tick).hour
    return {
        m[0]
        for m in _asks(cat.decide, groups)
        if len(m) == 1 and m[0] in states and index.location[m[0]][hour] is not None
    }


def request_id(tick: int, members: Sequence[str]) -> str:
    """A request's id: a content id (no run id, like events'), the same on every shard."""
    return derive_id("dq", tick, *members)


def requests_for(
    index: WorldIndex,
    tick: TickStarted,
    states: Mapping[str, State],
    groups: Iterable[Sequence[str]],
    reads: Mapping[str, Sequence[FeedPost]] | None = None,
) -> tuple[list[DecisionRequested], dict[str, str]]:
    """A shard's part of tick ``tick``'s focal groups (those with a member in ``states``):
    the requests it sends, and NPC -> request id for its members (their decision pending
    until ``tick + decide_deadline``).

    ``reads``: what the NPCs asked alone read in the feed this tick (their reactions are
    theirs to choose: :func:`deliberating`); their requests list the posts and offer the
    catalog's feed kinds.

    A group of at least ``cohort_min`` NPCs (same place, occupation, top goal kind) is one
    cohort request, sent by the shard of its first member with that member's view; its
    answer is a distribution every member draws from. Otherwise each NPC is asked alone.
    """
    ctx = _due_ctx(index, tick)
    decide = index.catalog.decide
    asks = _asks(decide, groups)
    out, marks = [], {}
    tmpl = decide.template
    for members in asks:
        rid = request_id(tick.tick, members)
        mine = [n for n in members if n in states and index.location[n][ctx.hour] is not None]
        for n in mine:
            marks[n] = rid
        if not mine or members[0] not in mine:
            continue  # asked by the first member's shard
        cohort = len(members) > 1
        posts = () if cohort or reads is None else reads.get(members[0], ())
        sit = situation(ctx, members[0], states[members[0]], posts)
        if cohort:
            sit = {**sit, "cohort": members}
        schema = answer_schema(decide, sit, cohort)
        values = _lines(sit)
        system = _fmt(tmpl.system, values)
        prompt = _fmt(tmpl.prompt, values)
        if cohort:
            prompt += (
                f"\nYou decide for {len(members)} people like this at once: answer "
                '{"choices": [{"action": ..., "event_type": ..., "weight": ...}], "reason": ...}.'
            )
        if "posts" in sit and "posts" not in _placeholders(tmpl.system, tmpl.prompt):
            prompt += (
                f"\nPosts you read: {values['posts']}\nTo react to one, answer "
                '{"action": ..., "event_type": ..., "post": ..., "reason": ...}.'
            )
        phash = f"{stable_hash64(system, prompt, json.dumps(schema, sort_keys=True)):016x}"
        out.append(
            DecisionRequested(
                request_id=rid,
                run_id=tick.run_id,
                world=tick.world,
                tick=tick.tick,
                due_tick=tick.tick + tick.decide_deadline,
                shard=tick.shard,
                n_shards=tick.n_shards,
                npcs=members,
                cohort=cohort_key(index, members[0], states[members[0]], ctx.hour)
                if cohort
                else None,
                situation=sit,
                system=system,
                prompt=prompt,
                answer_schema=schema,
                max_tokens=tmpl.max_tokens,
                prompt_hash=phash,
            )
        )
    return out, marks


# ---- 3. the engine boundary ----------------------------------------------------------------------


@functools.cache
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def schema_ok(kind: ActionKind, answer: Mapping[str, Any]) -> bool:
    """Whether an answer meets its kind's catalog ``action_schema``."""
    return bool(_validator(json.dumps(kind.action_schema, sort_keys=True)).is_valid(dict(answer)))


def _type_problem(ctx: Ctx, npc_id: str, state: State, etype: EventType, place: str) -> str | None:
    """Why the NPC cannot do ``etype`` at its place now, regardless of target; None: it can."""
    index, hour = ctx.index, ctx.hour
    spot = index.catalog.places[place]
    if not is_open(spot, hour) and index.card(npc_id).home != place:
        return "place_closed"
    pre = etype.preconditions
    if pre.place_kinds and spot.kind not in pre.place_kinds:
        return "place_not_allowed"
    if len(index.occupancy[hour].get(place, [])) > spot.capacity:
        return "place_full"
    if not pre.start_hour <= hour < pre.end_hour:
        return "precondition"
    last = state["cool"].get(etype.id)
    if last is not None and ctx.tick.tick - last < etype.cooldown_ticks:
        return "cooldown"
    return None


@dataclass(frozen=True)
class Verdict:
    """An answer checked: the reason it is refused (None: accepted) and what it chose."""

    reason: str | None
    action: str | None = None
    etype: EventType | None = None
    target: str | None = None
    post: FeedPost | None = None  # a feed kind's: the post reacted to
    reaction: Reaction | None = None  # ... and what the reaction is


def check(ctx: Ctx, npc_id: str, state: State, answer: Any) -> Verdict:
    """The engine-boundary rules, in :data:`REASONS` order, for one NPC's answer, against
    its state at the start of the due tick (``ctx.tick``)."""
    index = ctx.index
    action = answer.get("action") if isinstance(answer, Mapping) else None
    kind = index.catalog.decide.action(action) if isinstance(action, str) else None
    if kind is None:
        return Verdict("unknown_action", action if isinstance(action, str) else None)
    et = answer.get("event_type")
    if kind.event_types and et not in kind.event_types:
        return Verdict("unknown_event_type", kind.id)
    if not schema_ok(kind, answer):
        return Verdict("schema", kind.id)
    etype = index.catalog.event_types[et] if kind.event_types else None
    place = index.location[npc_id][ctx.hour]
    if place is None:
        return Verdict("asleep", kind.id, etype)
    asked = answer.get("place")
    if asked is not None and asked != place:
        return Verdict("place_unreachable", kind.id, etype)
    if kind.feed and etype is not None:
        return _check_reaction(ctx, npc_id, state, kind, etype, answer.get("post"))
    if etype is None:
        return Verdict(None, kind.id)  # doing nothing is always allowed
    problem = _type_problem(ctx, npc_id, state, etype, place)
    if problem is not None:
        return Verdict(problem, kind.id, etype)
    target = answer.get("target") if etype.needs_target else None
    if etype.needs_target:
        if target == npc_id:
            return Verdict("self_target", kind.id, etype, target)
        if not isinstance(target, str) or target not in index.catalog.npcs:
            return Verdict("unknown_target", kind.id, etype, None)
        if index.location[target][ctx.hour] != place:
            return Verdict("target_unreachable", kind.id, etype, target)
        if not can_target(index, npc_id, state, etype, target):
            return Verdict("relationship", kind.id, etype, target)
    if _works_against_goals(index, npc_id, state, etype, target):
        return Verdict("goal_conflict", kind.id, etype, target)
    return Verdict(None, kind.id, etype, target)


def _check_reaction(
    ctx: Ctx, npc_id: str, state: State, kind: ActionKind, etype: EventType, key: Any
) -> Verdict:
    """A reaction to a post: one the NPC read (its ``seen``) and that is still in the due
    tick's feed; a reply to a rival is a feud and a feud with anyone else a reply (as the
    rules have it); then the type's hours and cooldown, and the relationship and goal
    rules toward the post's author."""
    index = ctx.index
    if key not in {s[1] for s in state.get("seen", ())}:
        return Verdict("unknown_post", kind.id, etype)
    post = next((p for p in ctx.tick.feed if p.key == key), None)
    if post is None:
        return Verdict("post_gone", kind.id, etype)
    author = post.author
    if author == npc_id:
        return Verdict("self_target", kind.id, etype, author, post)
    reaction = reaction_kind(index, npc_id, state, post, etype.id)
    if reaction is None:  # defensive: the catalog check keeps feed kinds to reaction types
        return Verdict("unknown_event_type", kind.id, etype, author, post)
    etype = index.catalog.event_types[getattr(index.catalog.feed.reactions, reaction)]
    problem = _feed_type_problem(ctx, state, etype)
    if problem is not None:
        return Verdict(problem, kind.id, etype, author, post)
    if not can_target(index, npc_id, state, etype, author):
        return Verdict("relationship", kind.id, etype, author, post)
    if _works_against_goals(index, npc_id, state, etype, author):
        return Verdict("goal_conflict", kind.id, etype, author, post)
    return Verdict(None, kind.id, etype, author, post, reaction)


def _works_against_goals(
    index: WorldIndex, npc_id: str, state: State, etype: EventType, target: str | None
) -> bool:
    """An event type that sets back one of the actor's unfinished goals, or that turns the
    actor against the target of a friendly goal (befriend, romance, reconcile)."""
    goals = read_goals(index, npc_id, state).goals
    for goal in goals:
        for eff in etype.effects:
            if eff.who != "actor":
                continue
            if eff.field == "goal_progress" and eff.goal_kind == goal.kind and eff.delta < 0:
                return True
            if (
                goal.kind in FRIENDLY_GOALS
                and target is not None
                and goal.target == target
                and eff.field == "affinity"
                and eff.toward == "target"
                and eff.delta < 0
            ):
                return True
    return False


def draw_choice(ctx: Ctx, npc_id: str, answer: Mapping[str, Any]) -> dict[str, Any] | None:
    """A cohort member's own draw from the cohort's distribution (its derived RNG); None
    when the distribution is malformed or all zero."""
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return None
    pairs = [
        (c, float(c["weight"]))
        for c in choices
        if isinstance(c, Mapping)
        and isinstance(c.get("weight"), int | float)
        and float(c["weight"]) > 0
    ]
    if not pairs:
        return None
    rng = _rng(ctx, npc_id, "cohort")
    picked = rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]
    return {k: v for k, v in picked.items() if k != "weight"}


def _rng(ctx: Ctx, npc_id: str, purpose: str) -> Any:
    from worldfeed.ids import rng_for

    return rng_for(ctx.tick.seed, ctx.tick.tick, npc_id, purpose)


def _pick_cohort_target(ctx: Ctx, npc_id: str, state: State, etype: EventType) -> str | None:
    """A cohort member's target for the drawn event type: one the rules allow, drawn with
    its own RNG (goal targets first when here)."""
    place = ctx.index.location[npc_id][ctx.hour]
    if place is None:
        return None
    here = [o for o in ctx.index.occupancy[ctx.hour].get(place, []) if o != npc_id]
    ok = [o for o in here if can_target(ctx.index, npc_id, state, etype, o)]
    if not ok:
        return None
    wanted = [
        o for o in read_goals(ctx.index, npc_id, state).targets_here(ctx.hour, place) if o in ok
    ]
    rng = _rng(ctx, npc_id, "cohort-target")
    return str(rng.choice(wanted or ok))


def resolve(
    ctx: Ctx,
    npc_id: str,
    state: State,
    made: DecisionMade | None,
    request_id: str,
    tally: FeedRead | None = None,
) -> tuple[DecisionResolved, EventHappened | None]:
    """What the NPC does at the due tick: the decision if the rules accept it, else the
    rules' own choice (recorded as rejected or fallback), and the record of it.

    An accepted reaction (a feed kind) is the reaction event a rule reaction would be,
    with ``source="llm"``; ``tally`` counts it in the post's counters and keeps the event."""
    t = ctx.tick
    base: dict[str, Any] = {
        "decision_id": derive_id("dc", request_id, npc_id),
        "request_id": request_id,
        "run_id": t.run_id,
        "tick": t.tick,
        "sim_minute": t.sim_minute,
        "npc_id": npc_id,
    }
    if made is None:
        return _fallback(ctx, npc_id, state, base, "missing", "", "error", 0, False, None)
    cohort = len(made.npcs) > 1
    base["asked_tick"] = made.tick
    reason = (made.reason or "")[:MAX_REASON] or None
    if made.status in ("invalid", "timeout", "error") or made.answer is None:
        cause = made.status if made.status in ("invalid", "timeout", "error") else "invalid"
        return _fallback(
            ctx,
            npc_id,
            state,
            base,
            cause,
            made.prompt_hash,
            made.status,
            made.tick,
            cohort,
            reason,
        )
    answer: Any = made.answer
    if cohort:
        answer = draw_choice(ctx, npc_id, made.answer)
        if answer is None:
            return _fallback(
                ctx,
                npc_id,
                state,
                base,
                "invalid",
                made.prompt_hash,
                made.status,
                made.tick,
                True,
                reason,
            )
        kind = ctx.index.catalog.decide.action(str(answer.get("action")))
        et = answer.get("event_type")
        if kind is not None and et in kind.event_types:
            etype = ctx.index.catalog.event_types[et]
            if etype.needs_target:
                target = _pick_cohort_target(ctx, npc_id, state, etype)
                if target is None:
                    verdict = Verdict("no_target", kind.id, etype)
                    event = decide_npc_by_rules(ctx, npc_id, state)
                    return _judged(base, made, cohort, reason, verdict, event)
                answer = {**answer, "target": target}
    verdict = check(ctx, npc_id, state, answer)
    if verdict.reason is not None:  # rejected: the rules choose
        event = decide_npc_by_rules(ctx, npc_id, state)
    elif verdict.post is not None and verdict.reaction is not None and verdict.etype is not None:
        follow = follow_change(verdict.reaction, state, verdict.post.author)
        event = reaction_event(
            ctx.index, ctx.tick, verdict.etype, npc_id, state, verdict.post, follow, "llm"
        )
        if tally is not None:
            tally.count(verdict.post.key, verdict.reaction)
            tally.events.append(event)
    elif verdict.etype is not None:
        place = ctx.index.location[npc_id][ctx.hour]
        rng = _rng(ctx, npc_id, "decision")
        event = build_event(ctx, verdict.etype, npc_id, verdict.target, place, state, rng, "llm")
    else:
        event = None
    return _judged(base, made, cohort, reason, verdict, event)


def _judged(
    base: dict[str, Any],
    made: DecisionMade,
    cohort: bool,
    reason: str | None,
    verdict: Verdict,
    event: EventHappened | None,
) -> tuple[DecisionResolved, EventHappened | None]:
    """The record of a decision the rules judged: accepted (``event`` is the LLM's), or
    rejected with ``verdict.reason`` (``event`` is the rules' choice)."""
    accepted = verdict.reason is None
    return (
        DecisionResolved(
            **base,
            cohort=cohort,
            prompt_hash=made.prompt_hash,
            status=made.status,
            outcome="accepted" if accepted else "rejected",
            reason_code=verdict.reason,
            action=verdict.action,
            event_type=verdict.etype.id if verdict.etype else None,
            target=verdict.target,
            model_reason=reason,
            event_id=event.event_id if event else None,
            # an accepted reaction: counted with the post's reach and the feed's stats
            post_id=verdict.post.post_id if accepted and verdict.post else None,
            reaction=verdict.reaction if accepted else None,
        ),
        event,
    )


def _fallback(
    ctx: Ctx,
    npc_id: str,
    state: State,
    base: dict[str, Any],
    cause: str,
    prompt_hash: str,
    status: Any,
    asked: int,
    cohort: bool,
    reason: str | None,
) -> tuple[DecisionResolved, EventHappened | None]:
    event = decide_npc_by_rules(ctx, npc_id, state)
    base.setdefault("asked_tick", asked)
    return (
        DecisionResolved(
            **base,
            cohort=cohort,
            prompt_hash=prompt_hash,
            status=status,
            outcome="fallback",
            reason_code=cause,
            model_reason=reason,
            event_id=event.event_id if event else None,
        ),
        event,
    )


def pending_of(state: State) -> tuple[int, str] | None:
    """(due tick, request id) of the NPC's decision in flight, if any."""
    pend = state.get("pend")
    return None if pend is None else (int(pend[0]), str(pend[1]))


def due_hour(start_minute: int, tick: int, step_minutes: int) -> int:
    """Hour of day at the start of ``tick``."""
    return hour_of(start_minute + tick * step_minutes)
