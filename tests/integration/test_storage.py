"""storage/ against the real ClickHouse engine (chDB): migrations, the batching writer,
idempotent writes, and a 100k-row insert timing.

One chDB engine per process: the engine lives at the session base temp dir's ``chdb``
folder (the same path tests/api uses), and every test gets its own database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from sim.decide import score
from storage import (
    ClickHouseWriter,
    applied_versions,
    connect,
    database_of,
    migrate,
    row_for,
    rows_for,
)
from storage.clickhouse import chdb_path_of
from storage.migrate import load_migrations
from storage.writer import JSON_TABLES, TABLES, dedup_token
from topics.models import (
    DeadLettered,
    Effect,
    EventHappened,
    LLMCalled,
    NpcSnapshotted,
    PostPublished,
    RunCommanded,
)

pytestmark = pytest.mark.integration


def _post(i: int, **kw: object) -> PostPublished:
    fields: dict[str, object] = {
        "post_id": f"po_{i:016x}",
        "request_id": f"rq_{i:016x}",
        "run_id": "run1",
        "event_id": f"ev_{i:016x}",
        "channel": ("feed", "chat", "news")[i % 3],
        "author": f"npc_{i % 97}",
        "tick": i // 10,
        "sim_minute": i // 10 * 15,
        "body": f"post number {i}",
        "source": "llm",
        "score": 0.5,
    }
    fields.update(kw)
    return PostPublished(**fields)  # type: ignore[arg-type]  # test builder


def _count(client: Client, database: str, table: str, final: bool = False) -> int:
    return int(client.command(f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''}"))  # noqa: S608 - checked identifiers, values bound


def test_connect_caches_per_path_and_parses_dsns(chdb_path: Path, ch_client: Client) -> None:
    assert connect(f"chdb://{chdb_path}") is ch_client
    assert connect(f"chdb:///{chdb_path}/?database=other") is ch_client
    assert chdb_path_of(f"chdb://{chdb_path}/") == str(chdb_path.resolve())
    assert database_of(f"chdb://{chdb_path}") == "worldfeed"
    assert database_of(f"chdb://{chdb_path}?database=wf_x") == "wf_x"
    assert database_of("http://u:p@ch:8123/analytics") == "analytics"
    assert database_of("http://ch:8123") == "worldfeed"
    with pytest.raises(ValueError, match="identifier"):
        database_of("http://ch:8123/bad-name;drop")


def test_migrations_apply_in_order_and_are_idempotent(ch_client: Client) -> None:
    database = f"wf_test_{uuid.uuid4().hex[:12]}"
    try:
        versions = [m.version for m in load_migrations()]
        assert versions == sorted(versions) and versions[0] == 1
        assert migrate(ch_client, database) == versions
        assert migrate(ch_client, database) == []
        assert applied_versions(ch_client, database) == set(versions)
        assert _count(ch_client, database, "schema_migrations") == len(versions)
        tables = {
            row[0]
            for row in ch_client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}",
                parameters={"db": database},
            ).result_rows
        }
        landing = set(JSON_TABLES.values())
        views = {f"{name}_mv" for name in landing}
        assert tables == set(TABLES) | {"schema_migrations"} | landing | views
        engines = dict(
            ch_client.query(
                "SELECT name, engine FROM system.tables WHERE database = {db:String} "
                "AND name != 'schema_migrations'",
                parameters={"db": database},
            ).result_rows
        )
        assert {engines[t] for t in TABLES} == {"ReplacingMergeTree"}
        assert {engines[t] for t in landing} == {"Null"}  # stores nothing: its view does
        assert {engines[t] for t in views} == {"MaterializedView"}
    finally:
        ch_client.command(f"DROP DATABASE IF EXISTS {database}")


def test_writer_batches_by_size_and_time(ch_client: Client, ch_database) -> None:
    database = ch_database()
    now = [0.0]
    writer = ClickHouseWriter(ch_client, database, batch_size=3, flush_s=1.0, clock=lambda: now[0])
    assert not writer.due()
    full = [writer.add_message(_post(i)) for i in range(7)]
    assert full == [False, False, True, True, True, True, True]
    assert writer.due() and writer.pending() == 7
    assert writer.flush_sync() == {"posts": 7}
    assert writer.inserts == 3  # 3 + 3 + 1 rows: one insert per batch_size chunk
    assert writer.pending() == 0 and not writer.due()
    assert _count(ch_client, database, "posts") == 7

    writer.add_message(_post(100))
    now[0] = 0.9
    assert not writer.due()
    now[0] = 1.0
    assert writer.due()  # the oldest row waited flush_s
    assert asyncio.run(writer.flush()) == {"posts": 1}


def test_writer_rejects_unknown_tables_and_columns(ch_client: Client, ch_database) -> None:
    writer = ClickHouseWriter(ch_client, ch_database())
    with pytest.raises(ValueError, match="unknown table"):
        writer.add("nope", {})
    with pytest.raises(ValueError, match="unknown columns"):
        writer.add("posts", {"post_id": "x", "colour": "red"})
    with pytest.raises(ValueError, match="only 'start'"):
        row_for(RunCommanded(command="stop", run_id="r"))
    with pytest.raises(TypeError):
        row_for(object())


def test_same_batch_twice_is_stored_once(ch_client: Client, ch_database) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=1000)
    batch = [_post(i) for i in range(50)]
    writer.write_messages(batch)
    writer.write_messages(batch)  # same batch, same dedup token: the block is dropped
    assert _count(ch_client, database, "posts") == 50
    # overlapping batches of another shape get through the token, and collapse by key
    writer.write_messages(batch[10:30] + [_post(50)])
    assert _count(ch_client, database, "posts", final=True) == 51
    assert int(ch_client.command(f"SELECT uniqExact(post_id) FROM {database}.posts")) == 51  # noqa: S608 - checked identifiers, values bound
    ch_client.command(f"OPTIMIZE TABLE {database}.posts FINAL")
    assert _count(ch_client, database, "posts") == 51


def test_an_event_keeps_its_highest_score_whatever_the_insert_order(
    ch_client: Client, ch_database
) -> None:
    # the sink stores base events (from `events`) and re-scores (from `scored-events`)
    # independently: a re-score may land first, and must still win
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=1000)

    def event(i: int, cascade: float) -> EventHappened:
        return EventHappened(
            event_id=f"ev_{i:016x}",
            run_id="order",
            tick=1,
            sim_minute=15,
            type="argued",
            actor="npc_a",
            summary="a row",
            impact=score(0.5, 0.5, 0.2, cascade),
        )

    writer.write_messages([event(1, 0.75)])  # re-scored twice, stored first
    writer.write_messages([event(1, 0.25), event(2, 0.25)])  # base rows, later
    writer.write_messages([event(2, 0.5)])  # re-scored once, stored after its base
    rows = ch_client.query(
        f"SELECT event_id, impact_cascade FROM {database}.events FINAL ORDER BY event_id"  # noqa: S608 - checked identifiers
    ).result_rows
    assert rows == [(f"ev_{1:016x}", 0.75), (f"ev_{2:016x}", 0.5)]


def test_events_are_mapped_from_their_json_by_the_engine(ch_client: Client, ch_database) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=1000)
    full = EventHappened(
        event_id="ev_full",
        run_id="json",
        tick=2,
        sim_minute=30,
        type="argued",
        actor="npc_a",
        target="npc_b",
        place="inn",
        witnesses=["npc_c"],
        summary='Ann argued with "Bo" \u2014 loudly',
        source="director",
        refs=["ev_0"],
        effects=[
            Effect(event_id="ev_full", npc_id="npc_b", field="trust", other="npc_a", delta=-2)
        ],
        impact=score(0.5, 0.5, 0.2, 0.3),
    )
    # the fewest fields a producer may send: the table's defaults are the model's
    bare = (
        b'{"event_id":"ev_bare","run_id":"json","tick":2,"sim_minute":30,"type":"t",'
        b'"actor":"a","summary":"s"}'
    )
    writer.add_message(full)
    writer.add_json("events", bare)
    assert writer.flush_sync() == {"events": 2}
    cols = ", ".join(TABLES["events"].columns)
    rows = {
        r[0]: dict(zip(TABLES["events"].columns, r, strict=True))
        for r in ch_client.query(f"SELECT {cols} FROM {database}.events FINAL").result_rows  # noqa: S608 - checked identifiers
    }
    got = rows["ev_full"]
    assert (got["target"], got["place"], got["witnesses"], got["refs"]) == (
        "npc_b",
        "inn",
        ["npc_c"],
        ["ev_0"],
    )
    assert got["summary"] == full.summary and got["source"] == "director"
    assert [Effect(**e) for e in orjson.loads(got["effects"])] == full.effects
    impact = full.impact
    assert impact is not None
    assert (got["impact_cascade"], got["impact_total"]) == (impact.cascade, impact.total)
    bare_row = rows["ev_bare"]
    assert (bare_row["source"], bare_row["effects"], bare_row["target"]) == ("npc", "[]", None)
    assert bare_row["witnesses"] == [] and bare_row["impact_total"] is None
    # the same batch again (a retried flush): the token reaches events through the view
    writer.add_message(full)
    writer.add_json("events", bare)
    writer.flush_sync()
    assert _count(ch_client, database, "events") == 2


def test_json_the_engine_refuses_is_stored_re_encoded(ch_client: Client, ch_database) -> None:
    # a repeated key is valid JSON (the validator keeps the last one); the engine refuses it
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database)
    line = (
        b'{"event_id":"ev_dup","run_id":"dup","tick":1,"sim_minute":1,"type":"t",'
        b'"actor":"a","summary":"s","tick":7}'
    )
    assert writer.write_json("events", [line]) == 1
    rows = ch_client.query(f"SELECT event_id, tick FROM {database}.events").result_rows  # noqa: S608 - checked identifiers
    assert rows == [("ev_dup", 7)]


def test_only_json_tables_take_json(ch_client: Client, ch_database) -> None:
    writer = ClickHouseWriter(ch_client, ch_database())
    with pytest.raises(ValueError, match="not filled from JSON"):
        writer.add_json("posts", b"{}")
    with pytest.raises(TypeError, match="mapped by the engine"):
        row_for(
            EventHappened(
                event_id="e", run_id="r", tick=0, sim_minute=0, type="t", actor="a", summary="s"
            )
        )


def test_failed_flush_keeps_rows_and_retry_is_idempotent(ch_client: Client, ch_database) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=2)
    for i in range(3):
        writer.add_message(_post(i))
    writer.add("posts", {**row_for(_post(3))[1], "tick": "not a number"})
    with pytest.raises(Exception):  # noqa: B017 - the driver's error type is not the point
        writer.flush_sync()
    assert writer.pending() == 2  # the first batch went in; the failing one stays
    assert _count(ch_client, database, "posts") == 2
    writer._buffers["posts"][1]["tick"] = 0  # fix the row, as a retry after a fix would
    assert writer.flush_sync() == {"posts": 2}
    assert _count(ch_client, database, "posts", final=True) == 4


def test_dead_letters_and_runs_rows(ch_client: Client, ch_database) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database)
    letter = DeadLettered(
        stage="render",
        topic="wf.render-requests",
        partition=0,
        offset=7,
        value="{}",
        reason="schema invalid",
        at_ms=1_700_000_000_000,
    )
    start = RunCommanded(command="start", run_id="run9", seed=5)
    writer.write_messages([letter, start])
    writer.write_messages([letter, start])  # redelivered
    assert _count(ch_client, database, "dead_letters", final=True) == 1
    assert _count(ch_client, database, "runs", final=True) == 1
    assert dedup_token("posts", [{"post_id": "a"}]) != dedup_token("posts", [{"post_id": "b"}])


def test_insert_100k_rows_timing(ch_client: Client, ch_database, capsys) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=100_000)
    rows = [row_for(_post(i))[1] for i in range(100_000)]
    for row in rows:
        writer.add("posts", row)
    started = time.perf_counter()
    assert writer.flush_sync() == {"posts": 100_000}
    elapsed = time.perf_counter() - started
    assert writer.inserts == 1
    assert _count(ch_client, database, "posts") == 100_000
    started = time.perf_counter()
    count = _count(ch_client, database, "posts", final=True)
    final_s = time.perf_counter() - started
    assert count == 100_000
    with capsys.disabled():
        print(
            f"\n100k posts: one insert {elapsed:.2f} s ({100_000 / elapsed:,.0f} rows/s); "
            f"count() FINAL {final_s * 1000:.0f} ms"
        )


def _snapshot(tick: int, **kw: object) -> NpcSnapshotted:
    fields: dict[str, object] = {
        "run_id": "run1",
        "tick": tick,
        "npc_id": "npc_a",
        "place": "cafe",
        "reputation": 55.0,
        "relationships": {"npc_b": [10.0, 60.0, 30.0], "npc_c": [-20.0, 15.0, 5.0]},
        "memories": [[tick, "ev_1", "met npc_b at the cafe", 0.8]],
        "goals": {"friendship": 0.25},
        "state_hash": f"{tick:016x}",
    }
    fields.update(kw)
    return NpcSnapshotted(**fields)  # type: ignore[arg-type]  # test builder


def _llm_call(i: int, **kw: object) -> LLMCalled:
    fields: dict[str, object] = {
        "call_id": f"ca_{i:016x}",
        "run_id": "run1",
        "request_id": f"rq_{i // 2:016x}",
        "attempt": 1 + i % 2,
        "prompt_hash": f"{i:016x}",
        "model": "smollm2" if i % 3 else None,
        "tokens_in": 100,
        "tokens_out": 20 + i,
        "latency_ms": 12.5,
        "cache_hit": i % 4 == 0,
        "outcome": "valid",
        "at_ms": 1_700_000_000_000 + i,
    }
    fields.update(kw)
    return LLMCalled(**fields)  # type: ignore[arg-type]  # test builder


def test_npc_snapshot_maps_to_one_npc_row_and_one_row_per_relationship() -> None:
    pairs = rows_for(_snapshot(4))
    assert [t for t, _ in pairs] == [
        "npc_snapshots",
        "relationship_snapshots",
        "relationship_snapshots",
    ]
    npc = pairs[0][1]
    assert set(npc) == set(TABLES["npc_snapshots"].columns)
    state = orjson.loads(npc["state"])
    assert (
        state["goals"] == {"friendship": 0.25}
        and state["memories"][0][2] == "met npc_b at the cafe"
    )
    assert pairs[1][1]["other_id"] == "npc_b" and pairs[1][1]["affinity"] == 10.0
    assert pairs[2][1]["trust"] == 15.0 and pairs[2][1]["familiarity"] == 5.0
    with pytest.raises(TypeError, match="rows_for"):
        row_for(_snapshot(4))
    with pytest.raises(ValueError, match="affinity, trust, familiarity"):
        rows_for(_snapshot(4, relationships={"npc_b": [1.0]}))


def test_snapshots_and_llm_calls_are_stored_once(ch_client: Client, ch_database) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=3)
    messages = [_snapshot(t) for t in (4, 8)] + [_llm_call(i) for i in range(5)]
    writer.write_messages(messages)
    writer.write_messages(messages[::-1])  # redelivered in other batches
    assert _count(ch_client, database, "npc_snapshots", final=True) == 2
    assert _count(ch_client, database, "relationship_snapshots", final=True) == 4
    assert _count(ch_client, database, "llm_calls", final=True) == 5
    row = ch_client.query(
        f"SELECT model, outcome, toUnixTimestamp64Milli(at) FROM {database}.llm_calls FINAL "  # noqa: S608 - checked identifiers
        "WHERE call_id = 'ca_0000000000000000'"
    ).result_rows[0]
    assert row == (None, "valid", 1_700_000_000_000)
    # a message that cannot be stored leaves nothing half-buffered
    with pytest.raises(ValueError):
        writer.add_message(_snapshot(12, relationships={"npc_b": [1.0, 2.0, 3.0], "x": [1.0]}))
    assert writer.pending() == 0


@pytest.mark.parametrize(
    ("filters", "projection"),
    [
        ({"run_id": "run1"}, "feed_by_run"),
        ({"run_id": "run1", "author": "npc_5"}, "feed_by_author"),
        ({"channel": "news"}, "feed_by_channel"),
        ({"run_id": "run1", "channel": "news"}, None),  # the table's own key
    ],
)
def test_feed_reads_in_order_from_the_projection_for_its_filters(
    ch_client: Client, ch_database, filters: dict[str, str], projection: str | None
) -> None:
    """Each common feed filter has a key it reads newest-first (migration 0004)."""
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=100_000)
    # enough granules (8192 rows) that the keys prune differently; two runs
    writer.write_messages([_post(i, run_id=f"run{i % 2 + 1}") for i in range(100_000)])
    where = " AND ".join(f"{k} = '{v}'" for k, v in filters.items())
    plan = "\n".join(
        row[0]
        for row in ch_client.query(
            f"EXPLAIN actions = 1 SELECT post_id FROM {database}.posts WHERE {where} "  # noqa: S608 - test constants
            "ORDER BY tick DESC, post_id DESC LIMIT 10"
        ).result_rows
    )
    assert f"ReadFromMergeTree ({projection or f'{database}.posts'})" in plan, plan
    assert "InReverseOrder" in plan, plan
