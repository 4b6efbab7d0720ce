"""GET /feed and /posts: filters, cursor pagination, moderation."""

from __future__ import annotations

import base64

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from storage import TABLES, ClickHouseWriter, row_for
from topics.models import PostPublished


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["post_id"] for p in response.json()["items"]]


def test_feed_newest_first_and_filters(
    api: TestClient, writer: ClickHouseWriter, event_factory, post_factory
) -> None:
    writer.write_messages(
        [event_factory(i, place="park" if i % 2 else "cafe") for i in range(6)]
        + [
            post_factory(
                i, channel="news" if i == 5 else "feed", author="npc_b" if i == 1 else "npc_a"
            )
            for i in range(6)
        ]
        + [post_factory(9, run_id="run2", event_id="ev_other")]
    )
    assert _ids(api.get("/feed", params={"run_id": "run1"})) == [
        f"po_{i:016x}" for i in (5, 4, 3, 2, 1, 0)
    ]
    assert _ids(api.get("/feed", params={"run_id": "run1", "channel": "news"})) == [f"po_{5:016x}"]
    assert _ids(api.get("/feed", params={"author": "npc_b"})) == [f"po_{1:016x}"]
    assert _ids(api.get("/feed", params={"run_id": "run1", "place": "park"})) == [
        f"po_{i:016x}" for i in (5, 3, 1)
    ]
    assert _ids(api.get("/feed", params={"run_id": "run1", "tick_from": 2, "tick_to": 3})) == [
        f"po_{i:016x}" for i in (3, 2)
    ]
    assert _ids(api.get("/feed", params={"run_id": "run2"})) == [f"po_{9:016x}"]
    first = api.get("/feed", params={"run_id": "run1", "limit": 1}).json()["items"][0]
    assert first["body"] == "post 5" and first["channel"] == "news"


def test_feed_cursor_pages_are_stable_while_posts_arrive(
    api: TestClient, writer: ClickHouseWriter, post_factory
) -> None:
    writer.write_messages([post_factory(i) for i in range(10)])
    seen: list[str] = []
    page = api.get("/feed", params={"limit": 4}).json()
    seen += [p["post_id"] for p in page["items"]]
    next_tick = 100
    while page["next_cursor"]:
        # new posts arrive between page reads; they must not shift what follows
        writer.write_messages([post_factory(next_tick)])
        next_tick += 1
        page = api.get("/feed", params={"limit": 4, "cursor": page["next_cursor"]}).json()
        seen += [p["post_id"] for p in page["items"]]
    assert seen == [f"po_{i:016x}" for i in range(9, -1, -1)]
    # the new posts are at the top of a fresh read
    assert next_tick == 102  # two more pages were read, two posts arrived
    assert _ids(api.get("/feed", params={"limit": 3})) == [f"po_{i:016x}" for i in (101, 100, 9)]


def test_posts_in_log_order_with_cursor(
    api: TestClient, writer: ClickHouseWriter, post_factory
) -> None:
    writer.write_messages([post_factory(i) for i in range(5)])
    page = api.get("/posts", params={"run_id": "run1", "limit": 3}).json()
    assert [p["tick"] for p in page["items"]] == [0, 1, 2]
    page = api.get(
        "/posts", params={"run_id": "run1", "limit": 3, "cursor": page["next_cursor"]}
    ).json()
    assert [p["tick"] for p in page["items"]] == [3, 4]
    assert page["next_cursor"] is None
    assert _ids(api.get("/posts", params={"event_id": f"ev_{3:016x}"})) == [f"po_{3:016x}"]


def test_blocked_posts_are_hidden(api: TestClient, writer: ClickHouseWriter, post_factory) -> None:
    writer.write_messages(
        [
            post_factory(1),
            post_factory(2, moderation="blocked", moderation_reason="slur"),
            post_factory(3, moderation="flagged", moderation_reason="borderline"),
        ]
    )
    assert _ids(api.get("/feed")) == [f"po_{3:016x}", f"po_{1:016x}"]
    assert _ids(api.get("/posts")) == [f"po_{1:016x}", f"po_{3:016x}"]
    assert api.get(f"/posts/po_{2:016x}").status_code == 404
    flagged = api.get(f"/posts/po_{3:016x}")
    assert flagged.status_code == 200
    assert flagged.json()["moderation"] == "flagged"


def test_post_by_id_and_duplicates_stored_once(
    api: TestClient, writer: ClickHouseWriter, post_factory
) -> None:
    post = post_factory(7, title=None, model="smollm2")
    writer.write_messages([post])
    writer.write_messages([post, post_factory(8)])  # redelivered in another batch
    response = api.get(f"/posts/{post.post_id}")
    assert response.status_code == 200
    assert response.json() == post.model_dump(exclude={"kind"})
    assert _ids(api.get("/feed")) == [f"po_{8:016x}", post.post_id]
    assert api.get("/posts/po_unknown").status_code == 404
    assert api.get("/posts/po_unknown").json()["detail"] == "post 'po_unknown' not found"


def test_invalid_params(api: TestClient) -> None:
    assert api.get("/feed", params={"channel": "tv"}).status_code == 422
    assert api.get("/feed", params={"limit": 0}).status_code == 422
    assert api.get("/feed", params={"limit": 501}).status_code == 422
    assert api.get("/feed", params={"tick_from": -1}).status_code == 422
    response = api.get("/feed", params={"cursor": "garbage!"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]
    response = api.get("/feed", params={"tick_from": 5, "tick_to": 2})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "tick_from must not be greater than tick_to"
    # a cursor of another listing is refused
    assert api.get("/posts", params={"cursor": "WyJmZWVkIiwzLCJwMyJd"}).status_code == 422


def _walk(api: TestClient, limit: int, **params: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get("/feed", params={**params, "limit": limit, "cursor": cursor}).json()
        seen += [p["post_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def _insert_copies(client: Client, database: str, posts: list[PostPublished]) -> None:
    """Insert posts as raw rows, past the writer's stored-once check: copies the reads must
    still collapse (rows stored before the writer checked, or by two sinks at once)."""
    columns = TABLES["posts"].columns
    rows = [row_for(post)[1] for post in posts]
    client.insert(
        f"{database}.posts", [[r[c] for c in columns] for r in rows], column_names=list(columns)
    )


def test_feed_is_exact_when_posts_arrive_twice_in_different_batches(
    api: TestClient, ch_client: Client, database: str, writer: ClickHouseWriter, post_factory
) -> None:
    """The feed reads without FINAL; a post stored twice (not merged yet) still shows once."""
    writer.write_messages([post_factory(i) for i in range(12)])
    # copies in later blocks stay until a merge
    _insert_copies(ch_client, database, [post_factory(i) for i in (2, 3, 7, 11)])
    _insert_copies(ch_client, database, [post_factory(i) for i in (3, 4, 5)])
    # a later copy that is blocked hides the post, as under FINAL (the last insert wins)
    _insert_copies(
        ch_client, database, [post_factory(9, moderation="blocked", moderation_reason="slur")]
    )
    expected = [f"po_{i:016x}" for i in (11, 10, 8, 7, 6, 5, 4, 3, 2, 1, 0)]
    for limit in range(1, 8):  # page ends fall between the copies of a post, or not
        assert _walk(api, limit) == expected, limit
        assert _walk(api, limit, run_id="run1") == expected, limit
        assert _walk(api, limit, author="npc_a", run_id="run1") == expected, limit
        assert _walk(api, limit, channel="feed") == expected, limit


def test_feed_skips_blocked_posts_beyond_the_over_fetch(
    api: TestClient, writer: ClickHouseWriter, post_factory
) -> None:
    """A run of blocked posts longer than the extra rows read makes the read widen."""
    writer.write_messages(
        [post_factory(i, moderation="blocked", moderation_reason="x") for i in range(3, 40)]
        + [post_factory(i) for i in (0, 1, 2, 40)]
    )
    page = api.get("/feed", params={"limit": 2}).json()
    assert [p["post_id"] for p in page["items"]] == [f"po_{40:016x}", f"po_{2:016x}"]
    assert _walk(api, 2) == [f"po_{i:016x}" for i in (40, 2, 1, 0)]


def test_feed_pages_are_cached_for_a_second(
    api: TestClient, writer: ClickHouseWriter, post_factory
) -> None:
    """A repeated page comes from the cache (X-Cache: hit) until it is a second old."""
    cache = api.app.state.feed_cache  # type: ignore[attr-defined]  # TestClient.app is the FastAPI app
    now = [cache.clock()]
    cache.clock = lambda: now[0]
    writer.write_messages([post_factory(1)])
    first = api.get("/feed", params={"run_id": "run1"})
    assert first.headers["X-Cache"] == "miss"
    writer.write_messages([post_factory(2)])
    again = api.get("/feed", params={"run_id": "run1"})
    assert again.headers["X-Cache"] == "hit"
    assert again.json() == first.json()  # stale by design, at most a second
    now[0] += 0.999
    assert api.get("/feed", params={"run_id": "run1"}).headers["X-Cache"] == "hit"
    now[0] += 0.002
    fresh = api.get("/feed", params={"run_id": "run1"})
    assert fresh.headers["X-Cache"] == "miss"
    assert _ids(fresh) == [f"po_{2:016x}", f"po_{1:016x}"]
    # other filters, limits and cursors are other pages
    assert api.get("/feed", params={"run_id": "run1", "limit": 1}).headers["X-Cache"] == "miss"
    # errors are not cached
    assert api.get("/feed", params={"cursor": "garbage!"}).status_code == 422
    assert api.get("/feed", params={"cursor": "garbage!"}).status_code == 422


def _crafted(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/feed", "/posts", "/events"])
@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([None, True, "x"], "tick"),
        ([None, 1.5, "x"], "tick"),
        ([None, "3", "x"], "tick"),
        ([None, -1, "x"], "tick"),
        ([None, 2**32, "x"], "tick"),
        ([None, 3, 5], "key"),
        ([None, 3, None], "key"),
        ([None, 3], "cursor"),
        ([None, 3, "x", "y"], "cursor"),
        ("abc", "cursor"),
        ({"a": 1, "b": 2, "c": 3}, "cursor"),
    ],
)
def test_crafted_cursor_is_a_422_naming_the_problem(
    api: TestClient, path: str, payload: object, problem: str
) -> None:
    kind = path.strip("/")
    if isinstance(payload, list) and payload and payload[0] is None:
        payload = [kind, *payload[1:]]
    response = api.get(path, params={"cursor": _crafted(payload)})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", "cursor"]
    assert "cursor" in detail["msg"] and problem in detail["msg"]
