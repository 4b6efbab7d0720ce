"""Connecting to ClickHouse: the embedded chDB engine or a ClickHouse server.

A DSN picks the engine:

* ``chdb:///abs/path`` (or ``chdb://`` + path, ``chdb:///abs/path?database=name``): the
  real ClickHouse engine in-process through clickhouse-connect's chDB backend. chDB
  hosts **one engine per process**, so :func:`connect` returns the same client for the
  same path within a process (module-level cache, guarded by a lock). In embedded mode
  the sink and the API therefore share one client, and one engine, when they run in one
  process; running them in two processes needs a ClickHouse server.
* ``http://user:pass@host:8123/dbname`` (or ``https://``): a ClickHouse server.

The database is part of the DSN (the path of an http DSN, ``?database=`` for chdb),
``worldfeed`` by default; :func:`database_of` extracts it. Clients are created
*without* a default database (it may not exist before :func:`storage.migrate`), so all
SQL in :mod:`storage` names tables fully qualified (``db.table``).

Every client call is blocking (chDB runs the query on the calling thread); async code
goes through :func:`run_in_thread`, the one place that hops to a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "worldfeed"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

_lock = threading.Lock()
_embedded: dict[str, Client] = {}

T = TypeVar("T")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier (database names are spliced into SQL)."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid ClickHouse identifier: {name!r}")
    return name


def is_embedded(dsn: str) -> bool:
    """True for a ``chdb:`` DSN (the in-process engine)."""
    return dsn.startswith("chdb:")


def chdb_path_of(dsn: str) -> str:
    """Absolute, normalised engine path of a ``chdb:`` DSN (``chdb:///p`` or ``chdb://p``)."""
    rest = dsn[len("chdb:") :].split("?", 1)[0]
    if rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise ValueError(f"chdb DSN without a path: {dsn!r}")
    return os.path.realpath(unquote(rest))


def database_of(dsn: str) -> str:
    """Database of a DSN: ``?database=`` for chdb, the URL path for http; else ``worldfeed``."""
    if is_embedded(dsn):
        query = dsn.split("?", 1)[1] if "?" in dsn else ""
        name = parse_qs(query).get("database", [DEFAULT_DATABASE])[0]
    else:
        path = urlparse(dsn).path.strip("/")
        name = unquote(path.split("/")[0]) if path else DEFAULT_DATABASE
    return check_identifier(name)


def connect(dsn: str) -> Client:
    """A clickhouse-connect client for ``dsn``; the same client for the same chDB path.

    Thread-safe. The chDB client serialises calls on its handle with its own lock, so
    sharing it between the sink and the API threads is safe (queries queue, they do not
    interleave). A second, different chDB path in the same process raises
    ``ProgrammingError`` from clickhouse-connect: one engine per process.
    """
    if is_embedded(dsn):
        path = chdb_path_of(dsn)
        with _lock:
            client = _embedded.get(path)
            if client is None:
                os.makedirs(path, exist_ok=True)
                client = clickhouse_connect.get_client(interface="chdb", path=path)
                _embedded[path] = client
                log.info("embedded ClickHouse (chDB %s) at %s", client.server_version, path)
            return client
    parsed = urlparse(dsn)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"unsupported ClickHouse DSN scheme {parsed.scheme!r} (chdb, http, https)")
    # The database is deliberately left out: it may not exist before migrate().
    return clickhouse_connect.get_client(
        interface=parsed.scheme,
        host=parsed.hostname or "localhost",
        port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
        username=unquote(parsed.username) if parsed.username else "default",
        password=unquote(parsed.password) if parsed.password else "",
        autogenerate_session_id=False,
    )


def close_all() -> None:
    """Close every cached embedded client (end of process or test session)."""
    with _lock:
        for client in _embedded.values():
            client.close()
        _embedded.clear()


async def run_in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a blocking storage call (``fn(*args, **kwargs)``) in the default thread executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))
