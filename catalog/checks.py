"""Cross-reference rules a JSON Schema cannot express: ids that must exist, fields that must
agree, templates that must fit the prompt budget, director rules that must be able to fire.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from catalog.errors import CatalogIssue, json_pointer
from catalog.event_refs import closed_problem, event_problems, open_for
from catalog.models import (
    Catalog,
    ConditionTrigger,
    Decide,
    DecideTemplate,
    DirectorRule,
    EventType,
    Npc,
    NpcSelector,
    Relationship,
    ScheduledEvent,
    ScheduleTrigger,
    Template,
)

SUMMARY_FIELDS = frozenset({"actor", "target", "place"})
MEMORY_FIELDS = frozenset({"actor", "target", "place", "summary"})
# Placeholders a prompt template may use, with the most characters each can expand to.
TEMPLATE_FIELDS: dict[str, int] = {
    "author_name": 80,
    "author_handle": 32,
    "author_voice": 300,
    "author_occupation": 60,
    "event_summary": 300,
    "place_name": 80,
    "time": 16,
    "channel": 8,
    "world_title": 120,  # world.json title, filled in at load (catalog.loader.name_the_world)
    "memories": 0,  # sized per template: max_memories x MEMORY_CHARS
    "author_style": 300,  # the NPC's style: register, emoji, quirks
    "length": 40,  # from the style: "one short sentence" .. "two or three sentences"
    "actor_name": 80,
    "target_name": 80,
    "who": 200,  # "<name> is <occupation>." for actor and target
    "who_list": 200,  # the same, as "- " lines
    "mood": 120,  # from the event type's valence
    "must_name": 200,  # who (and where) the post must name
    "day": 4,
    "parent_author": 80,  # a reply or repost: who wrote the post it answers
    "parent_text": 600,  # what that post says (sim.impact.PARENT_TEXT_CHARS)
    "relation": 8,  # "reply" or "repost"
}
MEMORY_CHARS = 200
# Placeholders a decide prompt may use, with the most characters each can expand to
# (per listed item for the lists: sized by the template's limits, see decide_prompt_tokens).
DECIDE_FIELDS: dict[str, int] = {
    "name": 80,
    "occupation": 60,
    "voice": 300,
    "place_name": 80,
    "time": 16,
    "world_title": 120,
    "goals": 5 * 60,  # at most 5 goals listed
    "relationships": 0,  # one line per person listed: max_nearby x NEARBY_CHARS
    "nearby": 0,  # max_nearby x NEARBY_CHARS
    "memories": 0,  # max_memories x MEMORY_CHARS
    "actions": 0,  # the action kinds: their ids, descriptions and event types
    "posts": 0,  # the posts read (a feed kind's): reads_per_tick x POST_CHARS
}
POST_CHARS = 160  # one post read, as the decide prompt lists it
NEARBY_CHARS = 48
DECIDE_TOKEN_BUDGET = 1200
CHARS_PER_TOKEN = 3.5  # conservative for English with a small BPE vocabulary
PROMPT_TOKEN_BUDGET = 1000
RELATIONSHIP_FIELDS = frozenset({"affinity", "trust", "familiarity"})
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "events_last_hour": (0, math.inf),
    "posts_last_hour": (0, math.inf),
    "mean_affinity": (-100, 100),
    "active_npcs": (0, math.inf),
    "conflict_share": (0, 1),
}

Report = Callable[[str, Sequence[object], str, str], None]


def placeholders(text: str) -> set[str]:
    """Names of the {placeholders} in a format string."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return {"<malformed braces>"}


def estimate_prompt_tokens(template: Template) -> int:
    """Worst-case tokens of a rendered prompt (system + prompt, every placeholder full)."""
    chars = len(template.system) + len(template.prompt)
    chars += sum(len(e.event) + len(e.post) + 80 for e in template.examples)  # earlier turns
    for name in placeholders(template.system) | placeholders(template.prompt):
        if name == "memories":
            chars += template.max_memories * MEMORY_CHARS
        else:
            chars += TEMPLATE_FIELDS.get(name, 0)
    return math.ceil(chars / CHARS_PER_TOKEN)


def _unique(
    items: Iterable[Any], key: Callable[[Any], object], report: Callable[..., None], what: str
) -> None:
    seen: Counter[object] = Counter()
    for i, item in enumerate(items):
        k = key(item)
        seen[k] += 1
        if seen[k] == 2:
            report([i], f"duplicate {what} {k!r}", f"unique-{what.replace(' ', '-')}")


def check_catalog(
    catalog: Catalog, shown: Callable[[str], str], parsed: dict[str, Any]
) -> list[CatalogIssue]:
    """Every cross-reference problem of a catalog whose files each passed their schema."""
    issues: list[CatalogIssue] = []

    def reporter(file: str) -> Callable[[Sequence[object], str, str], None]:
        def report(path: Sequence[object], message: str, rule: str) -> None:
            issues.append(CatalogIssue(shown(file), json_pointer(path), message, rule))

        return report

    _check_places(parsed["places.json"], reporter("places.json"))
    _check_npcs(catalog, parsed["npcs.json"], reporter("npcs.json"))
    _check_relationships(catalog, parsed["relationships.json"], reporter("relationships.json"))
    _check_goals(catalog, parsed["goals.json"], reporter("goals.json"))
    _check_channels(parsed["channels.json"], reporter("channels.json"))
    _check_templates(catalog, parsed["templates.json"], reporter("templates.json"))
    _check_event_types(catalog, parsed["event_types.json"], reporter("event_types.json"))
    _check_scheduled(catalog, parsed["scheduled.json"], reporter("scheduled.json"))
    _check_director(catalog, parsed["director.json"], reporter("director.json"))
    _check_decide(catalog, parsed["decide.json"], reporter("decide.json"))
    _check_feed(catalog, reporter("feed.json"))
    return issues


def _check_feed(catalog: Catalog, report: Callable[..., None]) -> None:
    """A feed that is on names reaction types the catalog has; they happen only as
    reactions (no channel writes them up on their own)."""
    feed = catalog.feed
    if not feed.enabled:
        return
    for kind, type_id in feed.reactions.model_dump().items():
        if type_id not in catalog.event_types:
            report(["reactions", kind], f"unknown event type {type_id!r}", "event-type-exists")


def _check_places(places: list[Any], report: Callable[..., None]) -> None:
    _unique(places, lambda p: p.id, report, "place id")
    for i, p in enumerate(places):
        if p.open_hour == p.close_hour:
            report(
                [i, "close_hour"],
                "close_hour equals open_hour (use 0 and 24 for all day)",
                "opening-hours",
            )


def _check_npcs(catalog: Catalog, npcs: list[Npc], report: Callable[..., None]) -> None:
    _unique(npcs, lambda n: n.id, report, "npc id")
    _unique(npcs, lambda n: n.handle, report, "handle")
    for i, n in enumerate(npcs):
        check_npc(catalog, i, n, report)


def check_npc(catalog: Catalog, i: int, n: Npc, report: Callable[..., None]) -> None:
    """The cross-references of NPC ``i`` (not its uniqueness): home, work, channels, schedule."""
    if n.home not in catalog.places:
        report([i, "home"], f"unknown place {n.home!r}", "npc-home-exists")
    if n.work is not None and n.work not in catalog.places:
        report([i, "work"], f"unknown place {n.work!r}", "npc-work-exists")
    for c, ch in enumerate(n.channels):
        if ch not in catalog.channels:
            report([i, "channels", c], f"unknown channel {ch!r}", "channel-exists")
    last_end = 0
    for b, block in enumerate(n.schedule):
        at = [i, "schedule", b]
        if block.end_hour <= block.start_hour:
            report([*at, "end_hour"], "end_hour must be after start_hour", "schedule-order")
        if block.start_hour < last_end:
            report([*at, "start_hour"], "block overlaps the previous one", "schedule-order")
        last_end = max(last_end, block.end_hour)
        if block.place == "work" and n.work is None:
            report([*at, "place"], "'work' but the npc has no work place", "schedule-place")
        elif block.place not in ("home", "work") and block.place not in catalog.places:
            report([*at, "place"], f"unknown place {block.place!r}", "schedule-place")


def _check_relationships(catalog: Catalog, rels: list[Any], report: Callable[..., None]) -> None:
    _unique(rels, lambda r: (r.source, r.target), report, "relationship")
    for i, r in enumerate(rels):
        check_relationship(catalog.npcs, i, r, report)


def check_relationship(
    npcs: Container[str], i: int, r: Relationship, report: Callable[..., None]
) -> None:
    """Relationship ``i`` joins two known NPCs, not one with itself (not its uniqueness)."""
    for end in ("source", "target"):
        if getattr(r, end) not in npcs:
            report([i, end], f"unknown npc {getattr(r, end)!r}", "relationship-npc-exists")
    if r.source == r.target:
        report([i, "target"], "relationship of an npc with itself", "relationship-not-self")


def _check_goals(catalog: Catalog, goals: list[Any], report: Callable[..., None]) -> None:
    for i, g in enumerate(goals):
        if g.npc not in catalog.npcs:
            report([i, "npc"], f"unknown npc {g.npc!r}", "goal-npc-exists")
        if g.target is not None and g.target not in catalog.npcs and g.target not in catalog.places:
            report([i, "target"], f"unknown npc or place {g.target!r}", "goal-target-exists")


def _check_channels(channels: list[Any], report: Callable[..., None]) -> None:
    _unique(channels, lambda c: c.id, report, "channel id")
    for i, c in enumerate(channels):
        try:
            Draft202012Validator.check_schema(c.post_schema)
        except SchemaError as exc:
            report([i, "post_schema", *exc.absolute_path], exc.message, "post-schema-valid")


def _check_templates(
    catalog: Catalog, templates: list[Template], report: Callable[..., None]
) -> None:
    _unique(templates, lambda t: t.id, report, "template id")
    for i, t in enumerate(templates):
        if t.channel not in catalog.channels:
            report([i, "channel"], f"unknown channel {t.channel!r}", "channel-exists")
        for part in ("system", "prompt"):
            for name in sorted(placeholders(getattr(t, part)) - TEMPLATE_FIELDS.keys()):
                report([i, part], f"unknown placeholder {{{name}}}", "template-placeholders")
        tokens = estimate_prompt_tokens(t)
        if tokens > PROMPT_TOKEN_BUDGET:
            report(
                [i, "prompt"],
                f"worst-case prompt is ~{tokens} tokens, over {PROMPT_TOKEN_BUDGET}",
                "prompt-budget",
            )


def _check_event_types(
    catalog: Catalog, types: list[EventType], report: Callable[..., None]
) -> None:
    _unique(types, lambda e: e.id, report, "event type id")
    journalists = any("news" in n.channels for n in catalog.npcs.values())
    for i, e in enumerate(types):
        for name in sorted(placeholders(e.summary) - SUMMARY_FIELDS):
            report([i, "summary"], f"unknown placeholder {{{name}}}", "summary-placeholders")
        if not e.needs_target:
            if "target" in placeholders(e.summary):
                report([i, "summary"], "{target} but needs_target is false", "target-consistency")
            if e.target_filter != "any":
                report(
                    [i, "target_filter"], "a target filter needs needs_target", "target-consistency"
                )
        pre = e.preconditions
        if pre.end_hour <= pre.start_hour:
            report(
                [i, "preconditions", "end_hour"], "end_hour must be after start_hour", "hours-order"
            )
        if not e.needs_target and (pre.min_affinity is not None or pre.max_affinity is not None):
            report(
                [i, "preconditions"], "affinity preconditions need a target", "target-consistency"
            )
        if (
            pre.min_affinity is not None
            and pre.max_affinity is not None
            and pre.min_affinity > pre.max_affinity
        ):
            report(
                [i, "preconditions", "max_affinity"],
                "max_affinity is below min_affinity",
                "affinity-range",
            )
        for k, eff in enumerate(e.effects):
            at = [i, "effects", k]
            if not e.needs_target and "target" in (eff.who, eff.toward):
                report(
                    at,
                    "effect on/toward the target but needs_target is false",
                    "target-consistency",
                )
            if eff.field in RELATIONSHIP_FIELDS:
                if eff.toward is None:
                    report([*at, "toward"], f"{eff.field} needs 'toward'", "effect-fields")
                elif eff.toward == eff.who:
                    report([*at, "toward"], f"{eff.who} toward itself", "effect-fields")
            elif eff.toward is not None and eff.field != "memory":
                report([*at, "toward"], f"{eff.field} takes no 'toward'", "effect-fields")
            if eff.field == "goal_progress" and eff.goal_kind is None:
                report([*at, "goal_kind"], "goal_progress needs goal_kind", "effect-fields")
            if eff.field != "goal_progress" and eff.goal_kind is not None:
                report([*at, "goal_kind"], f"goal_kind on a {eff.field} effect", "effect-fields")
            if eff.field == "memory":
                if eff.memory is None or eff.salience is None:
                    report(at, "memory effects need memory and salience", "effect-fields")
                else:
                    for name in sorted(placeholders(eff.memory) - MEMORY_FIELDS):
                        report(
                            [*at, "memory"],
                            f"unknown placeholder {{{name}}}",
                            "memory-placeholders",
                        )
            elif eff.memory is not None or eff.salience is not None:
                report(at, f"memory/salience on a {eff.field} effect", "effect-fields")
        for ch, rule in e.channels.items():
            at = [i, "channels", ch]
            if ch not in catalog.channels:
                report(at, f"unknown channel {ch!r}", "channel-exists")
            tpl = catalog.templates.get(rule.template)
            if tpl is None:
                report([*at, "template"], f"unknown template {rule.template!r}", "template-exists")
            elif tpl.channel != ch:
                report(
                    [*at, "template"],
                    f"template {tpl.id!r} is for channel {tpl.channel!r}",
                    "template-channel",
                )
            if rule.author == "target" and not e.needs_target:
                report(
                    [*at, "author"],
                    "author 'target' but needs_target is false",
                    "target-consistency",
                )
            if rule.author == "journalist" and not journalists:
                report([*at, "author"], "no npc writes news", "journalist-exists")


def _hour_ok(e: EventType, hour: int) -> bool:
    return e.preconditions.start_hour <= hour < e.preconditions.end_hour


def _check_scheduled(
    catalog: Catalog, events: list[ScheduledEvent], report: Callable[..., None]
) -> None:
    _unique(events, lambda s: s.id, report, "scheduled id")
    for i, s in enumerate(events):
        for problem in event_problems(catalog, s.type, s.actor, s.target, s.place):
            report([i, problem.field], problem.message, problem.rule)
        closed = closed_problem(catalog, s.actor, s.place, int(s.time[:2]), s.time)
        if closed is not None:
            report([i, closed.field], closed.message, closed.rule)
        e = catalog.event_types.get(s.type)
        place = catalog.places.get(s.place)
        if e is None:
            continue
        if not _hour_ok(e, int(s.time[:2])):
            report([i, "time"], f"{s.time} is outside the hours of {e.id!r}", "event-hours")
        kinds = e.preconditions.place_kinds
        if place is not None and kinds and place.kind not in kinds:
            report([i, "place"], f"{e.id!r} cannot happen at a {place.kind}", "event-place-kind")


def _selector_issues(catalog: Catalog, sel: NpcSelector) -> list[tuple[list[object], str]]:
    if sel.npc is not None and sel.occupation is not None:
        return [([], "give npc or occupation, not both")]
    if sel.npc is not None and sel.npc not in catalog.npcs:
        return [(["npc"], f"unknown npc {sel.npc!r}")]
    if sel.occupation is not None and not any(
        n.occupation == sel.occupation for n in catalog.npcs.values()
    ):
        return [(["occupation"], f"no npc has occupation {sel.occupation!r}")]
    return []


def _rule_hours(trigger: ScheduleTrigger | ConditionTrigger) -> range:
    """The hours a director rule can be due at (its time's, or its condition's window)."""
    if isinstance(trigger, ConditionTrigger):
        return range(max(0, trigger.start_hour), min(24, trigger.end_hour))
    hour = int(trigger.time[:2])
    return range(hour, hour + 1)


def _check_director(
    catalog: Catalog, rules: list[DirectorRule], report: Callable[..., None]
) -> None:
    _unique(rules, lambda r: r.id, report, "director id")
    for i, r in enumerate(rules):
        e = catalog.event_types.get(r.event_type)
        if e is None:
            report([i, "event_type"], f"unknown event type {r.event_type!r}", "event-type-exists")
        never = "rule can never fire: "
        if r.probability == 0:
            report([i, "probability"], never + "probability is 0", "can-fire")
        t = r.trigger
        if isinstance(t, ConditionTrigger):
            lo, hi = METRIC_RANGES[t.metric]
            impossible = (
                (t.op == "<" and t.value <= lo)
                or (t.op == "<=" and t.value < lo)
                or (t.op == ">" and t.value >= hi)
                or (t.op == ">=" and t.value > hi)
            )
            if t.metric == "active_npcs" and t.op in (">", ">="):
                impossible |= t.value > len(catalog.npcs) or (
                    t.op == ">" and t.value == len(catalog.npcs)
                )
            if impossible:
                report(
                    [i, "trigger", "value"],
                    never + f"{t.metric} {t.op} {t.value} is never true",
                    "can-fire",
                )
            if t.end_hour <= t.start_hour:
                report([i, "trigger", "end_hour"], never + "empty hour window", "can-fire")
            elif e is not None and (
                t.end_hour <= e.preconditions.start_hour or t.start_hour >= e.preconditions.end_hour
            ):
                report([i, "trigger"], never + f"hours miss those of {e.id!r}", "can-fire")
        else:
            if t.days is not None and not t.days:
                report([i, "trigger", "days"], never + "empty day list", "can-fire")
            if t.weekdays is not None and not t.weekdays:
                report([i, "trigger", "weekdays"], never + "empty weekday list", "can-fire")
            if e is not None and not _hour_ok(e, int(t.time[:2])):
                report(
                    [i, "trigger", "time"],
                    never + f"{t.time} is outside the hours of {e.id!r}",
                    "can-fire",
                )
        p = r.participants
        for path, msg in _selector_issues(catalog, p.actor):
            report([i, "participants", "actor", *path], msg, "participant-exists")
        if p.target is not None:
            for path, msg in _selector_issues(catalog, p.target):
                report([i, "participants", "target", *path], msg, "participant-exists")
            if p.target.npc is not None and p.target.npc == p.actor.npc:
                report([i, "participants", "target"], never + "target is the actor", "can-fire")
        if e is not None and e.needs_target != (p.target is not None):
            need = "needs" if e.needs_target else "takes no"
            report([i, "participants", "target"], never + f"{e.id!r} {need} a target", "can-fire")
        ps = p.place
        kinds = e.preconditions.place_kinds if e is not None else []
        if ps.place is not None and ps.kind is not None:
            report(
                [i, "participants", "place"], "give place or kind, not both", "participant-exists"
            )
        elif ps.place is not None:
            place = catalog.places.get(ps.place)
            if place is None:
                report(
                    [i, "participants", "place", "place"],
                    f"unknown place {ps.place!r}",
                    "place-exists",
                )
            elif kinds and place.kind not in kinds:
                report(
                    [i, "participants", "place", "place"],
                    never + f"{e.id if e else ''!r} cannot happen at a {place.kind}",
                    "can-fire",
                )
            elif not any(open_for(catalog, ps.place, p.actor.npc or "", h) for h in _rule_hours(t)):
                report(
                    [i, "participants", "place", "place"],
                    never + f"{ps.place!r} is closed at every hour the rule is due",
                    "can-fire",
                )
        elif ps.kind is not None:
            if not any(pl.kind == ps.kind for pl in catalog.places.values()):
                report(
                    [i, "participants", "place", "kind"],
                    never + f"no place of kind {ps.kind!r}",
                    "can-fire",
                )
            elif kinds and ps.kind not in kinds:
                report(
                    [i, "participants", "place", "kind"],
                    never + f"{e.id if e else ''!r} cannot happen at a {ps.kind}",
                    "can-fire",
                )
            elif not any(
                open_for(catalog, pl.id, p.actor.npc or "", h)
                for pl in catalog.places.values()
                if pl.kind == ps.kind
                for h in _rule_hours(t)
            ):
                report(
                    [i, "participants", "place", "kind"],
                    never + f"every {ps.kind} is closed at every hour the rule is due",
                    "can-fire",
                )


def decide_prompt_tokens(decide: Decide, reads: int = 0) -> int:
    """Worst-case tokens of a rendered decide prompt (every placeholder full); ``reads``:
    posts an NPC reads at once, listed (in ``{posts}`` or a line of their own) when the
    catalog has a feed kind."""
    t: DecideTemplate = decide.template
    chars = len(t.system) + len(t.prompt)
    if any(a.feed for a in decide.actions):
        chars += reads * POST_CHARS + 120  # the posts, and how to answer about one
    actions = sum(
        len(a.id) + len(a.description) + sum(len(e) + 2 for e in a.event_types) + 8
        for a in decide.actions
    )
    for name in placeholders(t.system) | placeholders(t.prompt):
        if name == "memories":
            chars += t.max_memories * MEMORY_CHARS
        elif name in ("nearby", "relationships"):
            chars += t.max_nearby * NEARBY_CHARS
        elif name == "actions":
            chars += actions
        else:
            chars += DECIDE_FIELDS.get(name, 0)
    return math.ceil(chars / CHARS_PER_TOKEN)


def _probe(kind: str, event_type: str | None, target: bool, post: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"action": kind, "reason": "probe"}
    if event_type is not None:
        out["event_type"] = event_type
    if target:
        out["target"] = "someone"
    if post:
        out["post"] = "fp_0123456789abcdef"
    return out


def _check_decide(catalog: Catalog, decide: Decide, report: Callable[..., None]) -> None:
    """decide.json: templates that render, action kinds whose schemas are valid JSON
    Schemas pinned to their kind, mapped to event types that exist and agree on targets."""
    t = decide.template
    for part in ("system", "prompt"):
        for name in sorted(placeholders(getattr(t, part)) - DECIDE_FIELDS.keys()):
            report(["template", part], f"unknown placeholder {{{name}}}", "template-placeholders")
    reads = catalog.feed.reads_per_tick if catalog.feed.enabled else 0
    tokens = decide_prompt_tokens(decide, reads)
    if tokens > DECIDE_TOKEN_BUDGET:
        report(
            ["template", "prompt"],
            f"worst-case prompt is ~{tokens} tokens, over {DECIDE_TOKEN_BUDGET}",
            "prompt-budget",
        )
    if decide.budget_per_tick > 0 and not decide.actions:
        report(["actions"], "a deliberation budget needs at least one action", "actions-needed")
    _unique(
        decide.actions, lambda a: a.id, lambda p, m, r: report(["actions", *p], m, r), "action id"
    )
    reactions = sorted(set(catalog.feed.reactions.model_dump().values()))
    for i, a in enumerate(decide.actions):
        where = ["actions", i]
        needs = set()
        for j, et in enumerate(a.event_types):
            etype = catalog.event_types.get(et)
            if etype is None:
                report(
                    [*where, "event_types", j], f"unknown event type {et!r}", "event-type-exists"
                )
            elif a.feed and et not in reactions:
                report(
                    [*where, "event_types", j],
                    f"{et!r} is not a reaction type of feed.json ({', '.join(reactions)}): a "
                    "feed kind's event types are reactions to a post",
                    "feed-reaction-type",
                )
            elif not a.feed:
                needs.add(etype.needs_target)
        if a.feed:
            _check_feed_kind(a, where, report)
            continue
        if len(needs) > 1:
            report(
                [*where, "event_types"],
                "event types of one action kind must all need a target or all not",
                "action-target-consistency",
            )
        validator = _action_validator(a, where, report)
        if validator is None:
            continue
        target = needs == {True}
        probes = [_probe(a.id, et, target) for et in a.event_types or [None]]  # type: ignore[list-item]
        _accepts_all(validator, probes, where, report)
        first = a.event_types[0] if a.event_types else None
        _pins_kind(a, validator, _probe(a.id + "_other", first, target), where, report)
        if target:
            untargeted = {
                k: v for k, v in _probe(a.id, a.event_types[0], True).items() if k != "target"
            }
            if validator.is_valid(untargeted):
                report(
                    [*where, "action_schema"],
                    "accepts a decision without 'target' but its event types need one",
                    "action-target-consistency",
                )


def _action_validator(
    a: Any, where: list[object], report: Callable[..., None]
) -> Draft202012Validator | None:
    """A validator of the kind's action schema; None (reported) when it is no JSON Schema."""
    try:
        Draft202012Validator.check_schema(a.action_schema)
    except SchemaError as exc:
        pointer = [*where, "action_schema", *exc.absolute_path]
        report(pointer, f"not a valid JSON Schema: {exc.message}", "json-schema")
        return None
    return Draft202012Validator(a.action_schema)


def _accepts_all(
    validator: Draft202012Validator,
    probes: list[dict[str, Any]],
    where: list[object],
    report: Callable[..., None],
) -> bool:
    """Whether the schema accepts every well-formed decision; the first it rejects is
    reported."""
    for probe in probes:
        if not validator.is_valid(probe):
            report(
                [*where, "action_schema"],
                f"rejects a well-formed decision {probe}",
                "action-schema-accepts",
            )
            return False
    return True


def _pins_kind(
    a: Any,
    validator: Draft202012Validator,
    other: dict[str, Any],
    where: list[object],
    report: Callable[..., None],
) -> None:
    """Report a schema that accepts ``other``, a decision of another kind."""
    if validator.is_valid(other):
        report(
            [*where, "action_schema"],
            f"accepts a decision of another kind ({other['action']!r}): pin 'action' "
            f"to {a.id!r} (const) and require it",
            "action-schema-kind",
        )


def _check_feed_kind(a: Any, where: list[object], report: Callable[..., None]) -> None:
    """A feed kind (a reaction to a post read): event types to choose from, and a schema
    that accepts a decision naming a post, requires the post and is pinned to its kind."""
    if not a.event_types:
        report([*where, "event_types"], "a feed kind needs reaction types", "feed-reaction-type")
        return
    validator = _action_validator(a, where, report)
    if validator is None:
        return
    if not _accepts_all(
        validator, [_probe(a.id, et, False, post=True) for et in a.event_types], where, report
    ):
        return
    unposted = _probe(a.id, a.event_types[0], False)
    if validator.is_valid(unposted):
        report(
            [*where, "action_schema"],
            "accepts a decision without 'post': a feed kind's decision names the post it "
            "reacts to (require 'post')",
            "feed-action-post",
        )
    _pins_kind(
        a, validator, _probe(a.id + "_other", a.event_types[0], False, post=True), where, report
    )
