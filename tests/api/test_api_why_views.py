"""GET /posts/{id}/why and the UI's /views/* reads, over the stored story (real chDB)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from catalog import load_catalog
from cli.worlds import STARTER
from storage import ClickHouseWriter
from tests.fixtures.ui_story import RUN, START_TICK, Story, seed_story


@pytest.fixture
def story(writer: ClickHouseWriter) -> Story:
    return seed_story(writer)


def test_why_a_news_post(api: TestClient, story: Story) -> None:
    why = api.get("/posts/po_ui_0003/why").json()
    event = story.event("ev_ui_0001")
    assert why["post"]["post_id"] == "po_ui_0003"
    assert why["event"]["event_id"] == event.event_id
    assert why["event"]["impact"] == event.impact.model_dump()
    rule = load_catalog(STARTER).event_types["argument"].channels["news"]
    assert why["rule"] == {
        "channel": "news",
        "threshold": rule.threshold,
        "score": 0.92,
        "passed": True,
        "template": rule.template,
        "author_rule": "journalist",
        "rate_limit_per_day": 6,
    }
    assert why["author"]["handle"] == "@priya_edits"
    assert "journalist" in why["author"]["reason"]
    assert [e["event_id"] for e in why["rescored_by"]] == ["ev_ui_0007", "ev_ui_0008"]
    assert [a["outcome"] for a in why["attempts"]] == ["valid"]
    assert why["attempts"][0]["tokens_out"] == 90


def test_why_lists_every_attempt_in_order(api: TestClient, story: Story) -> None:
    why = api.get("/posts/po_ui_0001/why").json()
    stored = [c for c in story.calls if c.request_id == "rq_ui_0001"]
    assert [(a["attempt"], a["outcome"], a["error"], a["cache_hit"]) for a in why["attempts"]] == [
        (c.attempt, c.outcome, c.error, c.cache_hit) for c in stored
    ]
    assert "posting propensity" in why["author"]["reason"]  # feed: the propensity draw
    assert why["author"]["posting_propensity"] == 0.5

    cached = api.get("/posts/po_ui_0004/why").json()
    assert cached["attempts"][0]["cache_hit"] is True

    fallback = api.get("/posts/po_ui_0005/why").json()
    assert fallback["post"]["source"] == "template"
    assert [a["outcome"] for a in fallback["attempts"]] == ["error", "unavailable"]
    assert fallback["rule"]["author_rule"] == "target"  # compliment on chat: the target writes


def test_why_unknown_and_blocked_posts_are_404(api: TestClient, story: Story) -> None:
    assert api.get("/posts/po_nope/why").status_code == 404
    assert api.get("/posts/po_ui_0006/why").status_code == 404  # blocked


def test_hourly(api: TestClient, story: Story) -> None:
    body = api.get(f"/views/runs/{RUN}/hourly").json()
    hours = {h["hour"]: h for h in body["hours"]}
    assert sorted(hours) == list(range(8, 20))
    assert hours[9]["events"] == 1  # ticks 36..39: the argument
    assert hours[9]["posts_feed"] == 1 and hours[9]["posts_chat"] == 1
    assert hours[9]["posts_news"] == 1
    assert hours[9]["llm_calls"] == 4 and hours[9]["tokens_out"] == 30 + 30 + 30 + 90
    assert hours[8]["cache_hits"] == 1
    assert hours[13]["fallbacks"] == 1
    assert hours[12]["posts_feed"] == 0  # the blocked post is not counted
    assert all(h["ticks"] == 4 and h["ticks_per_s"] > 0 for h in body["hours"])
    assert body["dead_letters"] == {"render": 1}
    assert body["stats"]["llm_calls"]["calls"] == len(story.calls)
    assert api.get("/views/runs/nope/hourly").status_code == 404


def test_events_view_filters(api: TestClient, story: Story) -> None:
    url = f"/views/runs/{RUN}/events"
    everything = api.get(url).json()
    assert len(everything["items"]) == len(story.events)
    assert everything["types"] == sorted({e.type for e in story.events})
    assert [e["tick"] for e in everything["items"]] == sorted(e.tick for e in story.events)
    argument = next(e for e in everything["items"] if e["event_id"] == "ev_ui_0001")
    assert sorted(p["post_id"] for p in argument["posts"]) == [
        "po_ui_0001",
        "po_ui_0002",
        "po_ui_0003",
    ]
    assert argument["rescored_by"] == ["ev_ui_0007", "ev_ui_0008"]

    gossip = api.get(url, params={"type": "gossip"}).json()["items"]
    assert [e["event_id"] for e in gossip] == ["ev_ui_0003", "ev_ui_0008"]
    strong = api.get(url, params={"min_impact": 0.7}).json()["items"]
    assert {e["event_id"] for e in strong} == {"ev_ui_0001", "ev_ui_0005", "ev_ui_0007"}
    mayor = api.get(url, params={"npc": "eleanor_hart", "place": "town_hall"}).json()["items"]
    assert [e["event_id"] for e in mayor] == ["ev_ui_0001", "ev_ui_0007"]
    window = api.get(url, params={"tick_from": 44, "tick_to": 52}).json()["items"]
    assert [e["tick"] for e in window] == [44, 48, 52]


def test_town_graph_and_changes(api: TestClient, story: Story) -> None:
    town = api.get(f"/views/runs/{RUN}/town").json()
    assert town["ticks"] == sorted({s.tick for s in story.snapshots})
    last = town["ticks"][-1]
    assert town["tick"] == last
    nodes = {n["npc_id"]: n for n in town["nodes"]}
    assert len(nodes) == 30  # every NPC of the town, snapshotted or not
    last_mayor = [s for s in story.snapshots if s.npc_id == "eleanor_hart"][-1]
    assert nodes["eleanor_hart"]["reputation"] == last_mayor.reputation
    assert nodes["ben_castillo"]["reputation"] == 50 + 40 / 4  # never snapshotted: from fame
    edges = {(e["source"], e["target"]): e for e in town["edges"]}
    assert (
        edges[("eleanor_hart", "victor_crane")]["affinity"]
        == last_mayor.relationships["victor_crane"][0]
    )
    assert ("mia_hart", "eleanor_hart") in edges  # from the catalog
    assert sum(len(p["present"]) for p in town["places"]) > 0

    first = town["ticks"][0]
    changed = api.get(f"/views/runs/{RUN}/town", params={"tick": last, "from_tick": first}).json()
    edges = {(e["source"], e["target"]): e for e in changed["edges"]}
    fell_out = edges[("eleanor_hart", "victor_crane")]
    assert fell_out["affinity_before"] == -45.0 and fell_out["affinity"] < -80
    early = api.get(f"/views/runs/{RUN}/town", params={"tick": START_TICK}).json()
    edges = {(e["source"], e["target"]): e for e in early["edges"]}
    assert edges[("eleanor_hart", "victor_crane")]["affinity"] == -45.0  # the catalog's start


def test_npc_history(api: TestClient, story: Story) -> None:
    body = api.get(f"/views/runs/{RUN}/npcs/eleanor_hart/history").json()
    mine = [s for s in story.snapshots if s.npc_id == "eleanor_hart"]
    assert body["reputation"] == [[s.tick, s.reputation] for s in mine]
    assert body["goals"]["win_election"][-1] == [mine[-1].tick, mine[-1].goals["win_election"]]
    rels = {r["other_id"]: r for r in body["relationships"]}
    # closest first by |affinity| at the end: mia 90, victor -85
    assert [r["other_id"] for r in body["relationships"]] == ["mia_hart", "victor_crane"]
    assert rels["victor_crane"]["handle"] == load_catalog(STARTER).npcs["victor_crane"].handle
    assert rels["victor_crane"]["affinity"] == [
        [s.tick, s.relationships["victor_crane"][0]] for s in mine
    ]
    assert rels["mia_hart"]["trust"][0] == [mine[0].tick, 70.0]
