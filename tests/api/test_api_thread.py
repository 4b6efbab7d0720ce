"""GET /posts/{id}/thread: the root, reply chains and repost tree, bounded (issue 18)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from storage import ClickHouseWriter
from tests.api.test_api_feed_stats import seen
from topics.models import PostPublished

MakePost = Callable[..., PostPublished]


@pytest.fixture
def thread(writer: ClickHouseWriter, post_factory: MakePost) -> dict[str, PostPublished]:
    """root <- r1 <- r11 <- r111 ; root <- r2 ; root <- rp1 (repost) <- rp1r (reply);
    an unrelated post; a blocked reply under r2."""
    p = post_factory
    posts = {
        "root": p(1, post_id="root"),
        "r1": p(2, post_id="r1", author="npc_b", reply_to="root"),
        "r2": p(3, post_id="r2", author="npc_c", reply_to="root"),
        "rp1": p(3, post_id="rp1", author="npc_d", repost_of="root"),
        "r11": p(4, post_id="r11", reply_to="r1"),
        "rp1r": p(5, post_id="rp1r", author="npc_e", reply_to="rp1"),
        "r111": p(6, post_id="r111", author="npc_b", reply_to="r11"),
        "other": p(7, post_id="other"),
        "hidden": p(8, post_id="hidden", reply_to="r2", moderation="blocked"),
    }
    writer.write_messages(list(posts.values()))
    writer.write_messages([posts["r1"], posts["rp1"]])  # redelivered: stored once
    writer.write_messages(
        [
            seen(0, post_id="root"),
            seen(1, post_id="root", reaction="like", reaction_event_id="ev_l1"),
            seen(2, post_id="root", reaction="repost", reaction_event_id="ev_rp"),
            seen(3, post_id="root", reaction="reply", reaction_event_id="ev_r"),
            seen(4, post_id="r1", reaction="feud", reaction_event_id="ev_f"),
        ]
    )
    return posts


def by_id(body: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {n["post"]["post_id"]: n for n in body["nodes"]}


def test_a_thread_from_any_post_is_the_whole_tree_under_its_root(
    api: TestClient, thread: dict[str, PostPublished]
) -> None:
    for asked in ("root", "r11", "rp1r"):
        body = api.get(f"/posts/{asked}/thread").json()
        assert body["root_id"] == "root" and body["post_id"] == asked and not body["truncated"]
        nodes = by_id(body)
        assert set(nodes) == {"root", "r1", "r2", "rp1", "r11", "rp1r", "r111"}
        assert [n["post"]["post_id"] for n in body["nodes"]] == [
            "root",
            "r1",
            "r2",
            "rp1",
            "r11",
            "rp1r",
            "r111",
        ]  # breadth first, oldest first within a level
    assert api.get("/posts/r111/thread").json()["path"] == ["root", "r1", "r11", "r111"]
    nodes = by_id(api.get("/posts/root/thread").json())
    assert (nodes["root"]["relation"], nodes["root"]["parent_id"], nodes["root"]["depth"]) == (
        "root",
        None,
        0,
    )
    assert (nodes["rp1"]["relation"], nodes["rp1"]["parent_id"]) == ("repost", "root")
    assert (nodes["rp1r"]["relation"], nodes["rp1r"]["parent_id"]) == ("reply", "rp1")
    assert nodes["r111"]["depth"] == 3
    assert nodes["rp1"]["post"]["repost_of"] == "root"
    assert nodes["r1"]["post"]["reply_to"] == "root"
    # counted per post, from the exposures
    root = nodes["root"]
    assert (root["seen"], root["likes"], root["reposts"], root["replies"]) == (4, 1, 1, 1)
    assert (nodes["r1"]["seen"], nodes["r1"]["replies"]) == (1, 1)
    assert nodes["r2"]["seen"] == 0


def test_a_post_that_answers_nothing_is_a_thread_of_one(
    api: TestClient, thread: dict[str, PostPublished]
) -> None:
    body = api.get("/posts/other/thread").json()
    assert body["root_id"] == "other" and body["path"] == ["other"]
    assert [n["post"]["post_id"] for n in body["nodes"]] == ["other"]
    assert body["truncated"] is False


def test_depth_and_node_limits_bound_the_thread(
    api: TestClient, thread: dict[str, PostPublished]
) -> None:
    body = api.get("/posts/root/thread", params={"depth": 1}).json()
    assert set(by_id(body)) == {"root", "r1", "r2", "rp1"} and body["truncated"]
    body = api.get("/posts/root/thread", params={"limit": 6}).json()  # full, r111 below
    assert len(body["nodes"]) == 6 and "r111" not in by_id(body) and body["truncated"]
    body = api.get("/posts/root/thread", params={"limit": 7}).json()  # exactly all
    assert len(body["nodes"]) == 7 and not body["truncated"]
    body = api.get("/posts/root/thread", params={"limit": 3}).json()
    assert [n["post"]["post_id"] for n in body["nodes"]] == ["root", "r1", "r2"]
    assert body["truncated"]
    # the path to the asked post is always shown, and the root is as far up as the depth
    body = api.get("/posts/r111/thread", params={"depth": 2, "limit": 1}).json()
    assert body["path"] == ["r1", "r11", "r111"] and body["root_id"] == "r1"
    assert set(by_id(body)) == {"r1", "r11", "r111"} and body["truncated"]
    body = api.get("/posts/root/thread", params={"depth": 3}).json()
    assert len(body["nodes"]) == 7 and not body["truncated"]


def test_blocked_posts_are_not_in_a_thread(
    api: TestClient, thread: dict[str, PostPublished]
) -> None:
    assert "hidden" not in by_id(api.get("/posts/r2/thread").json())
    assert api.get("/posts/hidden/thread").status_code == 404


def test_an_unknown_post_is_404_and_bad_bounds_are_422(
    api: TestClient, thread: dict[str, PostPublished]
) -> None:
    missing = api.get("/posts/nope/thread")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    for params in ({"depth": 0}, {"depth": 33}, {"limit": 0}, {"limit": 1001}, {"depth": "x"}):
        bad = api.get("/posts/root/thread", params=params)
        assert bad.status_code == 422, params
        assert bad.json()["detail"][0]["loc"][-1] in params
    assert api.get("/posts/" + "x" * 65 + "/thread").status_code == 422


def test_a_reply_whose_parent_is_not_stored_is_its_own_root(
    api: TestClient, writer: ClickHouseWriter, post_factory: MakePost
) -> None:
    writer.write_messages([post_factory(1, post_id="orphan", reply_to="gone")])
    body = api.get("/posts/orphan/thread").json()
    assert body["root_id"] == "orphan"
    node = body["nodes"][0]
    assert (node["relation"], node["parent_id"]) == ("reply", "gone")


def test_posts_in_the_feed_name_what_they_answer(
    api: TestClient, thread: dict[str, PostPublished]
) -> None:
    items = {p["post_id"]: p for p in api.get("/posts", params={"run_id": "run1"}).json()["items"]}
    assert items["r1"]["reply_to"] == "root" and items["rp1"]["repost_of"] == "root"
    assert items["root"]["reply_to"] is None and items["root"]["repost_of"] is None
    assert api.get("/posts/r1").json()["reply_to"] == "root"
    feed = api.get("/feed", params={"run_id": "run1", "channel": "feed"}).json()["items"]
    assert {p["post_id"]: p["repost_of"] for p in feed}["rp1"] == "root"


def test_a_storys_spread_is_the_share_of_the_town_that_read_about_it_by_tick(
    api: TestClient,
    writer: ClickHouseWriter,
    post_factory: MakePost,
    tick_factory: Callable[..., object],
) -> None:
    story = post_factory(1, post_id="story", event_id="ev_story")
    writer.write_messages([story])
    before = api.get("/posts/story/spread").json()
    assert (before["readers"], before["town"], before["share"], before["by_tick"]) == (
        0,
        None,
        None,
        [],
    )
    writer.write_messages([tick_factory(t, npcs=10) for t in range(18, 24)])
    about = {"event_id": "ev_story"}
    writer.write_messages(
        [
            seen(0, npc_id="a", tick=20, post_id="story", **about),
            seen(1, npc_id="a", tick=21, post_id="news_of_it", **about),  # read again: once
            seen(2, npc_id="b", tick=21, post_id="news_of_it", **about),
            seen(3, npc_id="c", tick=21, post_id="news_of_it", **about),
            seen(4, npc_id="d", tick=23, post_id="story", **about),
            seen(5, npc_id="e", tick=22, post_id="other", event_id="ev_other"),  # another story
            seen(6, npc_id="f", tick=22, post_id="story", run_id="run2", **about),  # another run
        ]
    )
    body = api.get("/posts/story/spread").json()
    assert (body["event_id"], body["run_id"], body["town"]) == ("ev_story", "run1", 10)
    assert [(t["tick"], t["new_readers"], t["readers"], t["share"]) for t in body["by_tick"]] == [
        (20, 1, 1, 0.1),
        (21, 2, 3, 0.3),
        (23, 1, 4, 0.4),
    ]
    assert (body["readers"], body["share"]) == (4, 0.4)
    assert api.get("/posts/nope/spread").status_code == 404
    assert api.get("/posts/" + "x" * 65 + "/spread").status_code == 422
