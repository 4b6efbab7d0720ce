"""Versioned DDL migrations, applied in order and recorded in ``schema_migrations``.

Migrations are the files ``storage/migrations/NNNN_name.sql``; ``NNNN`` is the version.
A file holds one or more statements separated by ``;`` at the end of a line (no ``;``
inside string literals, please) and names tables as ``{database}.table``. Applied
versions are recorded in ``{database}.schema_migrations`` with the file's checksum;
:func:`migrate` applies only the missing ones, so running it twice is a no-op. Never
edit an applied migration: add a new file. :func:`migrate` refuses to start when an
applied migration's file no longer has the checksum recorded when it was applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from storage.clickhouse import check_identifier
from storage.cluster import bookkeeping, render_cluster

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


class MigrationEdited(RuntimeError):
    """An applied migration's file changed since it was applied."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        """The file's name, ``NNNN_name.sql``."""
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        """sha256 of the file's text, recorded to spot edited migrations."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The file's statements with ``{database}`` filled in, comments dropped."""
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        ).replace("{database}", check_identifier(database))
        return [s.strip() for s in _STATEMENT_END.split(text) if s.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in ``directory``, sorted by version; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name must be NNNN_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations with version {version}")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def applied_versions(client: Client, database: str) -> set[int]:
    """Versions recorded in ``schema_migrations`` (empty if the table does not exist yet)."""
    return set(applied_checksums(client, database))


def applied_checksums(client: Client, database: str) -> dict[int, str]:
    """Version -> checksum recorded when it was applied (empty if there is no table yet)."""
    db = check_identifier(database)
    exists = client.command(
        "SELECT count() FROM system.tables WHERE database = {db:String} "
        "AND name = 'schema_migrations'",
        parameters={"db": db},
    )
    if not int(exists):  # type: ignore[arg-type]  # command returns a scalar here
        return {}
    # the latest row of a version: racing start-ups may both have recorded it
    result = client.query(
        f"SELECT version, argMax(checksum, applied_at) FROM {db}.schema_migrations "  # noqa: S608 - checked identifiers, values bound
        "GROUP BY version"
    )
    return {int(version): str(checksum) for version, checksum in result.result_rows}


def check_unchanged(migrations: list[Migration], recorded: dict[int, str]) -> None:
    """Refuse applied migrations whose file's checksum differs from the recorded one."""
    edited = [m.filename for m in migrations if recorded.get(m.version, m.checksum) != m.checksum]
    if edited:
        raise MigrationEdited(
            f"applied migration(s) edited since they were applied: {', '.join(edited)} "
            f"(checksum differs from schema_migrations); restore the file(s) and add the "
            f"change as a new migration"
        )


def rendered(
    migrations: list[Migration], database: str, cluster: str | None = None
) -> list[list[str]]:
    """Each migration's statements: as written for one server (``cluster`` None), or
    rendered for ``cluster`` (:mod:`storage.cluster`: ``ON CLUSTER``, Replicated and
    Distributed tables). The files and their checksums are the same either way."""
    plain = [m.statements(database) for m in migrations]
    if cluster is None:
        return plain
    return render_cluster(
        ((m.filename, stmts) for m, stmts in zip(migrations, plain, strict=True)),
        cluster,
        database,
    )


def migrate(
    client: Client,
    database: str,
    directory: Path = MIGRATIONS_DIR,
    cluster: str | None = None,
) -> list[int]:
    """Create ``database`` if needed and apply the missing migrations in order.

    Returns the versions applied by this call (empty when already up to date).
    Idempotent; every statement is ``IF NOT EXISTS`` as well, so two processes racing
    at start-up both succeed. Raises :class:`MigrationEdited` (naming the files) before
    applying anything when an applied migration's file has changed. With ``cluster``
    the statements are rendered for that ClickHouse cluster (:func:`rendered`).
    """
    db = check_identifier(database)
    for statement in bookkeeping(db, cluster):
        client.command(statement)
    done = applied_checksums(client, db)
    migrations = load_migrations(directory)
    check_unchanged(migrations, done)
    statements = rendered(migrations, db, cluster)  # all: the cluster rendering needs them
    applied: list[int] = []
    for migration, sql in zip(migrations, statements, strict=True):
        if migration.version in done:
            continue
        for statement in sql:
            client.command(statement)
        client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        log.info("applied migration %04d_%s to %s", migration.version, migration.name, db)
        applied.append(migration.version)
    return applied
