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
