"""storage.queries on the real engine (chDB): the columns reads return, filters, limits,
and keyset pages that cover every row once. The HTTP shape is tested in tests/api."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from storage import ClickHouseWriter, queries
from storage.queries import MAX_LIMIT, InvalidCursor, InvalidQuery, decode_cursor, encode_cursor
from storage.schema import TABLES
from topics.models import EventHappened, PostPublished

IMPACT = ("impact_novelty", "impact_conflict", "impact_status", "impact_cascade", "impact_total")


def test_cursor_round_trips_and_foreign_cursors_are_refused() -> None:
    cursor = encode_cursor("feed", 12, "po_1")
    assert decode_cursor("feed", cursor) == (12, "po_1")
    with pytest.raises(InvalidCursor, match="for posts"):
        decode_cursor("posts", cursor)  # another listing's
    for bad in ("%%%", "bm90IGpzb24", encode_cursor("feed", -1, "x")):
        with pytest.raises(InvalidCursor):
            decode_cursor("feed", bad)


READS_WITH_LIMIT: dict[str, Callable[..., Any]] = {
    "feed": queries.feed,
    "posts": queries.posts,
    "events": queries.events,
    "runs": queries.runs,
    "ticks": lambda c, db, **kw: queries.ticks(c, db, "run1", **kw),
    "npc_timeline": lambda c, db, **kw: queries.npc_timeline(c, db, "npc_a", **kw),
}


@pytest.mark.parametrize("read", READS_WITH_LIMIT)
def test_limits_are_1_to_max_limit(ch_client: Client, database: str, read: str) -> None:
    call = READS_WITH_LIMIT[read]
    for limit in (0, MAX_LIMIT + 1):
        with pytest.raises(InvalidQuery, match="limit"):
            call(ch_client, database, limit=limit)
    for limit in (1, MAX_LIMIT):
        result = call(ch_client, database, limit=limit)
        assert (result.items if isinstance(result, queries.Page) else result) == []


@pytest.mark.parametrize("read", ["feed", "posts", "events", "ticks", "npc_timeline"])
def test_an_empty_tick_range_is_refused(ch_client: Client, database: str, read: str) -> None:
    with pytest.raises(InvalidQuery, match="tick_from"):
        READS_WITH_LIMIT[read](ch_client, database, tick_from=5, tick_to=4)


def test_reads_return_the_columns_the_writer_stores(
    ch_client: Client, database: str, writer: ClickHouseWriter, message_factory
) -> None:
    kinds = ("events", "posts", "ticks", "npc_snapshots")
    writer.write_messages([message_factory(kind, 0) for kind in kinds])
    columns = {t: list(TABLES[t].columns) for t in kinds}
    assert list(queries.feed(ch_client, database).items[0]) == columns["posts"]
    assert list(queries.post_by_id(ch_client, database, f"po_{0:016x}") or {}) == columns["posts"]
    event = queries.events(ch_client, database).items[0]
    assert list(event) == [c for c in columns["events"] if c not in IMPACT] + ["impact"]
    assert list(queries.ticks(ch_client, database, "run1")[0]) == columns["ticks"]
    snapshot = queries.npc_snapshot(ch_client, database, "run1", "npc_a")
    assert list(snapshot or {}) == columns["npc_snapshots"]
    stored = queries.posts_stored_since(ch_client, database, 0)
    assert list(stored[0]) == [*columns["posts"], "stored_ms"]


def _pages(read: Callable[..., queries.Page], limit: int, **filters: Any) -> list[list[str]]:
    """Every page of a listing, as ids, following next_cursor."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = read(limit=limit, cursor=cursor, **filters)
        pages.append([i.get("post_id") or i["event_id"] for i in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.fixture
def stored_posts(
    writer: ClickHouseWriter, post_factory: Callable[..., PostPublished]
) -> list[PostPublished]:
    """23 posts, one of them blocked, a few stored twice in another batch."""
    posts = [post_factory(i) for i in range(23)]
    posts[7] = post_factory(7, moderation="blocked")
    writer.write_messages(posts)
    writer.write_messages(posts[3:6])  # redelivered: another block, not merged yet
    return [p for p in posts if p.moderation != "blocked"]


@pytest.mark.parametrize("limit", [1, 5, 11, 22, 23])
def test_keyset_pages_cover_every_visible_post_once_in_order(
    ch_client: Client, database: str, stored_posts: list[PostPublished], limit: int
) -> None:
    log_order = [p.post_id for p in sorted(stored_posts, key=lambda p: (p.tick, p.post_id))]
    for read, expected in (
        (queries.posts, log_order),
        (queries.feed, log_order[::-1]),
    ):
        pages = _pages(functools.partial(read, ch_client, database), limit)
        assert [i for page in pages for i in page] == expected
        assert all(len(page) == limit for page in pages[:-1]) and 0 < len(pages[-1]) <= limit


def test_event_pages_cover_every_event_once_in_order(
    ch_client: Client, database: str, writer: ClickHouseWriter, event_factory
) -> None:
    events = [event_factory(i) for i in range(9)]
    writer.write_messages(events)
    writer.write_messages(events[:2])  # redelivered in another batch
    pages = _pages(functools.partial(queries.events, ch_client, database), 4)
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [i for p in pages for i in p] == [
        e.event_id for e in sorted(events, key=lambda e: (e.tick, e.event_id))
    ]


POST_FILTERS: list[dict[str, Any]] = [
    {"run_id": "run2"},
    {"channel": "news"},
    {"author": "npc_3"},
    {"tick_from": 3, "tick_to": 6},
    {"run_id": "run1", "channel": "chat", "tick_from": 2},
    {"place": "inn"},
]


@pytest.mark.parametrize("filters", POST_FILTERS)
def test_feed_filters_select_what_they_say(
    ch_client: Client,
    database: str,
    writer: ClickHouseWriter,
    post_factory,
    event_factory,
    filters: dict[str, Any],
) -> None:
    posts = [post_factory(i, run_id=f"run{i % 2 + 1}") for i in range(30)]
    events = {e.event_id: e for e in (event_factory(i) for i in range(30))}
    writer.write_messages([*posts, *events.values()])

    def selected(p: PostPublished) -> bool:
        fields = {"place": events[p.event_id].place, **p.model_dump()}
        lo, hi = filters.get("tick_from", 0), filters.get("tick_to", 10**9)
        equal = {k: v for k, v in filters.items() if not k.startswith("tick_")}
        return lo <= p.tick <= hi and all(fields[k] == v for k, v in equal.items())

    newest_first = sorted(posts, key=lambda p: (p.tick, p.post_id), reverse=True)
    got = queries.feed(ch_client, database, limit=MAX_LIMIT, **filters).items
    assert [p["post_id"] for p in got] == [p.post_id for p in newest_first if selected(p)]
    assert got, "a filter that selects nothing proves little"


@pytest.mark.parametrize(
    "filters",
    [{"npc": "npc_2"}, {"type": "argued"}, {"place": "cafe", "tick_to": 5}, {"run_id": "none"}],
)
def test_event_filters_select_what_they_say(
    ch_client: Client,
    database: str,
    writer: ClickHouseWriter,
    event_factory,
    filters: dict[str, Any],
) -> None:
    events = [event_factory(i) for i in range(20)]
    writer.write_messages(events)

    def selected(e: EventHappened) -> bool:
        npc = filters.get("npc")
        return (
            (npc is None or npc in (e.actor, e.target, *e.witnesses))
            and filters.get("type", e.type) == e.type
            and filters.get("place", e.place) == e.place
            and filters.get("run_id", e.run_id) == e.run_id
            and e.tick <= filters.get("tick_to", e.tick)
        )

    got = queries.events(ch_client, database, limit=MAX_LIMIT, **filters).items
    expected = sorted((e for e in events if selected(e)), key=lambda e: (e.tick, e.event_id))
    assert [e["event_id"] for e in got] == [e.event_id for e in expected]


def test_stats_count_each_row_once_per_run(
    ch_client: Client, database: str, writer: ClickHouseWriter, post_factory, event_factory
) -> None:
    messages = [post_factory(i, run_id=f"run{i % 2 + 1}") for i in range(10)] + [
        event_factory(i) for i in range(4)
    ]
    writer.write_messages(messages)
    writer.write_messages(messages[::-1])  # redelivered in other batches
    tables = queries.stats(ch_client, database)["tables"]
    assert set(tables) == set(TABLES)
    assert (tables["posts"], tables["events"], tables["ticks"]) == (10, 4, 0)
    assert queries.stats(ch_client, database, run_id="run2")["tables"]["posts"] == 5
