"""ClickHouse storage: connection, versioned migrations, the batching writer, reads.

In embedded mode (``chdb:`` DSN) there is one engine per process, shared by the sink
and the API through :func:`connect`'s per-path cache.
"""

from storage.clickhouse import close_all, connect, database_of, is_embedded, run_in_thread
from storage.migrate import applied_versions, load_migrations, migrate
from storage.schema import TABLES, json_table_for
from storage.writer import ClickHouseWriter, dedup_token, row_for, rows_for

__all__ = [
    "TABLES",
    "ClickHouseWriter",
    "applied_versions",
    "close_all",
    "connect",
    "database_of",
    "dedup_token",
    "is_embedded",
    "json_table_for",
    "load_migrations",
    "migrate",
    "row_for",
    "rows_for",
    "run_in_thread",
]
