"""The world index: opening hours and capacity applied to the static whereabouts."""

from __future__ import annotations

import pytest

from catalog.models import Catalog, Place
from sim.world import HOURS, admission_rank, is_open, load_world
from tests.unit.sim.catalog_edit import rebuild, with_place


@pytest.fixture(scope="module")
def town() -> Catalog:
    return load_world("town").catalog


def place(open_hour: int, close_hour: int, capacity: int = 10) -> Place:
    return Place(
        id="spot",
        name="Spot",
        kind="cafe",
        capacity=capacity,
        open_hour=open_hour,
        close_hour=close_hour,
    )


def test_is_open_within_the_day() -> None:
    cafe = place(6, 19)
    assert [h for h in range(HOURS) if is_open(cafe, h)] == list(range(6, 19))


def test_is_open_past_midnight_when_close_is_below_open() -> None:
    bar = place(16, 2)
    assert [h for h in range(HOURS) if is_open(bar, h)] == [0, 1, *range(16, 24)]


def test_is_open_all_day_and_never() -> None:
    assert all(is_open(place(0, 24), h) for h in range(HOURS))
    assert not any(is_open(place(9, 9), h) for h in range(HOURS))


def test_occupancy_matches_location_and_nobody_is_at_a_closed_place(town: Catalog) -> None:
    index = load_world("town")
    for h in range(HOURS):
        for place_id, npcs in index.occupancy[h].items():
            assert npcs == sorted(npcs) and npcs
            for npc_id in npcs:
                assert index.location[npc_id][h] == place_id
                if town.npcs[npc_id].home != place_id:
                    assert is_open(town.places[place_id], h)
    # the starter world's bar staff arrive at 15 but the bar opens at 16: home till then
    assert index.location["frank_dolan"][15] == town.npcs["frank_dolan"].home
    assert index.location["frank_dolan"][16] == "rusty_anchor"
    assert "frank_dolan" in index.turned_away[15]["rusty_anchor"]


def test_capacity_admits_staff_first_then_by_a_stable_ranking(town: Catalog) -> None:
    index = with_place(town, "daily_grind", capacity=4)
    crowd = load_world("town").occupancy[7]["daily_grind"]
    admitted = index.occupancy[7]["daily_grind"]
    spot = index.catalog.places["daily_grind"]
    ranked = sorted(crowd, key=lambda n: admission_rank(spot, town.npcs[n]))
    assert admitted == sorted(ranked[:4])
    assert sorted(index.turned_away[7]["daily_grind"]) == sorted(ranked[4:])
    staff = [n for n in crowd if town.npcs[n].work == "daily_grind"]
    assert staff and set(staff) <= set(admitted)


def test_admission_does_not_depend_on_catalog_order(town: Catalog) -> None:
    a = with_place(town, "daily_grind", capacity=4)
    b = rebuild(
        a.catalog,
        npcs=list(reversed(a.catalog.npcs.values())),
        places=list(reversed(a.catalog.places.values())),
    )
    assert a.occupancy == b.occupancy and a.location == b.location


def test_a_home_always_takes_its_residents_in(town: Catalog) -> None:
    index = with_place(town, "maple_row", capacity=1, open_hour=9, close_hour=10)
    residents = [n for n in index.npc_ids if town.npcs[n].home == "maple_row"]
    usual = load_world("town")
    for h in range(HOURS):
        for npc_id in residents:
            if usual.location[npc_id][h] == "maple_row":  # at home: still home, open or not
                assert index.location[npc_id][h] == "maple_row"
    assert len(index.occupancy[20]["maple_row"]) > 1  # over capacity: its own residents
