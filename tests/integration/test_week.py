"""A week of the starter world on the real broker, stored in the real ClickHouse engine:
relationships change, goals progress, director events happen, and a story that spread
was promoted to news after the fact. Checked by querying the stored results (the API).

The catalog's rules hold in what was stored (:func:`check_catalog_rules`): director
cooldowns, condition rules firing only when their condition held on the tick's inputs
(recomputed from the ticks log's tallies), no event at a closed place, no place over its
capacity (the whereabouts are static: the world index's admitted occupancy)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from bus.runlog import read_run
from catalog import load_catalog
from catalog.models import ConditionTrigger
from sim.replay import replay
from sim.world import WorldIndex, is_open, load_world, resolve_world
from tests.fixtures.kafka import free_port
from tests.fixtures.processes import Procs, read_settled, read_until, start_run, wait_http
from topics import EVENTS, RENDER_REQUESTS, TICKS
from topics.models import AFFINITY_SCALE, TickCompleted
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUN = "week-1"


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def all_events(api: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = get(f"{api}/events?run_id={RUN}&limit=500" + (f"&cursor={cursor}" if cursor else ""))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


def _hour(sim_minute: int) -> int:
    return (sim_minute // 60) % 24


def _condition_value(
    index: WorldIndex, trig: ConditionTrigger, log: dict[int, TickCompleted], tick: int, hour: int
) -> float | None:
    """The metric as the tick saw it: tallies of the completed ticks before it."""
    per_hour = max(1, 60 // _step(log))  # the clock's window of recent ticks
    before = [log[t] for t in range(max(0, tick - per_hour), tick)]
    prev = log.get(tick - 1)
    if trig.metric == "events_last_hour":
        return float(sum(t.events for t in before))
    if trig.metric == "posts_last_hour":
        return float(sum(t.render_requests for t in before))
    if trig.metric == "mean_affinity":
        if prev is None or not prev.relationships:
            return None
        return round(prev.affinity_milli / (prev.relationships * AFFINITY_SCALE), 4)
    if trig.metric == "conflict_share":
        return None if prev is None or not prev.npcs else round(prev.in_conflict / prev.npcs, 4)
    return float(sum(len(v) for v in index.occupancy[hour].values()))  # active_npcs


def _step(log: dict[int, TickCompleted]) -> int:
    return log[1].sim_minute - log[0].sim_minute


def check_catalog_rules(
    index: WorldIndex, stored: Sequence[dict[str, Any]], ticks: Sequence[TickCompleted]
) -> dict[str, Any]:
    """Assert the catalog's director, hours and capacity rules on a run's stored events and
    ticks log; returns counts for the closing note."""
    catalog = index.catalog
    log = {t.tick: t for t in ticks}
    rules = {r.id: r for r in catalog.director}
    ops = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }

    # director events as stored match the rules the ticks log says fired on their tick
    fired: dict[str, list[int]] = {}
    for t in sorted(log):
        for rule_id in log[t].director_fired:
            fired.setdefault(rule_id, []).append(t)
    by_tick: dict[int, Counter[str]] = {}
    for e in stored:
        if e["source"] == "director":
            by_tick.setdefault(e["tick"], Counter())[e["type"]] += 1
    for t in set(by_tick) | {t for ts in fired.values() for t in ts}:
        want = Counter(rules[r].event_type for r in log[t].director_fired)
        assert by_tick.get(t, Counter()) == want, f"tick {t}: director events vs ticks log"

    # (a) cooldowns hold
    for rule_id, at in fired.items():
        cooldown = rules[rule_id].cooldown_ticks
        for a, b in zip(at, at[1:], strict=False):
            assert b - a >= cooldown, f"{rule_id} fired at {a} and {b}, cooldown {cooldown}"

    # (b) condition rules fire, and only on a check tick in their hours with the condition true
    condition_firings = 0
    for rule_id, at in fired.items():
        trig = rules[rule_id].trigger
        if not isinstance(trig, ConditionTrigger):
            continue
        for t in at:
            hour = _hour(log[t].sim_minute)
            assert t > 0 and t % trig.check_every_ticks == 0, (rule_id, t)
            assert trig.start_hour <= hour < trig.end_hour, (rule_id, t, hour)
            value = _condition_value(index, trig, log, t, hour)
            assert value is not None and ops[trig.op](value, trig.value), (
                f"{rule_id} fired on tick {t} with {trig.metric}={value}, "
                f"not {trig.op} {trig.value}"
            )
            condition_firings += 1
    assert condition_firings, "no condition rule fired in a week"

    # (c) no event at a place while it is closed (a home always takes its residents)
    for e in stored:
        place = catalog.places.get(e["place"] or "")
        if place is None:
            continue
        hour = _hour(e["sim_minute"])
        home = catalog.npcs[e["actor"]].home == place.id
        assert is_open(place, hour) or home, (
            f"{e['source']} {e['type']} at {place.id} at {hour}:00, open "
            f"{place.open_hour}..{place.close_hour}"
        )
        if e["source"] == "npc":  # NPCs act where admission put them
            assert index.location[e["actor"]][hour] == place.id, (e["actor"], hour, place.id)

    # (d) no place over capacity in any hour (residents at home aside); admission ran
    full = 0
    for hour in range(24):
        for place_id, here in index.occupancy[hour].items():
            place = catalog.places[place_id]
            visitors = [n for n in here if catalog.npcs[n].home != place_id]
            assert len(visitors) <= max(0, place.capacity - (len(here) - len(visitors))), (
                place_id,
                hour,
            )
            assert len(here) <= place.capacity or not visitors, (place_id, hour)
        for place_id, away in index.turned_away[hour].items():
            if is_open(catalog.places[place_id], hour):
                full += len(away)
            for n in away:
                assert index.location[n][hour] == catalog.npcs[n].home, (n, hour)
    turned = sum(len(v) for h in index.turned_away for v in h.values())
    assert turned, "admission turned nobody away from a closed place"
    kinds = Counter(
        catalog.places[e["place"]].kind if e["place"] in catalog.places else "-" for e in stored
    )
    return {
        "director firings per rule": {r: len(at) for r, at in sorted(fired.items())},
        "condition firings": condition_firings,
        "events per place kind": dict(kinds.most_common()),
        "turned away (NPC-hours, closed / full)": (turned - full, full),
    }


async def test_a_week_changes_the_world(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    settings = settings_factory(api_port=free_port())
    procs.worker("worker", settings, "clock,world,impact")
    procs.start("api", settings, "api")
    api = f"http://127.0.0.1:{settings.api_port}"
    wait_http(f"{api}/health", 90, procs)
    await start_run(settings, RUN, seed=1, days=7)
    ticks = await read_until(settings, TICKS, lambda m: any(t.last for t in m), 600)
    total = sum(t.events for t in {t.tick: t for t in ticks}.values())
    assert len({t.tick for t in ticks}) == 7 * 96

    deadline = time.monotonic() + 120
    while len(stored := all_events(api)) < total:
        assert time.monotonic() < deadline, f"{len(stored)} of {total} events stored"
        time.sleep(1)
    assert len({e["event_id"] for e in stored}) == total
    assert {e["source"] for e in stored} >= {"npc", "scheduled", "director"}
    assert max(e["tick"] for e in stored) >= 6 * 96, "events on the last day"

    # the catalog's rules hold in what was stored (director, hours, capacity)
    log = sorted({t.tick: t for t in ticks}.values(), key=lambda t: t.tick)
    counts = check_catalog_rules(load_world("town"), stored, log)
    print("\nweek-1 (seed 1, 7 days):")
    for name, value in counts.items():
        print(f"  {name}: {value}")
    if not counts["turned away (NPC-hours, closed / full)"][1]:
        print("  the town never fills a place: admission only turns NPCs away from closed ones")

    catalog = load_catalog(resolve_world("town"))
    start_rel = {(r.source, r.target): r.affinity for r in catalog.relationships}
    start_goal = {(g.npc, g.kind): g.progress for g in catalog.goals}
    changed_rel = progressed = 0
    for npc_id in catalog.npcs:
        state = get(f"{api}/npcs/{npc_id}?run_id={RUN}")["state"]
        assert state["tick"] is not None, f"{npc_id} has no stored snapshot"
        for rel in state["relationships"]:
            if rel["affinity"] != start_rel.get((npc_id, rel["other_id"]), 0.0):
                changed_rel += 1
        for goal in state["goals"]:
            if goal["progress"] > start_goal.get((npc_id, goal["kind"]), 0.0):
                progressed += 1
    assert changed_rel >= 20, f"only {changed_rel} relationships changed in a week"
    assert progressed >= 3, f"only {progressed} goals progressed in a week"

    # a story promoted to news later: stored (re-scored) impact crosses the news threshold,
    # the impact the shard first gave it did not, and a news render request exists for it
    first = {e.event_id: e for e in await read_settled(settings, EVENTS, settle_s=2)}
    news = {
        r.event.event_id
        for r in await read_settled(settings, RENDER_REQUESTS, settle_s=2)
        if r.channel == "news"
    }
    promoted = []
    for e in stored:
        rule = catalog.event_types[e["type"]].channels.get("news")
        if rule is None or e["event_id"] not in news:
            continue
        before = first[e["event_id"]].impact.total
        if before < rule.threshold <= e["impact"]["total"]:
            promoted.append(e["event_id"])
    assert promoted, "no cascade promoted a story to news"

    # the week replays from its log, identical tick by tick, its daily snapshots verified
    report = replay(load_world("town"), await read_run(settings, RUN))
    print(
        f"  replay: {report.ticks} ticks in {report.seconds:.2f}s "
        f"(the run's ticks took {report.original_seconds:.2f}s)"
    )
    assert report.identical, report.first_difference
    assert report.ticks == 7 * 96
    assert list(report.snapshots.values()) == ["verified"] * 7
