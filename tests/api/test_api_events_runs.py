"""GET /events, /runs, /runs/{id}, /runs/{id}/ticks and /stats."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from storage import ClickHouseWriter
from topics.models import Effect, RunCommanded


def test_events_filters_and_cursor(
    api: TestClient, writer: ClickHouseWriter, event_factory
) -> None:
    writer.write_messages(
        [
            event_factory(
                i,
                type="argued" if i % 3 == 0 else "greeted",
                effects=[
                    Effect(event_id=f"ev_{i:016x}", npc_id="npc_b", field="affinity", delta=-2.0)
                ],
            )
            for i in range(7)
        ]
        + [event_factory(20, actor="npc_x", target=None, witnesses=["npc_y"], impact=None)]
    )
    body = api.get("/events", params={"run_id": "run1", "type": "argued"}).json()
    assert [e["tick"] for e in body["items"]] == [0, 3, 6]
    event = body["items"][0]
    assert event["effects"] == [
        {
            "event_id": f"ev_{0:016x}",
            "npc_id": "npc_b",
            "field": "affinity",
            "other": None,
            "delta": -2.0,
            "text": None,
        }
    ]
    assert event["impact"]["total"] == 0.4
    assert [e["tick"] for e in api.get("/events", params={"npc": "npc_y"}).json()["items"]] == [20]
    witness = api.get("/events", params={"npc": "npc_y"}).json()["items"][0]
    assert witness["impact"] is None and witness["target"] is None
    ticks = [
        e["tick"] for e in api.get("/events", params={"tick_from": 2, "tick_to": 4}).json()["items"]
    ]
    assert ticks == [2, 3, 4]
    seen: list[int] = []
    params: dict[str, object] = {"limit": 3}
    while True:
        page = api.get("/events", params=params).json()
        seen += [e["tick"] for e in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [0, 1, 2, 3, 4, 5, 6, 20]
    assert api.get(f"/events/ev_{3:016x}").json()["type"] == "argued"
    assert api.get("/events/ev_nope").status_code == 404
    assert api.get("/events", params={"limit": "many"}).status_code == 422


def test_runs_and_ticks(api: TestClient, writer: ClickHouseWriter, tick_factory) -> None:
    assert api.get("/runs").json() == []
    writer.write_messages(
        [RunCommanded(command="start", run_id="run1", seed=42, days=2)]
        + [tick_factory(i, last=i == 3) for i in range(4)]
        + [tick_factory(0, run_id="run_ticks_only")]
    )
    runs = {r["run_id"]: r for r in api.get("/runs").json()}
    assert set(runs) == {"run1", "run_ticks_only"}
    assert runs["run1"]["seed"] == 42 and runs["run1"]["days"] == 2.0
    assert runs["run1"]["ticks"] == 4 and runs["run1"]["last_tick"] == 3
    assert runs["run1"]["finished"] is True
    assert runs["run_ticks_only"]["seed"] is None and runs["run_ticks_only"]["finished"] is False
    assert api.get("/runs/run1").json()["last_sim_minute"] == 45
    assert api.get("/runs/nope").status_code == 404
    ticks = api.get("/runs/run1/ticks", params={"tick_from": 1}).json()
    assert [t["tick"] for t in ticks] == [1, 2, 3]
    assert ticks[0]["state_hash"] == f"{1:016x}"


def test_stats(
    api: TestClient, writer: ClickHouseWriter, event_factory, post_factory, tick_factory
) -> None:
    posts = [post_factory(i, channel="chat" if i < 2 else "feed") for i in range(5)]
    posts.append(
        post_factory(5, moderation="blocked", source="template", tokens_in=0, tokens_out=0)
    )
    writer.write_messages(posts + posts + [event_factory(0), tick_factory(0)])
    stats = api.get("/stats").json()
    assert stats["tables"]["posts"] == 6
    assert stats["tables"]["events"] == 1 and stats["tables"]["ticks"] == 1
    assert stats["posts_per_channel"] == {
        "chat": {"published": 2},
        "feed": {"blocked": 1, "published": 3},
    }
    assert stats["post_tokens"] == {
        "tokens_in": 500,
        "tokens_out": 100,
        "llm_posts": 5,
        "template_posts": 1,
    }
    assert stats["llm_calls"]["calls"] == 0
    assert api.get("/stats", params={"run_id": "nope"}).json()["tables"]["posts"] == 0


def test_run_times_carry_their_utc_offset(api: TestClient, writer: ClickHouseWriter) -> None:
    """RFC 3339 date-times (the spec's format) need an offset; found by schemathesis."""
    writer.write_messages([RunCommanded(command="start", run_id="tz1", world="town")])
    created = api.get("/runs/tz1").json()["created_at"]
    assert datetime.fromisoformat(created).utcoffset() == timedelta(0), created
