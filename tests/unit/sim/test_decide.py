"""Decision rules: goal reading, target rules and base impact."""

from __future__ import annotations

import pytest

from catalog.models import Catalog, Goal
from sim.decide import (
    HOSTILITY_CONFLICT,
    NOVELTY_WINDOW_TICKS,
    RIVAL_CONFLICT,
    base_impact,
    can_target,
    conflict_scale,
    standing,
)
from sim.goals import pull, read_goals
from sim.state import seed_state
from sim.world import load_world
from tests.unit.sim.catalog_edit import rebuild


@pytest.fixture(scope="module")
def town() -> Catalog:
    return load_world("town").catalog


def test_pull_grows_with_priority() -> None:
    assert pull(1) < pull(3) < pull(5) == 2.0


def test_goal_reading_weighs_types_that_advance_a_goal(town: Catalog) -> None:
    index = load_world("town")
    # mia_hart: organize_event at willow_green, priority 5; protest advances organize_event
    goals = read_goals(index, "mia_hart", seed_state(index, "mia_hart"))
    assert goals.type_weight(town.event_types["protest"]) == pull(5)
    assert goals.type_weight(town.event_types["greeting"]) == 1.0


def test_goal_reading_weighs_targets_places_and_types_that_can_aim_at_them(
    town: Catalog,
) -> None:
    index = load_world("town")
    goals = read_goals(index, "leo_marchetti", seed_state(index, "leo_marchetti"))
    assert goals.target_weight("zoe_kim") == pull(3) and goals.target_weight("mia_hart") == 1.0
    assert goals.type_weight(town.event_types["greeting"], ["zoe_kim"]) == pull(3)
    assert goals.targets_here(15, "willow_green") == ["zoe_kim"]
    assert goals.targets_here(12, "daily_grind") == []  # Zoe is at the park then
    frank = read_goals(index, "frank_dolan", seed_state(index, "frank_dolan"))
    assert frank.place_weight("rusty_anchor") == pull(3) and frank.place_weight("town_hall") == 1
    assert "frank_dolan" in index.goal_place_npcs and "leo_marchetti" not in index.goal_place_npcs


def test_a_finished_goal_stops_pulling(town: Catalog) -> None:
    index = load_world("town")
    state = seed_state(index, "leo_marchetti")
    state["goal"]["romance"] = 1.0
    assert read_goals(index, "leo_marchetti", state).target_weight("zoe_kim") == 1.0


def test_goals_are_read_by_priority(town: Catalog) -> None:
    goals = [
        Goal(npc="walter_pike", kind="befriend", target="zoe_kim", priority=2),
        Goal(npc="walter_pike", kind="get_famous", priority=5),
    ]
    index = rebuild(town, goals=[g for g in town.goals if g.npc != "walter_pike"] + goals)
    assert [g.priority for g in index.goals_of["walter_pike"]] == [5, 2]


def test_can_target_reads_the_type_filter_and_affinity(town: Catalog) -> None:
    index = load_world("town")
    state = seed_state(index, "rosa_marchetti")
    insult, small_talk = town.event_types["insult"], town.event_types["small_talk"]
    assert can_target(index, "rosa_marchetti", state, insult, "greta_vogel")  # tagged rival
    assert not can_target(index, "rosa_marchetti", state, insult, "walter_pike")
    assert not can_target(index, "rosa_marchetti", state, small_talk, "walter_pike")  # unknown
    assert not can_target(index, "rosa_marchetti", state, small_talk, "rosa_marchetti")


def test_conflict_scale_from_the_relationship(town: Catalog) -> None:
    index = load_world("town")
    state = seed_state(index, "rosa_marchetti")
    affinity = state["rel"]["greta_vogel"][0]
    expected = 1 + HOSTILITY_CONFLICT * -affinity / 100 + RIVAL_CONFLICT
    assert conflict_scale(index, "rosa_marchetti", "greta_vogel", state) == pytest.approx(expected)
    assert conflict_scale(index, "rosa_marchetti", "walter_pike", state) == 1.0  # strangers
    assert conflict_scale(index, "rosa_marchetti", None, state) == 1.0
    state["rel"]["greta_vogel"][0] = 50.0  # made up, still tagged rivals
    assert conflict_scale(index, "rosa_marchetti", "greta_vogel", state) == 1 + RIVAL_CONFLICT


def test_standing_starts_at_fame_and_follows_reputation(town: Catalog) -> None:
    index = load_world("town")
    for npc_id in index.npc_ids:
        rep = seed_state(index, npc_id)["rep"]
        assert standing(rep) == pytest.approx(town.npcs[npc_id].fame, abs=0.01)
    assert standing(50) == 0 and standing(75) == 100 and standing(100) == 100
    assert standing(30) == 80  # notoriety counts too


def test_novelty_halves_within_the_window_and_recovers_after(town: Catalog) -> None:
    index = load_world("town")
    etype = town.event_types["gossip"]
    state = seed_state(index, "rosa_marchetti")
    tick = 300
    fresh = base_impact(index, etype, "rosa_marchetti", None, state, tick, False).novelty
    state["cool"]["gossip"] = tick - 1
    assert base_impact(index, etype, "rosa_marchetti", None, state, tick, False).novelty == (
        fresh / 2
    )
    state["cool"]["gossip"] = tick - NOVELTY_WINDOW_TICKS + 1
    assert base_impact(index, etype, "rosa_marchetti", None, state, tick, False).novelty == (
        fresh / 2
    )
    state["cool"]["gossip"] = tick - NOVELTY_WINDOW_TICKS
    assert base_impact(index, etype, "rosa_marchetti", None, state, tick, False).novelty == fresh
    state["cool"] = {"argument": tick - 1}  # another type's repeat does not count
    assert base_impact(index, etype, "rosa_marchetti", None, state, tick, False).novelty == fresh


def test_status_takes_the_better_known_of_actor_and_target(town: Catalog) -> None:
    index = load_world("town")
    etype = town.event_types["argument"]
    state = seed_state(index, "walter_pike")
    alone = base_impact(index, etype, "walter_pike", None, state, 40, False).status
    famous = max(index.npc_ids, key=lambda n: town.npcs[n].fame)
    with_star = base_impact(index, etype, "walter_pike", famous, state, 40, False).status
    assert with_star == pytest.approx(
        min(1.0, 0.5 * etype.impact.status + 0.5 * town.npcs[famous].fame / 100), abs=1e-4
    )
    assert with_star > alone


def test_cascade_doubles_with_references(town: Catalog) -> None:
    index = load_world("town")
    etype = town.event_types["gossip"]
    state = seed_state(index, "rosa_marchetti")
    plain = base_impact(index, etype, "rosa_marchetti", None, state, 40, False).cascade
    referring = base_impact(index, etype, "rosa_marchetti", None, state, 40, True).cascade
    assert referring == pytest.approx(2 * plain)


def test_an_injected_event_at_a_closed_place_is_skipped_by_the_shard() -> None:
    """The API cannot know the tick's hour: the shard skips an injection at a place closed
    then (vogel_bakery opens 5..15), as it skips any other invalid one; the actor's own
    location (place None) is always open."""
    from sim.decide import decide_shard
    from topics.models import InjectedEvent, TickStarted

    index = load_world("town")
    states = {n: seed_state(index, n) for n in index.npc_ids}
    quake = {"type": "book_club", "actor": "eleanor_hart", "summary": "probe"}

    def admin_places(hour: int, **inj: object) -> list[str | None]:
        msg = TickStarted.model_validate(
            {
                "run_id": "r", "seed": 1, "world": "town", "tick": hour * 4,
                "sim_minute": hour * 60, "step_minutes": 15, "shard": 0, "n_shards": 1,
                "injected": [InjectedEvent.model_validate({**quake, **inj})],
            }
        )  # fmt: skip
        return [e.place for e in decide_shard(index, msg, states) if e.source == "admin"]

    assert admin_places(10, place="vogel_bakery") == ["vogel_bakery"]
    assert admin_places(16, place="vogel_bakery") == []
    assert admin_places(3, place="rusty_anchor") == []  # open 16..2, past midnight
    assert admin_places(1, place="rusty_anchor") == ["rusty_anchor"]
    assert admin_places(16) == [index.location["eleanor_hart"][16]]
    assert admin_places(16, place="ghost_town") == []  # as before: unknown place
