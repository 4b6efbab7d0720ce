"""storage.writer: row mapping, dedup tokens, batching, and stored-once on the real engine
(chDB, in-process); storage.schema's JSON source for events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from storage import ClickHouseWriter, dedup_token, json_table_for, row_for, rows_for
from storage.schema import TABLES, score_version
from storage.writer import RecentlyStored, json_dedup_token
from topics.models import Effect, EventHappened, RunCommanded

Count = Callable[..., int]
# the table each kind of stored message fills first (relationships come with npc_snapshots)
MESSAGE_TABLES = [t for t in TABLES if t != "relationship_snapshots"]


# ---- mapping (no engine) -------------------------------------------------------------------


@pytest.mark.parametrize("table", [t for t in MESSAGE_TABLES if TABLES[t].json is None])
def test_a_message_maps_to_complete_rows_of_its_table(table: str, message_factory) -> None:
    """Every row carries exactly the spec's columns, so the writer inserts it as it is."""
    pairs = rows_for(message_factory(table, 3))
    assert pairs and pairs[0][0] == table
    for mapped, row in pairs:
        assert set(row) == TABLES[mapped].column_set


def test_npc_snapshot_maps_to_one_npc_row_and_one_row_per_relationship(snapshot_factory) -> None:
    pairs = rows_for(snapshot_factory(4))
    assert [t for t, _ in pairs] == ["npc_snapshots", *["relationship_snapshots"] * 2]
    state = orjson.loads(pairs[0][1]["state"])
    assert state["goals"] == {"friendship": 0.25}
    assert state["memories"][0][2] == "met npc_b at the cafe"
    assert pairs[1][1]["other_id"] == "npc_b" and pairs[1][1]["affinity"] == 10.0
    assert pairs[2][1]["trust"] == 15.0 and pairs[2][1]["familiarity"] == 5.0
    with pytest.raises(TypeError, match="rows_for"):
        row_for(snapshot_factory(4))
    with pytest.raises(ValueError, match="affinity, trust, familiarity"):
        rows_for(snapshot_factory(4, relationships={"npc_b": [1.0]}))


def test_npc_snapshot_keeps_follows_only_with_the_feed_loop(snapshot_factory) -> None:
    off = orjson.loads(rows_for(snapshot_factory(4))[0][1]["state"])
    assert "follows" not in off
    on = orjson.loads(rows_for(snapshot_factory(4, follows=["npc_b"]))[0][1]["state"])
    assert on["follows"] == ["npc_b"]


def test_messages_that_make_no_row_are_refused(event_factory) -> None:
    with pytest.raises(ValueError, match="only 'start'"):
        row_for(RunCommanded(command="stop", run_id="r"))
    with pytest.raises(TypeError, match="no table"):
        row_for(object())
    with pytest.raises(TypeError, match="mapped by the engine"):
        row_for(event_factory(1))


def test_events_and_only_events_are_stored_from_their_json() -> None:
    assert json_table_for(EventHappened) == "events"
    assert json_table_for(RunCommanded) is None
    source = TABLES["events"].json
    assert source is not None
    # a field renamed in the model would be dropped silently at insert (skip unknown fields)
    fields = set(EventHappened.model_fields) - source.skipped
    assert [name for name, _ in source.landing_columns] == [
        f for f in EventHappened.model_fields if f in fields
    ]


def test_dedup_token_is_the_tables_ids_in_order() -> None:
    a, b = {"post_id": "a", "body": "x"}, {"post_id": "b", "body": "y"}
    token = dedup_token("posts", [a, b])
    assert dedup_token("posts", [{**a, "body": "changed"}, b]) == token  # ids only
    assert dedup_token("posts", [b, a]) != token  # another block
    assert dedup_token("posts", [a]) != token
    assert dedup_token("events", [{"event_id": "a"}, {"event_id": "b"}]) != token
    # the whole id: two rows of one NPC at two ticks are two rows
    one = {"run_id": "r", "npc_id": "n", "tick": 1}
    assert dedup_token("npc_snapshots", [one]) != dedup_token("npc_snapshots", [{**one, "tick": 2}])
    # events share an id with their re-scores: the JSON token hashes the content
    assert json_dedup_token("events", [b'{"a":1}']) != json_dedup_token("events", [b'{"a":2}'])


# ---- buffering (engine only to flush) ---------------------------------------------------


def test_writer_batches_by_size_and_time(
    ch_client: Client, database: str, post_factory, count: Count
) -> None:
    now = [0.0]
    writer = ClickHouseWriter(ch_client, database, batch_size=3, flush_s=1.0, clock=lambda: now[0])
    assert not writer.due()
    full = [writer.add_message(post_factory(i)) for i in range(7)]
    assert full == [False, False, True, True, True, True, True]
    assert writer.due() and writer.pending() == 7
    assert writer.flush_sync() == {"posts": 7}
    assert writer.inserts == 3  # 3 + 3 + 1 rows: one insert per batch_size chunk
    assert writer.pending() == 0 and not writer.due()
    assert count("posts") == 7

    writer.add_message(post_factory(100))
    now[0] = 0.9
    assert not writer.due()
    now[0] = 1.0
    assert writer.due()  # the oldest row waited flush_s
    assert asyncio.run(writer.flush()) == {"posts": 1}


def test_writer_refuses_unknown_tables_and_columns_when_adding(writer: ClickHouseWriter) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        writer.add("nope", {})
    with pytest.raises(ValueError, match="unknown columns"):
        writer.add("posts", {"post_id": "x", "colour": "red"})
    with pytest.raises(ValueError, match="not filled from JSON"):
        writer.add_json("posts", b"{}")
    assert writer.pending() == 0


def test_a_message_that_cannot_be_stored_leaves_nothing_buffered(
    writer: ClickHouseWriter, snapshot_factory
) -> None:
    with pytest.raises(ValueError):
        writer.add_message(
            snapshot_factory(12, relationships={"npc_b": [1.0, 2.0, 3.0], "x": [1.0]})
        )
    assert writer.pending() == 0


# ---- stored once ----------------------------------------------------------------------------


@pytest.mark.parametrize("table", MESSAGE_TABLES)
def test_a_batch_stored_twice_is_in_the_raw_rows_once(
    table: str,
    ch_client: Client,
    database: str,
    writer: ClickHouseWriter,
    message_factory,
    count: Count,
) -> None:
    """Sent again, to this writer (it remembers) or another (it asks the table): nothing is
    inserted. Counted without FINAL, no merge."""
    batch = [message_factory(table, i) for i in range(5)]
    first = writer.write_messages(batch)
    assert writer.write_messages(batch) == first  # flushed: stored already
    other = ClickHouseWriter(ch_client, database)
    assert other.write_messages(batch) == first
    assert {t: count(t) for t in first} == first
    assert writer.inserts == len(first) and other.inserts == 0
    assert writer.duplicates == other.duplicates == sum(first.values())


def test_overlapping_batches_store_only_the_new_rows(
    ch_client: Client, database: str, writer: ClickHouseWriter, post_factory, count: Count
) -> None:
    batch = [post_factory(i) for i in range(50)]
    writer.write_messages(batch)
    # another block (another token), by another writer: only post 50 is new
    other = ClickHouseWriter(ch_client, database)
    assert other.write_messages(batch[10:30] + [post_factory(50)]) == {"posts": 21}
    assert (other.rows_written, other.duplicates) == (1, 20)
    assert count("posts") == 51  # raw rows


def test_redelivered_snapshots_and_llm_calls_are_stored_once(
    ch_client: Client,
    database: str,
    snapshot_factory,
    llm_call_factory,
    count: Count,
) -> None:
    writer = ClickHouseWriter(ch_client, database, batch_size=3)
    messages = [snapshot_factory(t) for t in (4, 8)] + [llm_call_factory(i) for i in range(5)]
    writer.write_messages(messages)
    writer.write_messages(messages[::-1])  # redelivered in other batches
    # raw rows, not FINAL: FINAL collapses equal keys whatever the writer stored
    assert count("npc_snapshots") == 2
    assert count("relationship_snapshots") == 4
    assert count("llm_calls") == 5
    row = ch_client.query(
        f"SELECT model, outcome, toUnixTimestamp64Milli(at) FROM {database}.llm_calls FINAL "  # noqa: S608 - test identifier
        "WHERE call_id = 'ca_0000000000000000'"
    ).result_rows[0]
    assert row == (None, "valid", 1_700_000_000_000)


def test_a_new_version_is_stored_and_the_same_version_again_is_not(
    ch_client: Client, database: str, writer: ClickHouseWriter, event_factory
) -> None:
    """An event re-scored is a row of its own (a higher score_version); the same score
    redelivered, in any batch, to any writer, is not. A branch's copy of a parent's story
    (same event id, another run) is another row."""
    base, rescored = event_factory(1, cascade=0.0), event_factory(1, cascade=0.25)
    writer.write_messages([base])
    writer.write_messages([rescored, event_factory(2)])
    other = ClickHouseWriter(ch_client, database)
    other.write_messages([event_factory(2), rescored, base])
    other.write_messages([base.model_copy(update={"run_id": "branch"})])
    rows = ch_client.query(
        f"SELECT run_id, event_id, score_version FROM {database}.events "  # noqa: S608 - test identifier
        "ORDER BY run_id, event_id, score_version"
    ).result_rows
    assert rows == [
        ("branch", f"ev_{1:016x}", 0),
        ("run1", f"ev_{1:016x}", 0),
        ("run1", f"ev_{1:016x}", 2500),
        ("run1", f"ev_{2:016x}", 2500),
    ]
    assert (other.rows_written, other.duplicates) == (1, 3)


class _CountingClient:
    """A client that counts the queries the writer asks (inserts pass through)."""

    def __init__(self, client: Client) -> None:
        self.client, self.queries = client, 0

    def query(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return self.client.query(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_rows_stored_recently_are_dropped_without_asking_the_table(
    ch_client: Client, database: str, post_factory, event_factory, count: Count
) -> None:
    client = _CountingClient(ch_client)
    writer = ClickHouseWriter(client, database, recent=1000)  # type: ignore[arg-type]
    batch = [post_factory(i) for i in range(5)] + [event_factory(i) for i in range(5)]
    writer.write_messages(batch)
    assert client.queries == 2  # one check per table
    writer.write_messages(batch[::-1])  # redelivered: remembered, no check, no insert
    assert client.queries == 2 and writer.inserts == 2
    writer.write_messages([*batch[:2], post_factory(5)])  # one new row: one check
    assert client.queries == 3 and writer.inserts == 3
    assert (count("posts"), count("events")) == (6, 5)


def test_recently_stored_forgets_the_oldest_beyond_its_size() -> None:
    recent = RecentlyStored(3)
    recent.add("posts", [("a",), ("b",), ("c",)])
    recent.add("posts", [("a",)])  # seen again: the most recent now
    recent.add("events", [("a",)])
    assert len(recent) == 3
    assert ("posts", ("b",)) not in recent
    assert ("posts", ("a",)) in recent and ("events", ("a",)) in recent


def test_an_events_identity_from_its_json_is_the_tables(
    ch_client: Client, database: str, writer: ClickHouseWriter
) -> None:
    """The writer reads an event's (run, tick, id, version) from its JSON; the version as
    the table's MATERIALIZED score_version computes it (both round half to even)."""
    cascades = [None, 0.0, 0.00005, 0.00015, 0.00025, 0.12345, 0.25, 0.33335, 1.0]
    lines = [
        orjson.dumps(
            {
                "event_id": f"ev_{i}",
                "run_id": "v",
                "tick": i,
                "sim_minute": 0,
                "type": "t",
                "actor": "a",
                "summary": "s",
                "impact": None
                if c is None
                else {"novelty": 0, "conflict": 0, "status": 0, "cascade": c, "total": 0},
            }
        )
        for i, c in enumerate(cascades)
    ]
    assert writer.write_json("events", lines) == len(lines)
    stored = ch_client.query(
        f"SELECT run_id, tick, event_id, score_version FROM {database}.events ORDER BY tick"  # noqa: S608 - test identifier
    ).result_rows
    key_of = TABLES["events"].json.key_of  # type: ignore[union-attr]
    assert [tuple(r) for r in stored] == [key_of(line) for line in lines]
    assert [r[3] for r in stored] == [score_version(c) for c in cascades]


def test_newly_stored_are_the_messages_whose_rows_the_flush_inserted(
    ch_client: Client, database: str, writer: ClickHouseWriter, post_factory
) -> None:
    """What the sink hands its listeners (the API's timelines): each post the table got,
    once; not a copy of a post stored before, which may differ (a later render)."""
    first = [post_factory(i) for i in range(3)]
    writer.write_messages(first)
    assert writer.newly_stored(first) == first
    again = [post_factory(1, body="rendered again"), post_factory(3), post_factory(3)]
    writer.write_messages(again)
    assert writer.newly_stored(again) == [post_factory(3)]


def test_newly_stored_keeps_what_a_failed_flush_inserted(
    ch_client: Client, database: str, post_factory
) -> None:
    writer = ClickHouseWriter(ch_client, database, batch_size=2)
    posts = [post_factory(i) for i in range(3)]
    for post in posts:
        writer.add_message(post)
    writer.add("posts", {**row_for(post_factory(3))[1], "tick": "not a number"})
    with pytest.raises(Exception):  # noqa: B017 - the driver's error type is not the point
        writer.flush_sync()  # posts 0 and 1 got in
    writer._buffers["posts"][1]["tick"] = 0
    writer.flush_sync()
    assert writer.newly_stored(posts) == posts


def test_failed_flush_keeps_rows_and_retry_is_idempotent(
    ch_client: Client, database: str, post_factory, count: Count
) -> None:
    writer = ClickHouseWriter(ch_client, database, batch_size=2)
    for i in range(3):
        writer.add_message(post_factory(i))
    writer.add("posts", {**row_for(post_factory(3))[1], "tick": "not a number"})
    with pytest.raises(Exception):  # noqa: B017 - the driver's error type is not the point
        writer.flush_sync()
    assert writer.pending() == 2  # the first batch went in; the failing one stays
    assert count("posts") == 2
    writer._buffers["posts"][1]["tick"] = 0  # fix the row, as a retry after a fix would
    assert writer.flush_sync() == {"posts": 2}
    assert count("posts") == 4  # raw rows: the retry stored the failed batch once


# ---- events: the engine maps their JSON -------------------------------------------------------


def test_an_event_keeps_its_highest_score_whatever_the_insert_order(
    ch_client: Client, database: str, writer: ClickHouseWriter, event_factory
) -> None:
    # base events (`events`) and re-scores (`scored-events`) are stored independently:
    # a re-score may land first, and must still win
    writer.write_messages([event_factory(1, cascade=0.75)])  # re-scored twice, stored first
    writer.write_messages([event_factory(1), event_factory(2)])  # base rows, later
    writer.write_messages([event_factory(2, cascade=0.5)])  # re-scored once, after its base
    rows = ch_client.query(
        f"SELECT event_id, impact_cascade FROM {database}.events FINAL ORDER BY event_id"  # noqa: S608 - test identifier
    ).result_rows
    assert rows == [(f"ev_{1:016x}", 0.75), (f"ev_{2:016x}", 0.5)]


def _events(client: Client, database: str) -> dict[str, dict[str, Any]]:
    cols = TABLES["events"].columns
    sql = f"SELECT {', '.join(cols)} FROM {database}.events FINAL"  # noqa: S608 - test identifier
    return {r[0]: dict(zip(cols, r, strict=True)) for r in client.query(sql).result_rows}


def test_events_are_mapped_from_their_json_by_the_engine(
    ch_client: Client, database: str, writer: ClickHouseWriter, event_factory, count: Count
) -> None:
    full = event_factory(
        1,
        summary='Ann argued with "Bo" \u2014 loudly',
        source="director",
        refs=["ev_0"],
        effects=[Effect(event_id="ev_1", npc_id="npc_b", field="trust", other="npc_a", delta=-2)],
    )
    # the fewest fields a producer may send: the table's defaults are the model's
    bare = (
        b'{"event_id":"ev_bare","run_id":"json","tick":2,"sim_minute":30,"type":"t",'
        b'"actor":"a","summary":"s"}'
    )
    writer.add_message(full)
    writer.add_json("events", bare)
    assert writer.flush_sync() == {"events": 2}
    rows = _events(ch_client, database)
    got = rows[full.event_id]
    assert (got["target"], got["place"], got["witnesses"], got["refs"]) == (
        full.target,
        full.place,
        full.witnesses,
        ["ev_0"],
    )
    assert got["summary"] == full.summary and got["source"] == "director"
    assert [Effect(**e) for e in orjson.loads(got["effects"])] == full.effects
    assert full.impact is not None
    assert (got["impact_cascade"], got["impact_total"]) == (
        full.impact.cascade,
        full.impact.total,
    )
    bare_row = rows["ev_bare"]
    assert (bare_row["source"], bare_row["effects"], bare_row["target"]) == ("npc", "[]", None)
    assert bare_row["witnesses"] == [] and bare_row["impact_total"] is None
    # the same batch again (a retried flush): the token reaches events through the view
    writer.add_message(full)
    writer.add_json("events", bare)
    writer.flush_sync()
    assert count("events") == 2


def test_json_the_engine_refuses_is_stored_re_encoded(
    ch_client: Client, database: str, writer: ClickHouseWriter
) -> None:
    # a repeated key is valid JSON (the validator keeps the last one); the engine refuses it
    line = (
        b'{"event_id":"ev_dup","run_id":"dup","tick":1,"sim_minute":1,"type":"t",'
        b'"actor":"a","summary":"s","tick":7}'
    )
    assert writer.write_json("events", [line]) == 1
    rows = ch_client.query(f"SELECT event_id, tick FROM {database}.events").result_rows  # noqa: S608 - test identifier
    assert rows == [("ev_dup", 7)]
