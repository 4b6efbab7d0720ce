"""A week of the starter world on the real broker, stored in the real ClickHouse engine:
relationships change, goals progress, director events happen, and a story that spread
was promoted to news after the fact. Checked by querying the stored results (the API)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from catalog import load_catalog
from sim.world import resolve_world
from tests.fixtures.kafka import free_port
from tests.fixtures.processes import Procs, read_settled, read_until, start_run, wait_http
from topics import EVENTS, RENDER_REQUESTS, TICKS
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
