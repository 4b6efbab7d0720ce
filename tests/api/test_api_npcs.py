"""GET /npcs, /npcs/{id} (catalog profile + latest snapshot), /npcs/{id}/timeline, /stats."""

from __future__ import annotations

from fastapi.testclient import TestClient

from storage import ClickHouseWriter
from topics.models import LLMCalled, NpcSnapshotted, RunCommanded

# the starter town: the mayor and someone she has a catalog relationship with
MAYOR = "eleanor_hart"


def _start(writer: ClickHouseWriter, run_id: str = "run1") -> None:
    writer.write_messages([RunCommanded(command="start", run_id=run_id, seed=1, world="town")])


def test_npcs_list_and_filters(api: TestClient, writer: ClickHouseWriter) -> None:
    _start(writer)
    page = api.get("/npcs").json()
    assert page["total"] >= 20 and len(page["items"]) == page["total"]
    assert any(n["npc_id"] == MAYOR and n["handle"] == "@mayor_hart" for n in page["items"])
    mayors = api.get("/npcs", params={"occupation": "mayor"}).json()
    assert [n["npc_id"] for n in mayors["items"]] == [MAYOR]
    assert api.get("/npcs", params={"q": "hart"}).json()["total"] >= 1
    news = api.get("/npcs", params={"channel": "news"}).json()["items"]
    assert news and all("news" in n["channels"] for n in news)
    paged = api.get("/npcs", params={"limit": 2, "offset": 1}).json()
    assert len(paged["items"]) == 2 and paged["offset"] == 1
    assert api.get("/npcs", params={"channel": "radio"}).status_code == 422
    assert api.get("/npcs", params={"limit": 0}).status_code == 422
    assert api.get("/npcs", params={"run_id": "nope"}).status_code == 404


def test_npc_profile_and_state_from_latest_snapshot(
    api: TestClient, writer: ClickHouseWriter
) -> None:
    _start(writer)
    before = api.get(f"/npcs/{MAYOR}", params={"run_id": "run1"}).json()
    assert before["state"]["tick"] is None  # no snapshot yet: the catalog's start values
    assert before["state"]["relationships"] and before["traits"]["openness"] >= 0
    other = before["state"]["relationships"][0]["other_id"]
    for tick, affinity in ((4, 10.0), (8, 42.0)):
        writer.write_messages(
            [
                NpcSnapshotted(
                    run_id="run1",
                    tick=tick,
                    npc_id=MAYOR,
                    place="town_hall",
                    reputation=61.5,
                    relationships={other: [affinity, 70.0, 20.0]},
                    memories=[[tick, f"ev_{tick}", f"memory at {tick}", 0.7]],
                    goals={"reputation": 0.4},
                    state_hash=f"{tick:016x}",
                )
            ]
        )
    npc = api.get(f"/npcs/{MAYOR}").json()  # newest run by default
    state = npc["state"]
    assert state["run_id"] == "run1" and state["tick"] == 8 and state["place"] == "town_hall"
    assert state["reputation"] == 61.5
    assert state["relationships"][0]["other_id"] == other
    assert state["relationships"][0]["affinity"] == 42.0
    assert state["relationships"][0]["handle"].startswith("@")
    assert state["memories"] == [
        {"tick": 8, "event_id": "ev_8", "text": "memory at 8", "salience": 0.7}
    ]
    assert any(g["kind"] == "reputation" and g["progress"] == 0.4 for g in state["goals"])
    assert api.get("/npcs/nobody").status_code == 404
    assert api.get(f"/npcs/{MAYOR}", params={"run_id": "nope"}).status_code == 404


def test_npc_timeline_events_by_role_and_posts(
    api: TestClient, writer: ClickHouseWriter, event_factory, post_factory
) -> None:
    _start(writer)
    writer.write_messages(
        [
            event_factory(1, actor=MAYOR, target="x", witnesses=[]),
            event_factory(2, actor="x", target=MAYOR, witnesses=[]),
            event_factory(3, actor="x", target="y", witnesses=[MAYOR]),
            event_factory(4, actor="x", target="y", witnesses=[]),
            post_factory(3, author=MAYOR),
            post_factory(5, author="x"),
        ]
    )
    items = api.get(f"/npcs/{MAYOR}/timeline", params={"run_id": "run1"}).json()["items"]
    assert [(i["kind"], i["tick"], i["role"]) for i in items] == [
        ("event", 3, "witness"),
        ("post", 3, "author"),
        ("event", 2, "target"),
        ("event", 1, "actor"),
    ]
    assert items[1]["post"]["body"] == "post 3"
    limited = api.get(f"/npcs/{MAYOR}/timeline", params={"tick_to": 2}).json()["items"]
    assert [i["tick"] for i in limited] == [2, 1]
    bad = api.get(f"/npcs/{MAYOR}/timeline", params={"tick_from": 5, "tick_to": 1})
    assert bad.status_code == 422 and "tick_from" in bad.json()["detail"][0]["msg"]
    assert api.get("/npcs/nobody/timeline").status_code == 404


def test_stats_counts_rates_and_llm_tokens(
    api: TestClient, writer: ClickHouseWriter, post_factory, tick_factory
) -> None:
    writer.write_messages(
        [tick_factory(i, events=3) for i in range(8)]
        + [post_factory(i, channel="news" if i else "feed") for i in range(4)]
        + [
            LLMCalled(
                call_id=f"ca_{i}",
                run_id="run1",
                request_id=f"rq_{i}",
                attempt=1,
                prompt_hash="h",
                model="smollm2",
                tokens_in=200,
                tokens_out=30,
                latency_ms=100.0,
                cache_hit=i == 0,
                outcome="cached" if i == 0 else "valid",
                at_ms=1_700_000_000_000,
            )
            for i in range(3)
        ]
    )
    stats = api.get("/stats", params={"run_id": "run1"}).json()
    assert stats["tables"]["posts"] == 4 and stats["tables"]["llm_calls"] == 3
    assert stats["llm_calls"]["tokens_in"] == 600 and stats["llm_calls"]["cache_hits"] == 1
    assert stats["llm_calls"]["outcomes"] == {"cached": 1, "valid": 2}
    rates = stats["rates"]
    assert rates["ticks"] == 8 and rates["sim_hours"] == 2.0
    assert rates["events_per_tick"] == 3.0 and rates["posts_per_sim_hour"] == 2.0
    assert rates["tokens_per_llm_post"] == 20.0
    empty = api.get("/stats", params={"run_id": "other"}).json()
    assert empty["rates"]["events_per_tick"] is None
