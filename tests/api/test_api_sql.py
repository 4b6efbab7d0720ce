"""POST /admin/sql: read-only SQL on the real engine (chDB), with the README's queries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.sql import MAX_ROWS, check_read_only
from storage import ClickHouseWriter
from topics.models import LLMCalled, NpcSnapshotted, RunCommanded
from worldfeed.settings import Settings

TOKEN = "sql-test-admin-token-0123456789"  # noqa: S105 - a test token
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
) -> Iterator[TestClient]:
    """The API with this module's admin token."""
    with client_of(create_app(api_settings(admin_token=TOKEN), ch_client)) as client:
        yield client


# the "query it" section of the README: each runs here against seeded rows
README_QUERIES: dict[str, str] = {
    "posts per channel per sim hour": """
        SELECT intDiv(sim_minute, 60) AS sim_hour, channel, count() AS posts
        FROM posts FINAL
        WHERE run_id = 'run1' AND moderation != 'blocked'
        GROUP BY sim_hour, channel
        ORDER BY sim_hour, channel""",
    "most-covered NPCs": """
        SELECT npc, count() AS posts
        FROM (
            SELECT arrayJoin(arrayFilter(x -> x != '', [e.actor, ifNull(e.target, '')])) AS npc
            FROM posts AS p FINAL
            INNER JOIN events AS e FINAL ON e.event_id = p.event_id AND e.run_id = p.run_id
            WHERE p.run_id = 'run1' AND p.moderation != 'blocked'
        )
        GROUP BY npc
        ORDER BY posts DESC, npc
        LIMIT 10""",
    "relationships that changed most": """
        SELECT npc_id, other_id,
               argMin(affinity, tick) AS first, argMax(affinity, tick) AS last,
               last - first AS change
        FROM relationship_snapshots FINAL
        WHERE run_id = 'run1'
        GROUP BY npc_id, other_id
        ORDER BY abs(change) DESC, npc_id, other_id
        LIMIT 10""",
    "the cascade of a story": """
        SELECT e.tick, e.event_id, e.type, e.summary, e.impact_cascade, e.impact_total,
               countIf(p.post_id != '') AS posts
        FROM events AS e FINAL
        LEFT JOIN posts AS p FINAL ON p.event_id = e.event_id AND p.run_id = e.run_id
        WHERE e.run_id = 'run1'
          AND (e.event_id = 'ev_0000000000000001' OR has(e.refs, 'ev_0000000000000001'))
        GROUP BY e.tick, e.event_id, e.type, e.summary, e.impact_cascade, e.impact_total
        ORDER BY e.tick""",
    "LLM tokens per run": """
        SELECT run_id, count() AS calls, countIf(cache_hit) AS cache_hits,
               sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
               round(avg(latency_ms)) AS avg_latency_ms
        FROM llm_calls FINAL
        GROUP BY run_id
        ORDER BY run_id""",
}


def sql(api: TestClient, query: str, headers: dict[str, str] | None = ADMIN) -> Any:
    return api.post("/admin/sql", json={"query": query}, headers=headers)


@pytest.fixture
def seeded(writer: ClickHouseWriter, event_factory, post_factory) -> None:
    """Two runs: events 1..4 (3 and 4 re-score 1), posts on some, LLM calls, snapshots."""
    messages: list[Any] = [
        RunCommanded(command="start", run_id="run1", seed=1),
        event_factory(1, actor="npc_a", target="npc_b"),
        event_factory(2, actor="npc_c", target=None),
        event_factory(3, actor="npc_b", target="npc_a", refs=["ev_0000000000000001"]),
        event_factory(4, actor="npc_a", target="npc_c", refs=["ev_0000000000000001"]),
        event_factory(9, run_id="run2", actor="npc_z", target=None),
        post_factory(1, channel="feed", sim_minute=30),
        post_factory(2, channel="chat", sim_minute=40, request_id="rq_2"),
        post_factory(3, channel="news", sim_minute=70, title="Big news"),
        post_factory(4, channel="feed", sim_minute=80, moderation="blocked"),
    ]
    for i, (run, hit, tin, tout) in enumerate(
        [("run1", False, 100, 20), ("run1", True, 100, 20), ("run2", False, 50, 5)]
    ):
        messages.append(
            LLMCalled(
                call_id=f"c{i}",
                run_id=run,
                request_id=f"rq_{i}",
                attempt=1,
                prompt_hash="h",
                tokens_in=tin,
                tokens_out=tout,
                latency_ms=100.0 * (i + 1),
                cache_hit=hit,
                outcome="cached" if hit else "valid",
                at_ms=1_700_000_000_000,
            )
        )
    for tick, affinity_ab, affinity_ac in ((3, 10.0, 0.0), (7, -40.0, 5.0)):
        messages.append(
            NpcSnapshotted(
                run_id="run1",
                tick=tick,
                npc_id="npc_a",
                reputation=50.0,
                relationships={"npc_b": [affinity_ab, 50.0, 10.0], "npc_c": [affinity_ac, 50, 1]},
                state_hash=f"{tick:016x}",
            )
        )
    writer.write_messages(messages)


def test_readme_queries_run_and_answer(api: TestClient, seeded: None) -> None:
    results = {}
    for name, query in README_QUERIES.items():
        resp = sql(api, query)
        assert resp.status_code == 200, (name, resp.text)
        results[name] = resp.json()

    per_hour = results["posts per channel per sim hour"]
    assert per_hour["columns"] == ["sim_hour", "channel", "posts"]
    assert per_hour["rows"] == [[0, "chat", 1], [0, "feed", 1], [1, "news", 1]]  # blocked left out

    covered = dict(map(tuple, results["most-covered NPCs"]["rows"]))
    assert covered == {"npc_a": 2, "npc_b": 2, "npc_c": 1}  # posts on events 1..3 (4's blocked)

    changed = results["relationships that changed most"]["rows"]
    assert changed[0] == ["npc_a", "npc_b", 10.0, -40.0, -50.0]
    assert changed[1][:2] == ["npc_a", "npc_c"]

    cascade = results["the cascade of a story"]["rows"]
    assert [r[1] for r in cascade] == [f"ev_{i:016x}" for i in (1, 3, 4)]

    tokens = {r[0]: r[1:] for r in results["LLM tokens per run"]["rows"]}
    assert tokens["run1"][:4] == [2, 1, 200, 40]
    assert tokens["run2"][:4] == [1, 0, 50, 5]


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO runs (run_id) VALUES ('x')",
        "DROP TABLE posts",
        "ALTER TABLE posts DELETE WHERE 1",
        "CREATE TABLE t (a Int8) ENGINE = Memory",
        "TRUNCATE TABLE posts",
        "OPTIMIZE TABLE posts FINAL",
        "KILL QUERY WHERE 1",
        "SYSTEM DROP MARK CACHE",
        "SET readonly = 0",
        "SELECT 1 INTO OUTFILE '/tmp/worldfeed-sql-test'",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS max_execution_time = 1000",
    ],
)
def test_writes_and_escapes_are_refused_with_403(api: TestClient, seeded: None, query: str) -> None:
    resp = sql(api, query)
    assert resp.status_code == 403, resp.text
    assert "read-only" in resp.json()["detail"]
    # nothing changed: the tables and rows are all there
    assert sql(api, "SELECT count() FROM posts").json()["rows"] == [[4]]
    assert sql(api, "SELECT count() FROM runs").json()["rows"] == [[1]]


def test_the_session_is_readonly_with_the_limits(api: TestClient, seeded: None) -> None:
    rows = sql(
        api,
        "SELECT name, value FROM system.settings WHERE name IN "
        "('readonly', 'max_execution_time', 'max_result_rows', 'result_overflow_mode') "
        "ORDER BY name",
    ).json()["rows"]
    assert rows == [
        ["max_execution_time", "2"],
        ["max_result_rows", str(MAX_ROWS)],
        ["readonly", "1"],
        ["result_overflow_mode", "break"],
    ]


def test_limits_time_and_rows(api: TestClient, seeded: None) -> None:
    slow = sql(api, "SELECT count() FROM numbers(100000000000)")
    assert slow.status_code == 400
    assert "limit" in slow.json()["detail"]
    big = sql(api, "SELECT number FROM numbers(1000000)")
    assert big.status_code == 200
    body = big.json()
    assert body["truncated"] is True and len(body["rows"]) == MAX_ROWS


def test_token_length_and_syntax(api: TestClient, seeded: None) -> None:
    assert sql(api, "SELECT 1", headers=None).status_code == 401
    assert sql(api, "SELECT 1", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert sql(api, "SELECT 1 " + " " * 10_001).status_code == 422
    bad = sql(api, "SELEC 1")
    assert bad.status_code == 403  # not a read kind
    typo = sql(api, "SELECT FROM WHERE")
    assert typo.status_code == 400 and "ClickHouse" in typo.json()["detail"]
    assert sql(api, "SELECT 1; SELECT 2").status_code == 400
    assert sql(api, "SELECT 1 FORMAT CSV").status_code == 400


def test_values_come_back_as_json(api: TestClient, seeded: None) -> None:
    body = sql(
        api,
        "SELECT toDateTime64('2026-01-02 03:04:05', 3, 'UTC') AS t, nan AS n, [1, 2] AS a, "
        "(1, 'x') AS tup, toDecimal64(1.5, 2) AS d",
    ).json()
    assert body["rows"] == [["2026-01-02T03:04:05", None, [1, 2], [1, "x"], "1.50"]]
    assert body["types"][2] == "Array(UInt8)"


@pytest.mark.parametrize(
    ("query", "ok"),
    [
        ("select 1;", True),
        ("  WITH 1 AS x SELECT x", True),
        ("SELECT 'DROP TABLE x; INSERT'", True),
        ("-- a comment\nSELECT 1", True),
        ("(SELECT 1) UNION ALL (SELECT 2)", True),
        ("SELECT 1; DROP TABLE posts", False),
        ("/* SELECT */ DROP TABLE posts", False),
        ("select 1 into  outfile 'x'", False),
    ],
)
def test_check_read_only(query: str, ok: bool) -> None:
    if ok:
        check_read_only(query)
    else:
        with pytest.raises(ValueError):
            check_read_only(query)


def test_a_second_concurrent_query_gets_429(api: TestClient, seeded: None) -> None:
    runner_gate: Callable[[], Any] = lambda: api.app.state.sql_runner.gate  # noqa: E731
    assert sql(api, "SELECT 1").status_code == 200
    gate = runner_gate()

    async def hold() -> None:
        await gate.acquire()

    api.portal.call(hold)  # the gate is taken, as by a query in progress
    try:
        resp = sql(api, "SELECT 1")
        assert resp.status_code == 429
    finally:
        api.portal.call(gate.release)
