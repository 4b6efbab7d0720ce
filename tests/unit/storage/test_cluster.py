"""Migrations rendered for a ClickHouse cluster (storage/cluster.py), checked on chDB.

chDB cannot run ``ON CLUSTER`` (no distributed DDL queue) nor alter a Replicated table
without a real Keeper, so the checks are: every statement of both renderings parses
(``formatQuery``); the Replicated tables are created for real on a chDB configured as
one node of a cluster with the in-memory test Keeper; and the whole rendering runs with
the Replicated engines swapped for their single-server twins, after which every
Distributed and local table has the columns the spec (storage/schema.py) says, and the
writer and the feed query work through the Distributed tables. The
single-server rendering is the one the other storage tests run, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from storage.cluster import ClusterRenderer, ClusterRenderError, bookkeeping, render_cluster
from storage.migrate import load_migrations, rendered
from storage.schema import JSON_TABLES, TABLES

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "fixtures" / "chdb_cluster.py"
CLUSTER = "wf_cluster"
DB = "wf"
#: sha256 of the single-server statements of migrations 0001-0008 (and the bookkeeping),
#: as applied before the cluster rendering existed: a change here changes every install.
SINGLE_SERVER_0001_0008 = "92ec81976c2a6f9c06b432490739f59273979fd8f2ef12da4db0992fc8c73613"


def _cluster_statements() -> list[str]:
    return bookkeeping(DB, CLUSTER) + [
        s for sql in rendered(load_migrations(), DB, CLUSTER) for s in sql
    ]


def _single_statements() -> list[str]:
    return bookkeeping(DB, None) + [s for sql in rendered(load_migrations(), DB) for s in sql]


def test_the_single_server_rendering_is_unchanged() -> None:
    migrations = [m for m in load_migrations() if m.version <= 8]
    assert rendered(migrations, DB) == [m.statements(DB) for m in migrations]
    text = "\n;\n".join(
        bookkeeping(DB, None) + [s for sql in rendered(migrations, DB) for s in sql]
    )
    assert hashlib.sha256(text.encode()).hexdigest() == SINGLE_SERVER_0001_0008


def test_every_statement_of_both_renderings_parses(ch_client: Client) -> None:
    bad = {}
    for statement in _single_statements() + _cluster_statements():
        try:
            formatted = ch_client.command(
                "SELECT formatQuery({q:String})", parameters={"q": statement}
            )
        except Exception as exc:  # noqa: BLE001 - collected, shown together
            bad[statement[:120]] = str(exc)[:300]
            continue
        if " ON CLUSTER " in statement:  # the parser kept the clause
            assert f"ON CLUSTER {CLUSTER}" in str(formatted)
    assert bad == {}


def test_every_cluster_ddl_statement_is_on_the_cluster() -> None:
    for statement in _cluster_statements():
        if not statement.startswith("INSERT"):
            assert f" ON CLUSTER {CLUSTER}" in statement, statement[:120]


def test_merge_trees_become_replicated_local_tables_under_distributed_ones() -> None:
    statements = _cluster_statements()
    creates = "\n".join(s for s in statements if s.startswith("CREATE TABLE"))
    for table in TABLES:
        assert f"{DB}.{table}_local ON CLUSTER" in creates, table
        assert (
            f"CREATE TABLE IF NOT EXISTS {DB}.{table} ON CLUSTER {CLUSTER} AS {DB}.{table}_local\n"
            f"ENGINE = Distributed({CLUSTER}, {DB}, {table}_local, cityHash64("
        ) in creates, table
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/" in creates
    )
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
        "'{replica}', score_version)"
    ) in creates  # the engine's own argument follows the replica's
    assert not re.search(r"ENGINE = (Replacing)?MergeTree", creates)
    # the insert points store nothing and stay plain; their views write to the Distributed
    for table, landing in JSON_TABLES.items():
        assert f"{DB}.{landing} ON CLUSTER {CLUSTER}" in creates
        assert any(f"_mv ON CLUSTER {CLUSTER} TO {DB}.{table} AS" in s for s in statements)


def test_the_sharding_key_is_the_deduplication_key() -> None:
    """Copies of a row share its ORDER BY key, so they meet on one shard and collapse."""
    created = ClusterRenderer(CLUSTER, DB).render(
        "CREATE TABLE IF NOT EXISTS wf.t (a String, b UInt8) ENGINE = ReplacingMergeTree "
        "ORDER BY (a, b) SETTINGS index_granularity = 1024"
    )
    assert created[1].endswith(f"Distributed({CLUSTER}, wf, t_local, cityHash64(a, b))")
    assert "ORDER BY (a, b) SETTINGS index_granularity = 1024" in created[0]


def test_alters_of_columns_go_to_both_tables_and_of_layout_to_the_local_one() -> None:
    r = ClusterRenderer(CLUSTER, DB)
    r.render("CREATE TABLE IF NOT EXISTS wf.t (a String) ENGINE = MergeTree ORDER BY a")
    on = f"ON CLUSTER {CLUSTER}"
    assert r.render("ALTER TABLE wf.t ADD COLUMN IF NOT EXISTS b DateTime64(3, 'UTC')") == [
        f"ALTER TABLE wf.t_local {on} ADD COLUMN IF NOT EXISTS b DateTime64(3, 'UTC')",
        f"ALTER TABLE wf.t {on} ADD COLUMN IF NOT EXISTS b DateTime64(3, 'UTC')",
    ]
    assert r.render("ALTER TABLE wf.t ADD PROJECTION p (SELECT * ORDER BY b)") == [
        f"ALTER TABLE wf.t_local {on} ADD PROJECTION p (SELECT * ORDER BY b)"
    ]
    with pytest.raises(ClusterRenderError, match="one operation"):
        r.render("ALTER TABLE wf.t ADD COLUMN c UInt8, ADD COLUMN d UInt8")


def test_a_statement_the_rules_do_not_cover_is_refused_naming_it() -> None:
    for sql in (
        "OPTIMIZE TABLE wf.t FINAL",
        "CREATE TABLE IF NOT EXISTS wf.t (a String) ENGINE = ReplicatedMergeTree ORDER BY a",
        "CREATE VIEW wf.v AS SELECT 1",
    ):
        with pytest.raises(ClusterRenderError):
            render_cluster([("0099_x.sql", [sql])], CLUSTER, DB)
    with pytest.raises(ClusterRenderError, match="0099_x.sql #1"):
        render_cluster([("0099_x.sql", ["OPTIMIZE TABLE wf.t FINAL"])], CLUSTER, DB)


def _run_on_chdb(mode: str, statements: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), CLUSTER, mode],
        input=json.dumps([DB, statements]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert proc.stdout, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.slow
def test_the_replicated_tables_are_created_on_a_cluster_node() -> None:
    """chDB with the test Keeper creates every Replicated table (its engine arguments and
    macros checked), renames and drops them, and every Distributed one over them; it
    cannot alter them (no real Keeper: the replicas stay read-only), nor insert."""
    ddl = [s for s in _cluster_statements() if not s.startswith(("ALTER", "INSERT"))]
    result = _run_on_chdb("keeper", ddl)
    assert result["failed"] == []
    engines = result["tables"]
    for table in TABLES:
        assert engines[f"{table}_local"] == "ReplicatedReplacingMergeTree", table
        assert engines[table] == "Distributed", table
    assert engines["schema_migrations"] == "ReplicatedReplacingMergeTree"


@pytest.mark.slow
def test_the_cluster_rendering_runs_and_builds_the_specs_tables() -> None:
    """Every statement runs (Replicated engines swapped for their twins); then each
    Distributed table and the local table under it have the spec's columns, and the writer
    and the feed work through them (one shard here: the routing is the engine's)."""
    result = _run_on_chdb("twin", _cluster_statements())
    assert result["failed"] == []
    columns = {t: [(n, ty) for n, ty, _ in cols] for t, cols in result["columns"].items()}
    landing = set(JSON_TABLES.values())
    expected = (
        {"schema_migrations"}
        | set(TABLES)
        | {f"{t}_local" for t in TABLES}
        | landing
        | {f"{n}_mv" for n in landing}
    )
    assert set(result["tables"]) == expected
    for table, spec in TABLES.items():
        want = list(spec.written + spec.filled)
        assert columns[table] == want, table
        assert columns[f"{table}_local"] == want, table
        assert result["tables"][table] == "Distributed"
    # the sink's writer and the API's feed on them: each message written twice (a
    # redelivery) is one row under FINAL and one post in the feed
    smoke = result["smoke"]
    assert (smoke["posts"], smoke["events"], smoke["runs"]) == (30, 10, 1)
    assert smoke["feed"] == [f"po_{i:016x}" for i in reversed(range(30))]
    assert smoke["feed_chat"] == 10
