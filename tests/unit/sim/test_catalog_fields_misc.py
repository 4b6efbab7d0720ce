"""Catalog fields that change what the simulation or a post does, shown on small worlds.

Each test is named ``test_field_<Model>_<field>_...`` (see
tests/unit/catalog/test_field_coverage.py). The worlds are built in memory: one café
open all day, NPCs awake all day, and the event types a test needs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from catalog.models import (
    Catalog,
    Channel,
    ChannelRule,
    DirectorRule,
    EffectSpec,
    EventType,
    Goal,
    Impact,
    Npc,
    NpcSelector,
    Participants,
    Place,
    PlaceSelector,
    Preconditions,
    Relationship,
    ScheduleBlock,
    ScheduledEvent,
    ScheduleTrigger,
    Template,
    Traits,
    World,
)
from posts.prompt import build_prompt
from posts.quota import apply_rate_limit
from sim.director import weekday
from sim.impact import Story, render_requests
from sim.local import LocalRun
from sim.state import seed_state
from sim.world import WorldIndex
from topics.models import EventHappened, RenderRequested

MID = 0.5
ALL_DAY = [ScheduleBlock(start_hour=0, end_hour=24, place="cafe", activity="hanging out")]
PLACES = [
    Place(id="cafe", name="Cafe", kind="cafe", capacity=1000, open_hour=0, close_hour=24),
    Place(id="park", name="Park", kind="park", capacity=1000, open_hour=0, close_hour=24),
    Place(id="home_a", name="Home", kind="home", capacity=1000, open_hour=0, close_hour=24),
]
IMPACT = Impact(novelty=0.5, conflict=0.5, status=0.5, cascade=0.0)


def npc(npc_id: str, schedule: list[ScheduleBlock] | None = None, **kw: Any) -> Npc:
    """An average NPC, awake at the café all day unless told otherwise."""
    traits = {t: MID for t in Traits.model_fields} | kw.pop("traits", {})
    fields: dict[str, Any] = {
        "id": npc_id,
        "handle": f"@{npc_id}_x",
        "display_name": npc_id.replace("_", " ").title(),
        "age": 30,
        "occupation": "baker",
        "home": "home_a",
        "traits": Traits(**traits),
        "voice": "plain and short",
        "fame": 0.0,
        "posting_propensity": 0.5,
        "schedule": ALL_DAY if schedule is None else schedule,
    }
    return Npc(**(fields | kw))


def etype(type_id: str, **kw: Any) -> EventType:
    """An event type that can happen anywhere, any time, to anyone."""
    fields: dict[str, Any] = {
        "id": type_id,
        "name": type_id,
        "summary": "{actor} did " + type_id + " at {place}",
        "needs_target": False,
        "base_weight": 1.0,
        "impact": IMPACT,
    }
    return EventType(**(fields | kw))


def world(
    npcs: list[Npc],
    types: list[EventType],
    relationships: list[Relationship] | None = None,
    goals: list[Goal] | None = None,
    scheduled: list[ScheduledEvent] | None = None,
    channels: list[Channel] | None = None,
    templates: list[Template] | None = None,
    director: list[DirectorRule] | None = None,
    **world_kw: Any,
) -> WorldIndex:
    """The index of a world built in memory."""
    w = World(
        **{"name": "tiny", "title": "Tiny", "description": "A test world."}
        | {"start_weekday": "monday"}
        | world_kw
    )
    catalog = Catalog(
        w,
        PLACES,
        npcs,
        relationships or [],
        goals or [],
        types,
        channels or [],
        templates or [],
        scheduled or [],
        director or [],
    )
    return WorldIndex.build(catalog)


def play(index: WorldIndex, ticks: int, seed: int = 1) -> LocalRun:
    """A run of ``ticks`` ticks on one shard."""
    run = LocalRun(index, "run-test", seed)
    for _ in range(ticks):
        run.step()
    return run


def crowd(n: int, **kw: Any) -> list[Npc]:
    return [npc(f"npc_{i:03d}", **kw) for i in range(n)]


# ---- Traits and EventType weights ---------------------------------------------------------


def _share_of_liked(trait: str, value: float) -> float:
    """Share of events of the type whose weight ``trait`` multiplies by 4 (of two types)."""
    types = [etype("liked", trait_weights={trait: 4.0}), etype("plain")]
    index = world(crowd(30, traits={trait: value, "extraversion": 1.0}), types)
    counts = Counter(e.type for e in play(index, 96).events)
    return counts["liked"] / max(1, counts["liked"] + counts["plain"])


def _trait_biases(trait: str) -> None:
    high, low = _share_of_liked(trait, 1.0), _share_of_liked(trait, 0.0)
    assert high > 0.65 and low < 0.35, (trait, high, low)  # 4:1 vs 1:4 in expectation


def test_field_Traits_openness_biases_weighted_event_types() -> None:
    _trait_biases("openness")


def test_field_Traits_conscientiousness_biases_weighted_event_types() -> None:
    _trait_biases("conscientiousness")


def test_field_Traits_agreeableness_biases_weighted_event_types() -> None:
    _trait_biases("agreeableness")


def test_field_Traits_neuroticism_biases_weighted_event_types() -> None:
    _trait_biases("neuroticism")


def test_field_Traits_extraversion_makes_npcs_act_more_often() -> None:
    def events(value: float) -> int:
        return len(play(world(crowd(30, traits={"extraversion": value}), [etype("x")]), 96).events)

    assert events(1.0) > 2 * events(0.0)  # act chance 1.5x vs 0.5x the base rate


def test_field_EventType_trait_weights_multiply_the_weight_by_the_trait() -> None:
    assert _share_of_liked("openness", 1.0) > 0.65
    assert 0.35 < _share_of_liked("openness", MID) < 0.65  # a trait of 0.5 leaves it as is


def test_field_EventType_base_weight_sets_how_often_a_type_is_chosen() -> None:
    index = world(crowd(30), [etype("common", base_weight=9.0), etype("rare", base_weight=1.0)])
    counts = Counter(e.type for e in play(index, 96).events)
    assert counts["common"] > 4 * counts["rare"]
    never = world(crowd(10), [etype("never", base_weight=0.0), etype("x")])
    assert "never" not in {e.type for e in play(never, 48).events}


# ---- EventType targets, summary, cooldown ---------------------------------------------------


def test_field_EventType_needs_target_picks_someone_present() -> None:
    index = world(crowd(10), [etype("meet", needs_target=True, summary="{actor} met {target}")])
    events = play(index, 96).events
    assert events and all(e.target is not None and e.target != e.actor for e in events)
    alone = world(crowd(1), [etype("meet", needs_target=True)])
    assert play(alone, 96).events == []  # nobody to meet


def test_field_EventType_target_filter_limits_targets_by_tag() -> None:
    people = crowd(6)
    rels = [
        Relationship(
            source=a.id, target=people[1].id, affinity=0, trust=50, familiarity=50, tags=["friend"]
        )
        for a in people
        if a.id != people[1].id
    ]
    index = world(people, [etype("hug", needs_target=True, target_filter="friend")], rels)
    events = play(index, 96).events
    assert events and {e.target for e in events} == {people[1].id}


def test_field_Relationship_tags_decide_who_a_filtered_type_may_target() -> None:
    people = crowd(4)
    index = world(people, [etype("hug", needs_target=True, target_filter="family")])
    assert play(index, 96).events == []  # nobody is family: no target
    rel = Relationship(
        source=people[0].id,
        target=people[1].id,
        affinity=0,
        trust=50,
        familiarity=50,
        tags=["family"],
    )
    tagged = world(people, [etype("hug", needs_target=True, target_filter="family")], [rel])
    events = play(tagged, 96).events
    assert events and {(e.actor, e.target) for e in events} == {(people[0].id, people[1].id)}


def test_field_EventType_summary_is_filled_with_names() -> None:
    index = world(crowd(3), [etype("sing", summary="{actor} sang at {place}")])
    ev = play(index, 96).events[0]
    assert ev.summary == f"{index.npc(ev.actor).display_name} sang at Cafe"


def test_field_EventType_cooldown_ticks_keeps_an_npc_from_repeating_a_type() -> None:
    index = world(crowd(20, traits={"extraversion": 1.0}), [etype("x", cooldown_ticks=1000)])
    per_actor = Counter(e.actor for e in play(index, 96).events)
    assert per_actor and max(per_actor.values()) == 1
    free = world(crowd(20, traits={"extraversion": 1.0}), [etype("x")])
    assert max(Counter(e.actor for e in play(free, 96).events).values()) > 1


# ---- Preconditions ------------------------------------------------------------------------------


def test_field_Preconditions_place_kinds_limit_where_a_type_happens() -> None:
    index = world(crowd(20), [etype("picnic", preconditions=Preconditions(place_kinds=["park"]))])
    assert play(index, 96).events == []  # everyone is at the café
    at_park = [ScheduleBlock(start_hour=0, end_hour=24, place="park", activity="walking")]
    park = world(
        crowd(20, schedule=at_park),
        [etype("picnic", preconditions=Preconditions(place_kinds=["park"]))],
    )
    assert play(park, 96).events


def _hours_of(pre: Preconditions) -> set[int]:
    index = world(crowd(30, traits={"extraversion": 1.0}), [etype("x", preconditions=pre)])
    return {e.sim_minute // 60 for e in play(index, 96).events}


def test_field_Preconditions_start_hour_is_the_earliest_hour() -> None:
    hours = _hours_of(Preconditions(start_hour=18))
    assert hours and min(hours) >= 18


def test_field_Preconditions_end_hour_is_the_first_hour_it_no_longer_happens() -> None:
    hours = _hours_of(Preconditions(end_hour=6))
    assert hours and max(hours) < 6


def _affinity_world(pre: Preconditions) -> set[str | None]:
    people = crowd(3)
    rels = [
        Relationship(
            source=people[0].id, target=people[1].id, affinity=80, trust=50, familiarity=50
        ),
        Relationship(
            source=people[0].id, target=people[2].id, affinity=-80, trust=50, familiarity=50
        ),
    ]
    actor = [
        people[0].model_copy(
            update={
                "traits": Traits(**{t: MID for t in Traits.model_fields} | {"extraversion": 1.0})
            }
        )
    ]
    index = world(actor + people[1:], [etype("x", needs_target=True, preconditions=pre)], rels)
    return {e.target for e in play(index, 400).events if e.actor == people[0].id}


def test_field_Preconditions_min_affinity_needs_that_much_affinity_to_the_target() -> None:
    assert _affinity_world(Preconditions(min_affinity=50)) == {"npc_001"}


def test_field_Preconditions_max_affinity_needs_at_most_that_affinity() -> None:
    assert _affinity_world(Preconditions(max_affinity=-50)) == {"npc_002"}


def test_field_Relationship_affinity_is_what_affinity_preconditions_read() -> None:
    assert _affinity_world(Preconditions(min_affinity=-100)) == {"npc_001", "npc_002"}
    assert _affinity_world(Preconditions(min_affinity=90)) == set()


# ---- Relationships and goals seed NPC state ------------------------------------------------------


def test_field_Relationship_source_and_target_seed_the_sources_state_only() -> None:
    a, b = crowd(2)
    rel = Relationship(source=a.id, target=b.id, affinity=10, trust=60, familiarity=70)
    index = world([a, b], [etype("x")], [rel])
    assert seed_state(index, a.id)["rel"] == {b.id: [10.0, 60.0, 70.0]}
    assert seed_state(index, b.id)["rel"] == {}  # directed


def test_field_Relationship_target_is_the_other_side() -> None:
    test_field_Relationship_source_and_target_seed_the_sources_state_only()


def test_field_Relationship_trust_seeds_the_state() -> None:
    a, b = crowd(2)
    rel = Relationship(source=a.id, target=b.id, affinity=0, trust=33, familiarity=0)
    assert seed_state(world([a, b], [], [rel]), a.id)["rel"][b.id][1] == 33.0


def test_field_Relationship_familiarity_seeds_the_state() -> None:
    a, b = crowd(2)
    rel = Relationship(source=a.id, target=b.id, affinity=0, trust=0, familiarity=44)
    assert seed_state(world([a, b], [], [rel]), a.id)["rel"][b.id][2] == 44.0


def test_field_Goal_npc_kind_and_progress_seed_the_npcs_goals() -> None:
    a, b = crowd(2)
    goal = Goal(npc=a.id, kind="befriend", progress=0.25, priority=3)
    index = world([a, b], [], goals=[goal])
    assert seed_state(index, a.id)["goal"] == {"befriend": 0.25}
    assert seed_state(index, b.id)["goal"] == {}


def test_field_Goal_kind_is_what_goal_progress_effects_advance() -> None:
    test_field_EffectSpec_goal_kind_advances_the_goal_of_that_kind()


def test_field_Goal_progress_is_where_progress_starts() -> None:
    test_field_Goal_npc_kind_and_progress_seed_the_npcs_goals()


# ---- EffectSpec ---------------------------------------------------------------------------------


def _one_event_run(effects: list[EffectSpec], goals: list[Goal] | None = None) -> LocalRun:
    """Two NPCs; one type with a target and these effects; played until it happened."""
    people = crowd(2, traits={"extraversion": 1.0})
    index = world(
        people,
        [etype("poke", needs_target=True, effects=effects, cooldown_ticks=100_000)],
        goals=goals,
    )
    run = LocalRun(index, "run-test", 1)
    while not run.events:
        run.step()
    run.step()  # effects of the event's tick are applied by the end of it
    return run


def test_field_EffectSpec_who_field_toward_delta_change_that_relationship() -> None:
    spec = EffectSpec(who="target", field="affinity", toward="actor", delta=-30)
    run = _one_event_run([spec])
    ev = run.events[0]
    assert ev.target is not None
    assert run.states[ev.target]["rel"][ev.actor][0] == -30.0
    assert ev.target not in run.states[ev.actor]["rel"]  # only the target's side changed


def test_field_EffectSpec_field_selects_the_number_that_changes() -> None:
    run = _one_event_run([EffectSpec(who="actor", field="reputation", delta=7)])
    assert run.states[run.events[0].actor]["rep"] == 57.0  # 50 + fame 0 / 4, then +7


def test_field_EffectSpec_toward_names_the_other_side() -> None:
    run = _one_event_run([EffectSpec(who="actor", field="trust", toward="target", delta=5)])
    ev = run.events[0]
    assert run.states[ev.actor]["rel"][ev.target][1] == 25.0  # a new relationship starts at 20


def test_field_EffectSpec_delta_is_the_change() -> None:
    run = _one_event_run([EffectSpec(who="actor", field="familiarity", toward="target", delta=12)])
    ev = run.events[0]
    assert run.states[ev.actor]["rel"][ev.target][2] == 12.0


def test_field_EffectSpec_who_chooses_whose_state_changes() -> None:
    run = _one_event_run([EffectSpec(who="target", field="reputation", delta=-10)])
    ev = run.events[0]
    assert ev.target is not None
    assert (run.states[ev.actor]["rep"], run.states[ev.target]["rep"]) == (50.0, 40.0)


def test_field_EffectSpec_goal_kind_advances_the_goal_of_that_kind() -> None:
    goals = [Goal(npc=f"npc_{i:03d}", kind="befriend", progress=0.1, priority=2) for i in (0, 1)]
    spec = EffectSpec(who="actor", field="goal_progress", goal_kind="befriend", delta=20)
    run = _one_event_run([spec], goals)
    assert run.states[run.events[0].actor]["goal"] == {"befriend": 0.3}  # delta / 100
    other = EffectSpec(who="actor", field="goal_progress", goal_kind="get_famous", delta=20)
    unmoved = _one_event_run([other], goals)
    assert unmoved.states[unmoved.events[0].actor]["goal"] == {"befriend": 0.1}


def test_field_EffectSpec_memory_and_salience_make_the_memory() -> None:
    spec = EffectSpec(who="target", field="memory", memory="{actor} poked me", salience=0.9)
    run = _one_event_run([spec])
    ev = run.events[0]
    assert ev.target is not None
    [(tick, event_id, text, salience)] = run.states[ev.target]["mem"]
    assert (event_id, text, salience) == (
        ev.event_id,
        f"{run.index.npc(ev.actor).display_name} poked me",
        0.9,
    )


def test_field_EffectSpec_salience_weighs_the_memory() -> None:
    spec = EffectSpec(who="actor", field="memory", salience=0.2)
    run = _one_event_run([spec])
    assert run.states[run.events[0].actor]["mem"][0][3] == 0.2


# ---- Impact.cascade, channel rules, channels ---------------------------------------------------


def test_field_Impact_cascade_amplifies_the_score_and_makes_talk_refer_back() -> None:
    quiet = Impact(novelty=0.5, conflict=0.5, status=0.5, cascade=0.0)
    loud = Impact(novelty=0.5, conflict=0.5, status=0.5, cascade=1.0)
    remember = EffectSpec(who="actor", field="memory", salience=1.0)
    index = world(
        crowd(10, traits={"extraversion": 1.0}),
        [
            etype("talk", impact=loud, effects=[remember]),
            etype("hum", impact=quiet, effects=[remember]),
        ],
    )
    events = play(index, 96).events
    talk = [e for e in events if e.type == "talk"]
    hum = [e for e in events if e.type == "hum"]
    assert talk and hum
    assert min(e.impact.total for e in talk if e.impact) > max(
        e.impact.total for e in hum if e.impact
    )
    assert any(e.refs for e in talk) and not any(e.refs for e in hum)


def _requests(rule: ChannelRule, total: float) -> list[RenderRequested]:
    people = crowd(3)
    index = world(people, [etype("x", channels={"feed": rule})])
    ev = play(index, 96).events[0]
    ev = ev.model_copy(
        update={
            "impact": ev.impact.model_copy(update={"total": total}) if ev.impact else None,
            "witnesses": ["npc_002"],
        }
    )
    return render_requests(index, Story(ev))


def test_field_ChannelRule_threshold_is_the_score_a_post_needs() -> None:
    rule = ChannelRule(threshold=0.6, template="feed_post", author="actor")
    assert _requests(rule, 0.59) == []
    assert len(_requests(rule, 0.6)) == 1


def test_field_ChannelRule_template_is_the_requests_template() -> None:
    rule = ChannelRule(threshold=0.0, template="my_template", author="actor")
    assert [r.template for r in _requests(rule, 0.5)] == ["my_template"]


def test_field_ChannelRule_author_chooses_who_writes() -> None:
    rule = ChannelRule(threshold=0.0, template="t", author="witness")
    assert [r.author for r in _requests(rule, 0.5)] == ["npc_002"]


def _channel(limit: int) -> Channel:
    return Channel(
        id="feed",
        name="Feed",
        rate_limit_per_day=limit,
        post_schema={"type": "object"},
    )


def test_field_Channel_rate_limit_per_day_caps_an_authors_posts() -> None:
    rule = ChannelRule(threshold=0.0, template="t", author="actor")
    people = crowd(3)
    index = world(people, [etype("x", channels={"feed": rule})], channels=[_channel(2)])
    req = _requests(rule, 0.5)[0]
    quota: dict[bytes, bytes] = {}
    outcomes = [
        apply_rate_limit(index, req.model_copy(update={"request_id": f"rq{i}"}), quota)[0]
        for i in range(3)
    ]
    assert [o is not None for o in outcomes] == [True, True, False]


# ---- NPCs and their schedules ------------------------------------------------------------------


def test_field_ScheduleBlock_hours_and_place_say_where_an_npc_is() -> None:
    block = ScheduleBlock(start_hour=9, end_hour=17, place="park", activity="walking")
    index = world([npc("a", schedule=[block])], [])
    assert [h for h, p in enumerate(index.location["a"]) if p == "park"] == list(range(9, 17))


def test_field_ScheduleBlock_start_hour_is_the_first_hour_there() -> None:
    test_field_ScheduleBlock_hours_and_place_say_where_an_npc_is()


def test_field_ScheduleBlock_end_hour_is_the_first_hour_no_longer_there() -> None:
    test_field_ScheduleBlock_hours_and_place_say_where_an_npc_is()


def test_field_ScheduleBlock_place_home_and_work_are_the_npcs_own() -> None:
    blocks = [
        ScheduleBlock(start_hour=8, end_hour=12, place="work", activity="working"),
        ScheduleBlock(start_hour=12, end_hour=20, place="home", activity="resting"),
    ]
    index = world([npc("a", schedule=blocks, work="cafe", home="home_a")], [])
    assert index.location["a"][8:20] == ["cafe"] * 4 + ["home_a"] * 8


def test_field_ScheduleBlock_activity_with_sleep_means_asleep() -> None:
    blocks = [ScheduleBlock(start_hour=0, end_hour=24, place="home", activity="Sleeping")]
    index = world([npc("a", schedule=blocks, traits={"extraversion": 1.0})], [etype("x")])
    assert set(index.location["a"]) == {None}
    assert play(index, 96).events == []  # asleep NPCs do nothing


def test_field_Npc_home_is_where_home_blocks_point() -> None:
    test_field_ScheduleBlock_place_home_and_work_are_the_npcs_own()


def test_field_Npc_work_is_where_work_blocks_point_or_home_without_one() -> None:
    block = [ScheduleBlock(start_hour=8, end_hour=12, place="work", activity="working")]
    index = world([npc("a", schedule=block, work=None, home="home_a")], [])
    assert index.location["a"][8:12] == ["home_a"] * 4


def test_field_Npc_channels_with_news_make_a_journalist() -> None:
    index = world([npc("a", channels=["news"]), npc("b", channels=["feed"])], [])
    assert index.journalists == ["a"]


def test_field_Npc_fame_seeds_reputation_and_raises_status() -> None:
    index = world([npc("a", fame=80.0), npc("b", fame=0.0)], [etype("x")])
    assert (seed_state(index, "a")["rep"], seed_state(index, "b")["rep"]) == (70.0, 50.0)


def test_field_Npc_occupation_is_what_director_selectors_match() -> None:
    index = world([npc("a", occupation="Mayor"), npc("b", occupation="baker")], [])
    assert index.with_occupation("mayor") == ("a",)


# ---- World, templates, scheduled events ---------------------------------------------------------


def test_field_World_memory_top_k_is_how_many_memories_an_event_carries() -> None:
    remember = EffectSpec(who="actor", field="memory", salience=1.0)

    def most(k: int) -> int:
        index = world(
            crowd(5, traits={"extraversion": 1.0}), [etype("x", effects=[remember])], memory_top_k=k
        )
        return max(len(e.actor_memories) for e in play(index, 192).events)

    assert (most(1), most(3)) == (1, 3)


def test_field_World_start_weekday_names_day_one() -> None:
    index = world([], [], start_weekday="friday")
    assert [weekday(index, d) for d in (1, 2, 4)] == ["friday", "saturday", "monday"]


def _prompt_world(template: Template) -> tuple[WorldIndex, RenderRequested]:
    people = [npc("a"), npc("b")]
    index = world(people, [etype("x")], templates=[template])
    ev = EventHappened(
        event_id="ev1",
        run_id="r",
        tick=40,
        sim_minute=600,
        type="x",
        actor="a",
        place="cafe",
        summary="A did x",
        actor_memories=["m1", "m2", "m3", "m4"],
    )
    req = RenderRequested(
        request_id="rq1",
        run_id="r",
        channel="feed",
        author="a",
        template=template.id,
        score=0.5,
        event=ev,
    )
    return index, req


def _template(**kw: Any) -> Template:
    return Template(
        **{
            "id": "t",
            "channel": "feed",
            "system": "You are {author_name}.",
            "prompt": "Remember: {memories}",
        }
        | kw
    )


def test_field_Template_max_memories_limits_the_memories_in_a_prompt() -> None:
    t = _template(max_memories=2)
    index, req = _prompt_world(t)
    assert build_prompt(index, req, t).user == "Remember: m1; m2"


def test_field_Template_max_tokens_is_the_output_budget_capped_by_the_setting() -> None:
    t = _template(max_tokens=200)
    index, req = _prompt_world(t)
    assert build_prompt(index, req, t).max_tokens == 200
    assert build_prompt(index, req, t, max_tokens=80).max_tokens == 80  # WORLDFEED_LLM_MAX_TOKENS
    assert build_prompt(index, req, t, max_tokens=1024).max_tokens == 200
    assert build_prompt(index, req, t, 80).text == build_prompt(index, req, t).text


def _scheduled_run(**kw: Any) -> tuple[ScheduledEvent, list[EventHappened]]:
    people = crowd(3, traits={"extraversion": 0.0})
    fields: dict[str, Any] = {
        "id": "fair",
        "day": 1,
        "time": "10:20",
        "type": "open",
        "actor": "npc_001",
        "target": "npc_002",
        "place": "park",
        "summary": "The fair opened",
    } | kw
    sched = ScheduledEvent(**fields)
    index = world(
        people, [etype("open", base_weight=0.0), etype("close", base_weight=0.0)], scheduled=[sched]
    )
    return sched, [e for e in play(index, 192).events if e.source == "scheduled"]


def test_field_ScheduledEvent_day_and_time_are_when_it_happens() -> None:
    _, [ev] = _scheduled_run()
    assert (ev.tick, ev.sim_minute) == (41, 615)  # the tick whose 15 minutes hold 10:20
    _, [later] = _scheduled_run(day=2)
    assert later.tick == 96 + 41


def test_field_ScheduledEvent_time_is_the_time_of_day() -> None:
    _, [ev] = _scheduled_run(time="23:59")
    assert ev.tick == 95


def test_field_ScheduledEvent_type_actor_target_place_summary_make_the_event() -> None:
    _, [ev] = _scheduled_run()
    assert (ev.type, ev.actor, ev.target, ev.place, ev.summary) == (
        "open",
        "npc_001",
        "npc_002",
        "park",
        "The fair opened",
    )
    _, [other] = _scheduled_run(
        type="close", actor="npc_000", target=None, place="cafe", summary="Closed"
    )
    assert (other.type, other.actor, other.target, other.place, other.summary) == (
        "close",
        "npc_000",
        None,
        "cafe",
        "Closed",
    )


def test_field_ScheduledEvent_type_is_the_event_type() -> None:
    test_field_ScheduledEvent_type_actor_target_place_summary_make_the_event()


def test_field_ScheduledEvent_actor_is_who_does_it() -> None:
    test_field_ScheduledEvent_type_actor_target_place_summary_make_the_event()


def test_field_ScheduledEvent_target_is_who_it_is_done_to() -> None:
    test_field_ScheduledEvent_type_actor_target_place_summary_make_the_event()


def test_field_ScheduledEvent_place_is_where() -> None:
    test_field_ScheduledEvent_type_actor_target_place_summary_make_the_event()


def test_field_ScheduledEvent_summary_is_the_events_text() -> None:
    test_field_ScheduledEvent_type_actor_target_place_summary_make_the_event()


# ---- Place kinds; director selectors ------------------------------------------------------------


def test_field_Place_kind_decides_which_event_types_fit_there() -> None:
    at_park = [ScheduleBlock(start_hour=0, end_hour=24, place="park", activity="walking")]
    picnic = etype("picnic", preconditions=Preconditions(place_kinds=["park"]))
    assert play(world(crowd(20, schedule=at_park), [picnic]), 96).events
    as_cafe = [p.model_copy(update={"kind": "cafe"}) if p.id == "park" else p for p in PLACES]
    people = crowd(20, schedule=at_park)
    catalog = Catalog(
        World(name="tiny", title="Tiny", description="A test world.", start_weekday="monday"),
        as_cafe, people, [], [], [picnic], [], [], [], [],
    )  # fmt: skip
    assert play(WorldIndex.build(catalog), 96).events == []


def _director_events(participants: Participants) -> list[EventHappened]:
    """Day 1 of a world whose one director rule fires every day at 10:00."""
    people = [
        npc("ann_baker", occupation="baker", fame=10.0),
        npc("bob_baker", occupation="Head Baker", fame=90.0),
        npc("cy_mayor", occupation="mayor", fame=50.0),
    ]
    rule = DirectorRule(
        id="rule",
        kind="festival",
        description="A festival.",
        event_type="fest",
        trigger=ScheduleTrigger(type="schedule", time="10:00"),
        participants=participants,
    )
    index = world(people, [etype("fest", base_weight=0.0)], director=[rule])
    return [e for e in play(index, 96).events if e.source == "director"]


def test_field_NpcSelector_npc_is_a_fixed_npc() -> None:
    [ev] = _director_events(Participants(actor=NpcSelector(npc="cy_mayor")))
    assert ev.actor == "cy_mayor"


def test_field_NpcSelector_occupation_limits_the_pool() -> None:
    sel = NpcSelector(occupation="mayor")
    [ev] = _director_events(Participants(actor=sel, target=NpcSelector(occupation="baker")))
    assert ev.actor == "cy_mayor" and ev.target in ("ann_baker", "bob_baker")


def test_field_NpcSelector_pick_most_famous_takes_the_most_famous() -> None:
    [ev] = _director_events(Participants(actor=NpcSelector(occupation="baker", pick="most_famous")))
    assert ev.actor == "bob_baker"


def test_field_PlaceSelector_place_is_a_fixed_place() -> None:
    actor = NpcSelector(npc="cy_mayor")
    [ev] = _director_events(Participants(actor=actor, place=PlaceSelector(place="park")))
    assert ev.place == "park"


def test_field_PlaceSelector_kind_picks_a_place_of_that_kind() -> None:
    actor = NpcSelector(npc="cy_mayor")
    [ev] = _director_events(Participants(actor=actor, place=PlaceSelector(kind="home")))
    assert ev.place == "home_a"
    [here] = _director_events(Participants(actor=actor))
    assert here.place == "cafe"  # neither: where the actor is
