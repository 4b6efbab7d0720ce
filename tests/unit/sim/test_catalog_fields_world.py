"""Behavioural tests of catalog fields: places, NPCs, goals and impact.

Each test changes one field of the starter world in memory and shows the outcome
changing as the field's documentation says (``test_field_<Model>_<field>_<what>``;
tests/unit/catalog/test_field_coverage.py looks for these names).
"""

from __future__ import annotations

from collections import Counter

import pytest

from catalog.models import Catalog, Goal, Relationship
from sim.calendar import hour_of
from sim.decide import Ctx, _decide_npc, base_impact, decide_shard
from sim.impact import Story, render_requests
from sim.local import LocalRun
from sim.state import seed_state
from sim.world import WorldIndex, load_world
from tests.unit.sim.catalog_edit import rebuild, with_npcs, with_place
from topics.models import EventHappened, TickStarted

TICKS_PER_DAY = 96


@pytest.fixture(scope="module")
def town() -> Catalog:
    return load_world("town").catalog


def day(index: WorldIndex, seed: int = 1) -> list[EventHappened]:
    run = LocalRun(index, "fields", seed)
    for _ in range(TICKS_PER_DAY):
        run.step()
    return run.events


def tick_at(index: WorldIndex, tick: int, seed: int = 1) -> TickStarted:
    return TickStarted(
        run_id="fields",
        seed=seed,
        world=index.catalog.name,
        tick=tick,
        sim_minute=tick * 15,
        step_minutes=15,
        shard=0,
        n_shards=1,
    )


def at_place(events: list[EventHappened], place: str) -> list[EventHappened]:
    return [e for e in events if e.place == place and e.source == "npc"]


# ---- Place ------------------------------------------------------------------------------------


def test_field_Place_capacity_turns_people_away(town: Catalog) -> None:
    full = with_place(town, "daily_grind", capacity=3)
    roomy = with_place(town, "daily_grind", capacity=100)
    h = 7  # coffee time: a crowd at the cafe
    assert len(roomy.occupancy[h]["daily_grind"]) > 3
    assert len(full.occupancy[h]["daily_grind"]) == 3
    staff = {n for n in full.npc_ids if town.npcs[n].work == "daily_grind"}
    assert staff <= set(full.occupancy[h]["daily_grind"])  # staff are admitted first
    away = full.turned_away[h]["daily_grind"]
    assert len(away) == len(roomy.occupancy[h]["daily_grind"]) - 3
    for npc_id in away:  # the turned-away are at home, where events can find them
        home = town.npcs[npc_id].home
        assert full.location[npc_id][h] == home and npc_id in full.occupancy[h][home]
    # the same admission on another build (no arrival order, no dict order)
    assert with_place(town, "daily_grind", capacity=3).occupancy == full.occupancy
    # and over a day: nobody turned away acts or is acted upon at the cafe that hour
    for ev in at_place(day(full), "daily_grind"):
        here = set(full.occupancy[hour_of(ev.sim_minute)]["daily_grind"])
        assert ev.actor in here and (ev.target is None or ev.target in here)
    assert len(at_place(day(full), "daily_grind")) < len(at_place(day(roomy), "daily_grind"))


def test_field_Place_open_hour_keeps_a_place_empty_until_it_opens(town: Catalog) -> None:
    late = with_place(town, "daily_grind", open_hour=12)
    usual = load_world("town")
    assert usual.occupancy[7]["daily_grind"]
    for h in range(12):
        assert "daily_grind" not in late.occupancy[h]
    for npc_id in usual.occupancy[7]["daily_grind"]:  # those who came for coffee stay home
        assert late.location[npc_id][7] == town.npcs[npc_id].home
    assert late.occupancy[17]["daily_grind"]  # open in the afternoon as before
    before_noon = [e for e in at_place(day(usual), "daily_grind") if hour_of(e.sim_minute) < 12]
    assert before_noon  # the usual cafe has a morning
    assert not [e for e in at_place(day(late), "daily_grind") if hour_of(e.sim_minute) < 12]


def test_field_Place_close_hour_sends_people_home_and_wraps_past_midnight(town: Catalog) -> None:
    usual = load_world("town")  # the Rusty Anchor: 16..2, past midnight
    assert usual.occupancy[0]["rusty_anchor"] and usual.occupancy[20]["rusty_anchor"]
    early = with_place(town, "rusty_anchor", close_hour=18)
    for h in [*range(18, 24), 0, 1]:
        assert "rusty_anchor" not in early.occupancy[h]
    assert early.occupancy[17]["rusty_anchor"]
    late_events = [
        e
        for e in at_place(day(usual, seed=7), "rusty_anchor") + at_place(day(usual), "rusty_anchor")
        if hour_of(e.sim_minute) >= 18
    ]
    assert late_events
    evening = [e for e in at_place(day(early), "rusty_anchor") if hour_of(e.sim_minute) >= 18]
    evening += [e for e in at_place(day(early, 7), "rusty_anchor") if hour_of(e.sim_minute) >= 18]
    assert not evening


# ---- Npc --------------------------------------------------------------------------------------


def test_field_Npc_posting_propensity_decides_who_writes_on_feed_and_chat(town: Catalog) -> None:
    events = day(load_world("town"))

    def channels(index: WorldIndex) -> Counter[str]:
        out: Counter[str] = Counter()
        for ev in events:
            out.update(r.channel for r in render_requests(index, Story(ev.model_copy(deep=True))))
        return out

    always = channels(with_npcs(town, posting_propensity=1.0))
    some = channels(with_npcs(town, posting_propensity=0.5))
    never = channels(with_npcs(town, posting_propensity=0.0))
    assert always["feed"] + always["chat"] > some["feed"] + some["chat"] > 0
    assert never["feed"] == never["chat"] == 0
    assert always["news"] == some["news"] == never["news"] > 0  # news is the journalists' job
    assert channels(with_npcs(town, posting_propensity=0.5)) == some  # the same draw on replay


# ---- Goal -------------------------------------------------------------------------------------


def _leo_targets_noah(town: Catalog, goal: Goal | None, samples: int = 300) -> float:
    """Share of Leo's choices at Willow Green (15:00, Noah there too) that target Noah."""
    goals = [g for g in town.goals if g.npc != "leo_marchetti"] + ([goal] if goal else [])
    index = rebuild(town, goals=goals)
    assert (
        index.location["noah_fischer"][15] == index.location["leo_marchetti"][15] == "willow_green"
    )
    state = seed_state(index, "leo_marchetti")
    hits = total = 0
    for i in range(samples):
        ev = _decide_npc(Ctx(index, tick_at(index, 60 + i * TICKS_PER_DAY)), "leo_marchetti", state)
        if ev is not None and ev.target is not None:
            total += 1
            hits += ev.target == "noah_fischer"
    assert total > samples // 2
    return hits / total


def test_field_Goal_target_draws_actions_toward_the_target(town: Catalog) -> None:
    aimed = _leo_targets_noah(
        town, Goal(npc="leo_marchetti", kind="befriend", target="noah_fischer", priority=5)
    )
    aimless = _leo_targets_noah(town, Goal(npc="leo_marchetti", kind="befriend", priority=5))
    assert aimed > 2 * aimless


def test_field_Goal_target_place_makes_the_npc_act_more_there(town: Catalog) -> None:
    def frank_acts(target: str | None) -> int:
        goal = Goal(npc="frank_dolan", kind="grow_business", target=target, priority=5)
        goals = [g for g in town.goals if g.npc != "frank_dolan"] + [goal]
        index = rebuild(town, goals=goals)
        states = {n: seed_state(index, n) for n in index.npc_ids}
        count = 0
        for d in range(40):
            for t in range(80, 88):  # 20:00..22:00, Frank at work at the Rusty Anchor
                evs = decide_shard(index, tick_at(index, d * TICKS_PER_DAY + t), states)
                count += sum(e.actor == "frank_dolan" and e.source == "npc" for e in evs)
        return count

    assert frank_acts("rusty_anchor") > 1.5 * frank_acts(None) > 0


def test_field_Goal_priority_weighs_how_hard_a_goal_pulls(town: Catalog) -> None:
    low = _leo_targets_noah(
        town, Goal(npc="leo_marchetti", kind="befriend", target="noah_fischer", priority=1)
    )
    high = _leo_targets_noah(
        town, Goal(npc="leo_marchetti", kind="befriend", target="noah_fischer", priority=5)
    )
    assert high > 1.5 * low


# ---- Impact -----------------------------------------------------------------------------------


def _argument_score(index: WorldIndex, actor: str, target: str) -> tuple[float, float]:
    etype = index.catalog.event_types["argument"]
    imp = base_impact(index, etype, actor, target, seed_state(index, actor), 40, False)
    return imp.conflict, imp.total


def test_field_Impact_conflict_rivals_quarrels_score_higher(town: Catalog) -> None:
    index = load_world("town")
    rivals = _argument_score(index, "rosa_marchetti", "greta_vogel")  # -40, tagged rival
    strangers = _argument_score(index, "rosa_marchetti", "walter_pike")
    assert "walter_pike" not in seed_state(index, "rosa_marchetti")["rel"]
    assert rivals[0] > strangers[0] and rivals[1] > strangers[1]
    assert strangers[0] == town.event_types["argument"].impact.conflict
    # the type's own conflict component still scales everything
    calm_types = [
        t.model_copy(update={"impact": t.impact.model_copy(update={"conflict": 0.1})})
        if t.id == "argument"
        else t
        for t in town.event_types.values()
    ]
    calm = rebuild(town, event_types=calm_types)
    assert _argument_score(calm, "rosa_marchetti", "greta_vogel")[0] < rivals[0]
    # making them friends takes the rivalry out of the score
    friends = [
        Relationship(
            source="rosa_marchetti", target="greta_vogel", affinity=40, trust=50, familiarity=85
        )
        if (r.source, r.target) == ("rosa_marchetti", "greta_vogel")
        else r
        for r in town.relationships
    ]
    assert (
        _argument_score(rebuild(town, relationships=friends), "rosa_marchetti", "greta_vogel")[0]
        == strangers[0]
    )


def test_field_Impact_novelty_halves_for_a_repeat(town: Catalog) -> None:
    index = load_world("town")
    etype = town.event_types["argument"]
    state = seed_state(index, "rosa_marchetti")
    fresh = base_impact(index, etype, "rosa_marchetti", None, state, 200, False)
    assert fresh.novelty == etype.impact.novelty
    state["cool"]["argument"] = 150  # argued 50 ticks ago
    repeat = base_impact(index, etype, "rosa_marchetti", None, state, 200, False)
    assert repeat.novelty == etype.impact.novelty / 2 and repeat.total < fresh.total


def test_field_Impact_status_counts_with_the_actors_live_reputation(town: Catalog) -> None:
    index = load_world("town")
    etype = town.event_types["argument"]
    state = seed_state(index, "walter_pike")
    before = base_impact(index, etype, "walter_pike", None, state, 40, False)
    state["rep"] = 90.0  # became the talk of the town during the run
    after = base_impact(index, etype, "walter_pike", None, state, 40, False)
    assert after.status > before.status and after.total > before.total
    loud = [
        t.model_copy(update={"impact": t.impact.model_copy(update={"status": 1.0})})
        if t.id == "argument"
        else t
        for t in town.event_types.values()
    ]
    louder = rebuild(town, event_types=loud)
    high = base_impact(
        louder, louder.catalog.event_types["argument"], "walter_pike", None, state, 40, False
    )
    assert high.status > after.status
