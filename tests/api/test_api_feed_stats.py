"""The feed loop's exposures in storage and in /stats (issue 18)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from storage import ClickHouseWriter
from topics.models import DecisionResolved, PostSeen


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


def decided(i: int, **kw: Any) -> DecisionResolved:
    fields: dict[str, Any] = {
        "decision_id": f"dc_{i:016x}",
        "request_id": f"dr_{i:016x}",
        "run_id": "run1",
        "tick": 24,
        "asked_tick": 22,
        "sim_minute": 24 * 15,
        "npc_id": f"npc_f{i}",
        "prompt_hash": "ph",
        "status": "ok",
        "outcome": "accepted",
        "action": "react",
        "event_type": "post_liked",
        "target": "npc_z",
        "event_id": f"ev_llm{i}",
        "post_id": "post_a",
        "reaction": "like",
    }
    fields.update(kw)
    return DecisionResolved(**fields)


def test_reactions_llm_decisions_chose_are_counted_with_the_rules(
    api: TestClient, writer: ClickHouseWriter
) -> None:
    """A focal reader's exposure carries no reaction: its LLM decision, accepted, names
    the post and the reaction; a rejected one (the rules chose) and other decisions do not
    count, and a decision redelivered counts once."""
    writer.write_messages(
        [
            seen(0, post_id="post_a", tick=22),
            seen(1, post_id="post_a", tick=22),
            seen(2, post_id="post_a", tick=22, reaction="like", reaction_event_id="ev_1"),
            decided(0),
            decided(1, reaction="feud", event_type="feud_online"),
            decided(2, outcome="rejected", reason_code="post_gone", post_id=None, reaction=None),
            decided(3, action="chat", event_type="chat", post_id=None, reaction=None),
            decided(4, run_id="run2", post_id="post_b"),
        ]
    )
    writer.write_messages([decided(0)])  # redelivered: counted once
    body = api.get("/posts/post_a/reach").json()
    assert (body["seen"], body["likes"], body["replies"], body["feuds"]) == (3, 2, 1, 1)
    assert [(t["tick"], t["seen"], t["likes"]) for t in body["by_tick"]] == [
        (22, 3, 1),
        (24, 0, 1),
    ]
    feed = api.get("/stats", params={"run_id": "run1"}).json()["feed"]
    assert feed == {"exposures": 3, "reactions": 3, "reactions_by_kind": {"feud": 1, "like": 2}}
    everything = api.get("/stats").json()["feed"]
    assert everything["reactions_by_kind"] == {"feud": 1, "like": 3}
