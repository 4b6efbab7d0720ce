"""The feed loop's exposures in storage and in /stats (issue 18)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from storage import ClickHouseWriter
from topics.models import PostSeen


def seen(i: int, **kw: Any) -> PostSeen:
    fields: dict[str, Any] = {
        "exposure_id": f"ex_{i:016x}",
        "run_id": "run1",
        "tick": 20 + i // 3,
        "sim_minute": (20 + i // 3) * 15,
        "npc_id": f"npc_{i % 3}",
        "post_key": f"fp_{i % 2:016x}",
        "post_id": f"post_{i % 2:016x}",
        "event_id": f"ev_{i % 2:016x}",
        "post_tick": 19,
        "author": "npc_z",
        "channel": "feed",
        "recommender": "affinity",
        "rank": i % 3,
    }
    fields.update(kw)
    return PostSeen(**fields)


def test_stats_count_exposures_and_reactions_once(
    api: TestClient, writer: ClickHouseWriter
) -> None:
    messages = [seen(i) for i in range(6)]
    messages += [seen(6, reaction="like", reaction_event_id="ev_like")]
    messages += [seen(7, reaction="like", reaction_event_id="ev_like2")]
    messages += [seen(8, reaction="feud", reaction_event_id="ev_feud")]
    messages += [seen(9, run_id="run2", reaction="repost", reaction_event_id="ev_rp")]
    writer.write_messages(messages)
    writer.write_messages(messages[:3])  # redelivered: stored once
    feed = api.get("/stats", params={"run_id": "run1"}).json()["feed"]
    assert feed == {"exposures": 9, "reactions": 3, "reactions_by_kind": {"feud": 1, "like": 2}}
    everything = api.get("/stats").json()
    assert everything["feed"]["exposures"] == 10
    assert everything["feed"]["reactions_by_kind"] == {"feud": 1, "like": 2, "repost": 1}
    assert everything["tables"]["exposures"] == 10


def test_a_posts_reach_by_tick(api: TestClient, writer: ClickHouseWriter) -> None:
    writer.write_messages(
        [
            seen(0, post_id="post_a", tick=20),
            seen(1, post_id="post_a", tick=20, reaction="like", reaction_event_id="ev_1"),
            seen(2, post_id="post_a", tick=21, reaction="repost", reaction_event_id="ev_2"),
            seen(3, post_id="post_a", tick=21, reaction="feud", reaction_event_id="ev_3"),
            seen(4, post_id="post_a", tick=22, reaction="reply", reaction_event_id="ev_4"),
            seen(5, post_id="post_b", tick=22, reaction="like", reaction_event_id="ev_5"),
        ]
    )
    body = api.get("/posts/post_a/reach").json()
    assert (body["seen"], body["likes"], body["reposts"], body["replies"], body["feuds"]) == (
        5,
        1,
        1,
        2,
        1,
    )
    assert [(t["tick"], t["seen"]) for t in body["by_tick"]] == [(20, 2), (21, 2), (22, 1)]
    assert body["by_tick"][1] == {
        "tick": 21,
        "seen": 2,
        "likes": 0,
        "reposts": 1,
        "replies": 1,
        "feuds": 1,
    }
    nobody = api.get("/posts/post_z/reach").json()
    assert nobody["seen"] == 0 and nobody["by_tick"] == []
