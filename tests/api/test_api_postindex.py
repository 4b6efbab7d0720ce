"""The post index (api/postindex.py): every page it serves is the page ClickHouse gives.

1. A property test against a reference model of the feed (the last stored copy of a post
   wins, blocked posts hidden, newest first, keyset cursors, tick ranges): random posts
   stored live in random batches (late ticks, re-stored copies, blocked copies) while the
   index fills from a reference that is read a range at a time and answers with what it
   held when asked (a read that races the sink); every page of a run's feed must be the
   reference page byte for byte, and once filled every such page is served.
2. Through the API on the real chDB engine: pages from the index (``X-Cache: index``)
   are byte-identical to pages read from ClickHouse, for every filter the index serves,
   deep cursors and tick ranges included, before and after more posts arrive.
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
from api.postindex import EMPTY_PAGE, PostIndex
from api.timeline import page_body, post_body
from cli.main import fill_index
from storage import ClickHouseWriter
from storage.queries import encode_cursor
from tests.fixtures.feed_rows import AUTHORS, CHANNELS, RUNS, feed_pages, post_row
from topics.models import PostPublished
from worldfeed.settings import Settings

Key = tuple[int, str]
Query = tuple[str | None, str | None, str | None, int | None, int | None]


class Reference:
    """The feed as ClickHouse answers it (``FINAL``: the last stored copy wins)."""

    def __init__(self) -> None:
        self.posts: dict[str, dict[str, Any]] = {}

    def store(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.posts[row["post_id"]] = row

    def runs(self) -> list[tuple[str, int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for r in self.posts.values():
            n, top = out.get(r["run_id"], (0, 0))
            out[r["run_id"]] = (n + 1, max(top, r["tick"]))
        return [(run, n, top) for run, (n, top) in sorted(out.items())]

    def in_ticks(self, run: str, lo: int, hi: int) -> list[dict[str, Any]]:
        rows = [r for r in self.posts.values() if r["run_id"] == run and lo <= r["tick"] < hi]
        return sorted(rows, key=lambda r: (r["tick"], r["post_id"]))

    def page(self, q: Query, limit: int, cursor: Key | None) -> bytes:
        run, channel, author, lo, hi = q
        rows = sorted(
            (
                r
                for r in self.posts.values()
                if r["moderation"] != "blocked"
                and run in (None, r["run_id"])
                and channel in (None, r["channel"])
                and author in (None, r["author"])
                and (lo is None or r["tick"] >= lo)
                and (hi is None or r["tick"] <= hi)
                and (cursor is None or (r["tick"], r["post_id"]) < cursor)
            ),
            key=lambda r: (r["tick"], r["post_id"]),
            reverse=True,
        )
        items = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor("feed", items[-1]["tick"], items[-1]["post_id"])
        return page_body((post_body(r) for r in items), next_cursor)


N_POSTS = 40
post_st = st.tuples(
    st.integers(0, 30),  # tick
    st.sampled_from(RUNS),
    st.sampled_from(CHANNELS),
    st.sampled_from(AUTHORS),
)
copy_st = st.tuples(
    st.integers(0, N_POSTS - 1),  # post number (a re-used number is a later copy of that post)
    st.sampled_from((False, False, False, True)),  # blocked: a quarter
    st.integers(0, 3),  # which copy (the body differs)
)
query_st = st.tuples(
    st.sampled_from((None, *RUNS)),
    st.sampled_from((None, *CHANNELS)),
    st.sampled_from((None, *AUTHORS)),
    st.one_of(st.none(), st.integers(0, 32)),
    st.one_of(st.none(), st.integers(0, 32)),
)
op_st = st.one_of(
    st.tuples(st.just("store"), st.lists(copy_st, min_size=1, max_size=8)),
    st.tuples(
        st.just("page"),
        st.tuples(query_st, st.integers(1, 6), st.integers(0, 2), st.integers(0, 32)),
    ),
    st.tuples(st.just("yield"), st.integers(1, 4)),
)


@settings(
    max_examples=int(os.environ.get("WORLDFEED_POSTINDEX_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    posts=st.lists(post_st, min_size=N_POSTS, max_size=N_POSTS),
    before=st.lists(copy_st, max_size=20),
    ops=st.lists(op_st, min_size=1, max_size=40),
    fill_rows=st.integers(1, 6),
    segment_bytes=st.sampled_from((4096, 8192)),  # 10-20 bodies of ~420 bytes a segment
)
def test_every_page_from_the_index_is_the_page_clickhouse_gives(
    posts: list[tuple[int, str, str, str]],
    before: list[tuple[int, bool, int]],
    ops: list[tuple[str, Any]],
    fill_rows: int,
    segment_bytes: int,
) -> None:
    ref = Reference()

    def rows_of(copies: list[tuple[int, bool, int]]) -> list[dict[str, Any]]:
        return [post_row(f"p{n:02d}", *posts[n], blocked, copy) for n, blocked, copy in copies]

    ref.store(rows_of(before))  # stored before the API started: only the fill finds them

    async def read_runs() -> list[tuple[str, int, int]]:
        await asyncio.sleep(0)
        return ref.runs()

    async def read_range(run: str, lo: int, hi: int) -> list[dict[str, Any]]:
        rows = ref.in_ticks(run, lo, hi)  # what the engine held when asked
        await asyncio.sleep(0)  # the sink stores meanwhile
        await asyncio.sleep(0)
        return rows

    async def play() -> None:
        index = PostIndex(fill_rows=fill_rows, segment_bytes=segment_bytes)
        fill = asyncio.ensure_future(index.fill(read_runs, read_range))
        cursors: dict[Query, Key] = {}

        def check(q: Query, limit: int, which: int, tick: int) -> None:
            cursor = None
            if which == 1 and q in cursors:
                cursor = cursors[q]  # the next page of the last page read
            elif which == 2:
                cursor = (tick, "p15")  # anywhere
            body = index.page(*q, cursor, limit)
            if index.ready and q[0] is not None and not (q[3] and q[4] and q[3] > q[4]):
                assert body is not None, q  # filled: every page of a run's feed is served
            if body is not None:
                assert body == ref.page(q, limit, cursor), (q, cursor, limit)
                items = body.split(b'"post_id":"')[1:]
                if items:
                    last = items[-1].split(b'"', 1)[0].decode()
                    cursors[q] = (ref.posts[last]["tick"], last)

        for op, arg in ops:
            if op == "store":
                rows = rows_of(arg)
                ref.store(rows)
                index.stored(rows)
            elif op == "yield":
                for _ in range(arg):
                    await asyncio.sleep(0)
            else:
                check(*arg)
        await fill
        assert index.ready and not index.off
        for q in [(run, None, None, None, None) for run in RUNS] + [
            (RUNS[0], CHANNELS[0], None, 3, 20),
            (RUNS[1], None, AUTHORS[0], None, None),
            (RUNS[1], CHANNELS[1], AUTHORS[1], None, 25),
        ]:
            for limit in (1, 3, 50):
                check(q, limit, 0, 0)
                check(q, limit, 1, 0)
        index.close()

    asyncio.run(play())


def test_pages_wait_for_the_fill_and_a_run_without_posts_is_empty() -> None:
    ref = Reference()
    ref.store([post_row("p1", 1, "r1", "feed", "a1", False)])
    release = asyncio.Event()

    async def read_runs() -> list[tuple[str, int, int]]:
        await release.wait()
        return ref.runs()

    async def read_range(run: str, lo: int, hi: int) -> list[dict[str, Any]]:
        return ref.in_ticks(run, lo, hi)

    async def play() -> None:
        index = PostIndex()
        fill = asyncio.ensure_future(index.fill(read_runs, read_range))
        await asyncio.sleep(0)
        assert index.page("r1", None, None, None, None, None, 5) is None  # not filled yet
        release.set()
        await fill
        assert index.ready and index.stats.filled == 1 and index.posts == 1
        page = index.page("r1", None, None, None, None, None, 5)
        assert page is not None and b'"p1"' in page
        assert index.page("r9", None, None, None, None, None, 5) == EMPTY_PAGE
        assert index.page(None, "feed", None, None, None, None, 5) is None  # across runs
        assert index.page("r1", None, None, 5, 2, None, 5) is None  # the engine says why
        index.close()

    asyncio.run(play())


def test_the_index_switches_off_past_its_bound_or_on_a_badpost_row() -> None:
    async def nothing() -> list[tuple[str, int, int]]:
        return []

    async def no_range(run: str, lo: int, hi: int) -> list[dict[str, Any]]:
        return []

    async def play() -> None:
        index = PostIndex(max_posts=3)
        await index.fill(nothing, no_range)
        assert index.ready
        index.stored([post_row(f"p{i}", i, "r1", "feed", "a1", False) for i in range(3)])
        assert index.page("r1", None, None, None, None, None, 5) is not None
        index.stored([post_row("p9", 9, "r1", "feed", "a1", False)])  # the fourth
        assert index.off and not index.ready
        assert index.page("r1", None, None, None, None, None, 5) is None

        broken = PostIndex()
        await broken.fill(nothing, no_range)
        broken.stored([{"post_id": "bad"}])  # not a post: never raises into the sink
        assert broken.off and broken.page("r1", None, None, None, None, None, 5) is None

    asyncio.run(play())


def test_a_channel_first_seen_after_many_authors_is_served() -> None:
    """Channels and authors are coded apart: a channel's code is a byte however many
    authors came first (sharing one table, the 301st name overflowed it)."""

    async def nothing() -> list[tuple[str, int, int]]:
        return []

    async def no_range(run: str, lo: int, hi: int) -> list[dict[str, Any]]:
        return []

    async def play() -> None:
        index = PostIndex()
        await index.fill(nothing, no_range)
        index.stored([post_row(f"p{i:03d}", i, "r1", "feed", f"a{i}", False) for i in range(300)])
        index.stored([post_row("p999", 400, "r1", "news", "a7", False)])
        assert not index.off
        page = index.page("r1", "news", None, None, None, None, 5)
        assert page is not None and b'"p999"' in page
        by_author = index.page("r1", "news", "a7", None, None, None, 5)
        assert by_author is not None and b'"p999"' in by_author
        index.close()

    asyncio.run(play())


def test_a_failed_fill_switches_the_index_off() -> None:
    async def runs() -> list[tuple[str, int, int]]:
        return [("r1", 10, 5)]

    async def broken(run: str, lo: int, hi: int) -> list[dict[str, Any]]:
        raise OSError("engine gone")

    async def play() -> None:
        index = PostIndex()
        await index.fill(runs, broken)
        assert index.off and not index.ready

    asyncio.run(play())


@pytest.fixture
def indexed_api(
    api_settings: Callable[..., Settings],
    ch_client: Any,
    client_of: Callable[[FastAPI], TestClient],
) -> Any:
    app = create_app(api_settings(api_timeline_posts=0), ch_client, feed_cache_s=0)
    with client_of(app) as client:
        yield app, client


def test_index_pages_equal_clickhouse_pages_on_the_engine(
    indexed_api: Any, writer: ClickHouseWriter, post_factory: Callable[..., PostPublished]
) -> None:
    app, client = indexed_api
    index: PostIndex = app.state.post_index

    def store(posts: list[PostPublished]) -> None:
        # what the embedded sink does: insert, then tell the index what was inserted
        writer.write_messages(posts)
        index.stored([p.model_dump(mode="json") for p in writer.newly_stored(posts)])

    def pages(params: dict[str, Any], ready: bool) -> list[tuple[bytes, str]]:
        was, index.ready = index.ready, ready
        try:
            return feed_pages(client, params)
        finally:
            index.ready = was

    # stored before the index fills (the API's start over an existing database)
    store(
        [
            post_factory(i, channel=CHANNELS[i % 3], author=AUTHORS[i % 3], run_id=RUNS[i % 2])
            for i in range(90)
        ]
    )

    async def fill() -> None:
        fill_index(app)
        assert index.filling is not None
        await index.filling

    client.portal.call(fill)  # type: ignore[union-attr]
    assert index.ready and index.stats.filled == 90
    health = client.get("/health").json()["feed_index"]
    assert health["state"] == "ready" and health["posts"] == 90 and health["filled"] == 90

    queries = [
        {"run_id": "r1"},
        {"run_id": "r2", "channel": "chat"},
        {"run_id": "r1", "author": "a1"},
        {"run_id": "r2", "author": "a2", "channel": "feed"},
        {"run_id": "r1", "tick_from": 10, "tick_to": 40},
        {"run_id": "r2", "channel": "news", "tick_to": 30},
        {"run_id": "r1", "cursor": encode_cursor("feed", 50, "po_zz")},
        {"run_id": "r9"},
    ]
    for round_ in range(3):
        for params in queries:
            params = {**params, "limit": 4}
            from_index, stored = pages(params, True), pages(params, False)
            assert [body for body, _ in from_index] == [body for body, _ in stored], params
            assert {how for _, how in from_index} == {"index"}
            assert {how for _, how in stored} <= {"miss", "memory"}
        # late posts (old ticks), a re-stored copy (dropped by the writer) and a blocked
        # copy arrive live
        store(
            [
                post_factory(100 + round_, tick=3, run_id="r1", author="a1"),
                post_factory(200 + round_, tick=70 + round_, run_id="r2", channel="chat"),
                post_factory(89, run_id=RUNS[1], channel="news", author="a2", body="edited"),
                post_factory(88, run_id="r1", channel="chat", author="a1", moderation="blocked"),
            ]
        )
    assert client.get("/feed", params={"run_id": "r1", "place": "p"}).headers["X-Cache"] == "miss"
