"""In-memory feed timelines (api/timeline.py): a page served from memory is the page
ClickHouse would give.

1. A property test against a reference model of the feed (the latest stored copy of a
   post wins, blocked posts hidden, newest first, keyset cursors): random posts stored
   in random batches (late ticks, re-stored copies, blocked copies), random pages of
   random filters, small windows; every page the timelines answer must equal the
   reference page byte for byte.
2. Through the API on the real chDB engine: pages from memory (``X-Cache: memory``) are
   byte-identical to pages read from ClickHouse, while posts keep arriving.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from api.timeline import Filter, Key, Timelines, page_body, post_body
from storage import ClickHouseWriter
from storage.queries import encode_cursor
from tests.fixtures.feed_rows import AUTHORS, CHANNELS, RUNS, feed_pages, post_row
from topics.models import PostPublished
from worldfeed.settings import Settings


class Reference:
    """The feed as ClickHouse answers it (``FINAL``: the last stored copy wins)."""

    def __init__(self) -> None:
        self.posts: dict[str, dict[str, Any]] = {}

    def store(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.posts[row["post_id"]] = row

    def matching(self, f: Filter) -> list[dict[str, Any]]:
        run, channel, author = f
        rows = [
            r
            for r in self.posts.values()
            if r["moderation"] != "blocked"
            and run in (None, r["run_id"])
            and channel in (None, r["channel"])
            and author in (None, r["author"])
        ]
        return sorted(rows, key=lambda r: (r["tick"], r["post_id"]), reverse=True)

    def page(self, f: Filter, limit: int, cursor: Key | None) -> tuple[list[dict], str | None]:
        rows = [r for r in self.matching(f) if cursor is None or (r["tick"], r["post_id"]) < cursor]
        items = rows[:limit]
        if len(rows) <= limit:
            return items, None
        return items, encode_cursor("feed", items[-1]["tick"], items[-1]["post_id"])


N_POSTS = 31
# what a post id determines (it derives from the request id: run, event, channel, author)
post_st = st.tuples(
    st.integers(0, 40),  # tick
    st.sampled_from(RUNS),
    st.sampled_from(CHANNELS),
    st.sampled_from(AUTHORS),
)
copy_st = st.tuples(
    st.integers(0, N_POSTS - 1),  # post number (a re-used number is a later copy of that post)
    st.sampled_from((False, False, False, True)),  # blocked: a quarter
    st.integers(0, 3),  # which copy (the body differs)
)
filters_st = st.tuples(
    st.sampled_from((None, *RUNS)),
    st.sampled_from((None, *CHANNELS)),
    st.sampled_from((None, *AUTHORS)),
)
op_st = st.one_of(
    st.tuples(st.just("store"), st.lists(copy_st, min_size=1, max_size=8)),
    st.tuples(
        st.just("page"),
        st.tuples(filters_st, st.integers(1, 6), st.integers(0, 4), st.integers(0, 45)),
    ),
)


@settings(
    max_examples=int(os.environ.get("WORLDFEED_TIMELINE_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    posts=st.lists(post_st, min_size=N_POSTS, max_size=N_POSTS),
    ops=st.lists(op_st, min_size=1, max_size=40),
    capacity=st.integers(1, 8),
)
def test_every_page_from_memory_is_the_page_clickhouse_gives(
    posts: list[tuple[int, str, str, str]], ops: list[tuple[str, Any]], capacity: int
) -> None:
    ref = Reference()

    async def fill(f: Filter, n: int) -> list[dict[str, Any]]:
        await asyncio.sleep(0)  # a read that yields, as the engine's does
        return ref.page(f, n, None)[0]

    async def play() -> None:
        timelines = Timelines(fill, capacity=capacity)
        timelines.live = True
        cursors: dict[Filter, list[Key]] = {}
        for op, arg in ops:
            if op == "store":
                rows = [post_row(f"p{n:02d}", *posts[n], blocked, copy) for n, blocked, copy in arg]
                ref.store(rows)
                timelines.stored(rows)
                continue
            f, limit, which, tick = arg
            known = cursors.get(f, [])
            cursor = None
            if which == 1 and known:
                cursor = known[-1]  # the next page of the last page read
            elif which == 2:
                cursor = (tick, "p15")  # anywhere
            body = await timelines.page(f, limit, cursor)
            items, next_cursor = ref.page(f, limit, cursor)
            if body is not None:
                assert body == page_body((post_body(r) for r in items), next_cursor), (f, cursor)
            if items:
                cursors.setdefault(f, []).append((items[-1]["tick"], items[-1]["post_id"]))

    asyncio.run(play())


def test_pages_come_from_memory_until_they_reach_below_the_window() -> None:
    ref = Reference()
    fills: list[Filter] = []

    async def fill(f: Filter, n: int) -> list[dict[str, Any]]:
        fills.append(f)
        return ref.page(f, n, None)[0]

    async def play() -> None:
        timelines = Timelines(fill, capacity=4)
        assert await timelines.page((None, None, None), 2, None) is None  # not live: no sink
        timelines.live = True
        ref.store([post_row(f"p{i}", i, "r1", "feed", "a1", False) for i in range(6)])
        first = await timelines.page(("r1", None, None), 2, None)
        assert first is not None and b"p5" in first and b"p4" in first
        assert fills == [("r1", None, None)]
        # stored after the fill: in the window without another read
        late = [post_row("p9", 9, "r1", "feed", "a1", False)]
        ref.store(late)
        timelines.stored(late)
        again = await timelines.page(("r1", None, None), 2, None)
        assert again is not None and b"p9" in again
        assert fills == [("r1", None, None)]
        # the window holds p9, p5, p4, p3: two after p5 are p4, p3 and p2 proves more exist
        # only below the floor, so that page is left to ClickHouse
        assert await timelines.page(("r1", None, None), 2, (5, "p5")) is None
        assert await timelines.page(("r1", None, None), 1, (5, "p5")) is not None
        # a blocked copy hides the post at once
        blocked = [post_row("p9", 9, "r1", "feed", "a1", True)]
        ref.store(blocked)
        timelines.stored(blocked)
        newest = await timelines.page(("r1", None, None), 1, None)
        assert newest is not None and b"p9" not in newest and b"p5" in newest
        assert timelines.stats.memory >= 4 and timelines.stats.fallback == 1

    asyncio.run(play())


def test_a_window_filled_while_the_sink_stores_misses_nothing() -> None:
    """A post stored while a window's ClickHouse read is running (not in that read) is in
    the window all the same."""
    ref = Reference()
    ref.store([post_row("p1", 1, "r1", "feed", "a1", False)])
    reading = asyncio.Event()
    stored = asyncio.Event()

    async def fill(f: Filter, n: int) -> list[dict[str, Any]]:
        rows = ref.page(f, n, None)[0]  # the read's view: before p2 was stored
        reading.set()
        await stored.wait()
        return rows

    async def play() -> None:
        timelines = Timelines(fill, capacity=10)
        timelines.live = True
        reader = asyncio.ensure_future(timelines.page(("r1", None, None), 10, None))
        await reading.wait()
        row = post_row("p2", 2, "r1", "feed", "a1", False)
        ref.store([row])
        timelines.stored([row])
        stored.set()
        await reader
        page = await timelines.page(("r1", None, None), 10, None)
        assert page is not None and b"p2" in page and b"p1" in page

    asyncio.run(play())


def test_a_failure_to_take_stored_posts_drops_every_window() -> None:
    async def fill(f: Filter, n: int) -> list[dict[str, Any]]:
        return [post_row("p1", 1, "r1", "feed", "a1", False)]

    async def play() -> None:
        timelines = Timelines(fill, capacity=10)
        timelines.live = True
        assert await timelines.page((None, None, None), 5, None) is not None
        timelines.stored([{"post_id": "bad"}])  # not a post: never raises into the sink
        assert len(timelines) == 0

    asyncio.run(play())


@pytest.fixture
def live_api(
    api_settings: Callable[..., Settings],
    ch_client: Any,
    client_of: Callable[[FastAPI], TestClient],
) -> Any:
    app = create_app(api_settings(api_timeline_posts=20), ch_client, feed_cache_s=0)
    with client_of(app) as client:
        yield app, client


def test_memory_pages_equal_clickhouse_pages_while_posts_arrive(
    live_api: Any, writer: ClickHouseWriter, post_factory: Callable[..., PostPublished]
) -> None:
    app, client = live_api
    timelines: Timelines = app.state.timelines

    def store(posts: list[PostPublished]) -> None:
        # what the embedded sink does: insert, then tell the timelines what was inserted
        writer.write_messages(posts)
        timelines.stored([p.model_dump(mode="json") for p in writer.newly_stored(posts)])

    def pages(params: dict[str, Any], live: bool) -> list[tuple[bytes, str]]:
        timelines.live = live
        return feed_pages(client, params, most=20)

    store(
        [
            post_factory(i, channel=CHANNELS[i % 3], author=AUTHORS[i % 2], run_id=RUNS[i % 2])
            for i in range(60)
        ]
    )
    filters = [{"run_id": "r1"}, {"run_id": "r2", "channel": "chat"}, {"channel": "news"}, {}]
    for round_ in range(3):
        for params in filters:
            params = {**params, "limit": 7}
            memory, stored = pages(params, True), pages(params, False)
            assert [body for body, _ in memory] == [body for body, _ in stored], params
            assert memory[0][1] == "memory"  # the newest page never needs the engine
            assert {how for _, how in stored} == {"miss"}
        # an author's feed is not kept in memory: the engine serves it
        author = pages({"run_id": "r1", "author": "a1", "limit": 7}, True)
        assert {how for _, how in author} == {"miss"}
        # late posts (old ticks), a re-stored copy and a blocked copy arrive (copies of a
        # stored post are dropped by the writer, and the sink does not pass them on)
        store(
            [
                post_factory(100 + round_, tick=3, run_id="r1", author="a1"),
                post_factory(200 + round_, tick=70 + round_, run_id="r2", channel="chat"),
                post_factory(59, run_id=RUNS[1], channel="news", author="a2", body="edited"),
                post_factory(58, run_id="r1", channel="chat", author="a1", moderation="blocked"),
            ]
        )
