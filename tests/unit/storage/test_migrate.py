"""storage.migrate on the real engine (chDB): order, idempotency, and the schema it builds
equals storage.schema, the spec the writer and the reads use."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from storage import applied_versions, load_migrations, migrate
from storage.migrate import Migration, MigrationEdited
from storage.schema import JSON_TABLES, TABLES

_FILLED_KINDS = ("DEFAULT", "MATERIALIZED")


@pytest.fixture
def bare_database(ch_client: Client) -> Iterator[str]:
    """A database name nothing has migrated yet; dropped after the test."""
    name = f"wf_test_{uuid.uuid4().hex[:12]}"
    yield name
    ch_client.command(f"DROP DATABASE IF EXISTS {name}")


def _columns(client: Client, database: str) -> dict[str, list[tuple[str, str, str]]]:
    """``table -> [(name, type, default_kind)]`` in position order, from system.columns."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for table, name, type_, kind in client.query(
        "SELECT table, name, type, default_kind FROM system.columns "
        "WHERE database = {db:String} ORDER BY table, position",
        parameters={"db": database},
    ).result_rows:
        out.setdefault(table, []).append((name, type_, kind))
    return out


def _diff(engine: list[tuple[str, str]], spec: list[tuple[str, str]]) -> dict[str, object]:
    """What differs between the engine's (name, type) list and the spec's; {} when equal."""
    if engine == spec:
        return {}
    only_engine = [c for c in engine if c not in spec]
    only_spec = [c for c in spec if c not in engine]
    if only_engine or only_spec:
        return {"engine, not spec": only_engine, "spec, not engine": only_spec}
    return {"order: engine": [n for n, _ in engine], "spec": [n for n, _ in spec]}


def test_columns_after_every_migration_equal_the_spec(ch_client: Client, database: str) -> None:
    """The drift guard: a migration that changes a table needs the same change in the spec."""
    engine = _columns(ch_client, database)
    drift: dict[str, object] = {}
    for table, spec in TABLES.items():
        got = [(name, type_) for name, type_, _ in engine.get(table, [])]
        if diff := _diff(got, list(spec.written + spec.filled)):
            drift[table] = diff
        kinds = {name: kind for name, _, kind in engine.get(table, [])}
        written = [name for name, _ in spec.filled if kinds.get(name) not in _FILLED_KINDS]
        if written:
            drift[f"{table}: spec says filled, engine has no default"] = written
        if spec.json is not None:
            landing = [(name, type_) for name, type_, _ in engine.get(spec.json.landing, [])]
            if diff := _diff(landing, list(spec.json.landing_columns)):
                drift[spec.json.landing] = diff
    assert drift == {}


def test_keys_and_versions_after_every_migration_equal_the_spec(
    ch_client: Client, database: str
) -> None:
    """The writer drops a row whose key and version are stored already: they must be the
    ReplacingMergeTree's ORDER BY and version column."""
    engine = {
        name: (key, full)
        for name, key, full in ch_client.query(
            "SELECT name, sorting_key, engine_full FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    }
    got, want = {}, {}
    for table, spec in TABLES.items():
        key, full = engine[table]
        version = re.match(r"ReplacingMergeTree(?:\((\w*)\))?", full)
        got[table] = (key, version and (version.group(1) or None))
        want[table] = (", ".join(spec.key), spec.version)
    assert got == want


def test_migrations_apply_in_order_once_and_build_only_the_specs_tables(
    ch_client: Client, bare_database: str
) -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    assert migrate(ch_client, bare_database) == versions
    assert migrate(ch_client, bare_database) == []
    assert applied_versions(ch_client, bare_database) == set(versions)
    recorded = ch_client.query(
        f"SELECT version, name, checksum FROM {bare_database}.schema_migrations ORDER BY version"  # noqa: S608 - test identifier
    ).result_rows
    assert recorded == [(m.version, m.name, m.checksum) for m in load_migrations()]
    engines: dict[str, str] = {
        name: engine
        for name, engine in ch_client.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String}",
            parameters={"db": bare_database},
        ).result_rows
    }
    landing = set(JSON_TABLES.values())
    views = {f"{name}_mv" for name in landing}
    assert set(engines) == set(TABLES) | {"schema_migrations"} | landing | views
    assert {engines[t] for t in TABLES} == {"ReplacingMergeTree"}
    assert {engines[t] for t in landing} == {"Null"}  # stores nothing: its view does
    assert {engines[t] for t in views} == {"MaterializedView"}


def test_a_new_migration_is_applied_alone_after_the_ones_before_it(
    ch_client: Client, bare_database: str, tmp_path: Path
) -> None:
    # each file needs the one before it, so a wrong order fails
    files = {
        "0002_add_b.sql": "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS b UInt8;\n",
        "0001_init.sql": "CREATE TABLE IF NOT EXISTS {database}.t (a UInt8) ENGINE = Memory;\n",
        "0010_add_c.sql": (
            "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS c UInt8 AFTER b;\n"
            "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS d UInt8 AFTER c;\n"
        ),
    }
    for name, sql in list(files.items())[:2]:
        (tmp_path / name).write_text(sql)
    assert migrate(ch_client, bare_database, tmp_path) == [1, 2]
    (tmp_path / "0010_add_c.sql").write_text(files["0010_add_c.sql"])
    assert migrate(ch_client, bare_database, tmp_path) == [10]
    assert migrate(ch_client, bare_database, tmp_path) == []
    names = [c[0] for c in _columns(ch_client, bare_database)["t"]]
    assert names == ["a", "b", "c", "d"]


def test_an_edited_applied_migration_stops_start_up_naming_its_file(
    ch_client: Client, bare_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_init.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {database}.t (a UInt8) ENGINE = Memory;\n"
    )
    (tmp_path / "0002_add_b.sql").write_text(
        "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS b UInt8;\n"
    )
    assert migrate(ch_client, bare_database, tmp_path) == [1, 2]
    (tmp_path / "0002_add_b.sql").write_text(
        "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS b UInt16;\n"
    )
    (tmp_path / "0003_add_c.sql").write_text(
        "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS c UInt8;\n"
    )
    with pytest.raises(MigrationEdited, match=r"0002_add_b\.sql") as refused:
        migrate(ch_client, bare_database, tmp_path)
    assert "0001_init.sql" not in str(refused.value)
    assert applied_versions(ch_client, bare_database) == {1, 2}  # nothing applied after it
    assert [c[0] for c in _columns(ch_client, bare_database)["t"]] == ["a", "b"]
    (tmp_path / "0002_add_b.sql").write_text(
        "ALTER TABLE {database}.t ADD COLUMN IF NOT EXISTS b UInt8;\n"
    )
    assert migrate(ch_client, bare_database, tmp_path) == [3]  # restored: starts again


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"0001_a.sql": "", "1_b.sql": ""}, "NNNN_name.sql"),
        ({"0001_a.sql": "", "0001_b.sql": ""}, "two migrations with version 1"),
    ],
)
def test_load_migrations_refuses_bad_names_and_repeated_versions(
    tmp_path: Path, files: dict[str, str], error: str
) -> None:
    for name, sql in files.items():
        (tmp_path / name).write_text(sql)
    with pytest.raises(ValueError, match=error):
        load_migrations(tmp_path)


def test_statements_name_the_database_and_drop_comments() -> None:
    migration = Migration(
        7,
        "x",
        "-- a comment; not a statement end;\nCREATE TABLE {database}.a (x UInt8);\n"
        "  -- indented comment\nDROP TABLE {database}.b;\n",
    )
    assert migration.statements("wf_1") == ["CREATE TABLE wf_1.a (x UInt8)", "DROP TABLE wf_1.b"]
    with pytest.raises(ValueError, match="identifier"):
        migration.statements("wf; DROP DATABASE x")
