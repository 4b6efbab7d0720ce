"""Read-only SQL over the stored runs: ``POST /admin/sql`` (``worldfeed sql`` calls it).

On the embedded path the ClickHouse engine lives inside the API process, so nothing
else can open it while the stack runs; this endpoint is how a user queries it then (on
the server path ``clickhouse-client`` works as well). Every query:

* needs the admin token (it reads everything stored);
* runs on its own client whose session has ClickHouse's ``readonly = 1`` (set last, so
  the query cannot change any setting back), ``max_execution_time`` (2 s),
  ``max_result_rows`` / ``max_result_bytes`` with ``result_overflow_mode = 'break'``
  and ``max_threads = 1`` (it must not starve the sink and the feed of the one engine);
* is one statement of a read kind (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)
  without ``INTO OUTFILE`` or ``FORMAT``: chDB still writes ``INTO OUTFILE`` files and
  runs ``KILL QUERY`` under ``readonly = 1``, so the statement is checked first;
* runs one at a time (a second concurrent query gets 429).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import ipaddress
import math
import re
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SettingsDep, StorageDep, require_admin
from storage import connect, run_in_thread
from storage.clickhouse import chdb_path_of, is_embedded

router = APIRouter(prefix="/admin/sql", tags=["sql"], dependencies=[Depends(require_admin)])

MAX_QUERY_CHARS = 10_000
MAX_ROWS = 10_000
MAX_BYTES = 16 * 1024 * 1024
MAX_EXECUTION_S = 2
# applied in this order: readonly last, or it would forbid setting the limits
LIMITS: dict[str, Any] = {
    "max_execution_time": MAX_EXECUTION_S,
    "max_result_rows": MAX_ROWS,
    "max_result_bytes": MAX_BYTES,
    "result_overflow_mode": "break",
    "max_threads": 1,
    "readonly": 1,
}
READ_KINDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
_LITERALS = re.compile(
    r"'(?:[^'\\]|\\.|'')*'"  # 'string'
    r'|"(?:[^"\\]|\\.)*"'  # "identifier"
    r"|`(?:[^`\\]|\\.)*`"  # `identifier`
    r"|--[^\n]*|#[^\n]*"  # line comments
    r"|/\*.*?\*/",  # block comments
    re.DOTALL,
)
_READONLY = 164
_TIMEOUT = 159


class ReadOnlyViolation(ValueError):
    """A statement that is not a single read (a write, DDL, KILL, INTO OUTFILE ...)."""


class SqlQuery(BaseModel):
    """A query to run read-only."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="One read statement: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN or EXISTS. "
        "Unqualified table names are the API's database (posts, events, llm_calls ...).",
    )


class SqlResultPublic(BaseModel):
    """A query's result: column names and types, rows as JSON values."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description=f"The result reached {MAX_ROWS} rows or {MAX_BYTES} bytes.")
    elapsed_ms: float


def check_read_only(sql: str) -> str:
    """Return ``sql`` without a trailing ``;`` if it is one read statement, else raise.

    :class:`ReadOnlyViolation` for a statement that is not a read; ``ValueError`` for
    several statements or a ``FORMAT`` clause (the result format is the caller's choice).
    String literals, quoted identifiers and comments are blanked before the checks, so
    ``WHERE body = 'DROP TABLE'`` is a read.
    """
    text = sql.strip().rstrip(";").strip()
    bare = _LITERALS.sub(lambda m: " " if m.group(0)[0] in "-#/" else "''", text)
    if ";" in bare:
        raise ValueError("one statement per query (found ';' between statements)")
    words = bare.split()
    first = words[0].upper() if words else ""
    if first.startswith("("):
        first = first.lstrip("(")  # (SELECT ...) UNION ...
    if first not in READ_KINDS:
        raise ReadOnlyViolation(
            f"read-only: {first or 'an empty query'!s} is not allowed; "
            f"a query starts with one of {', '.join(READ_KINDS)}"
        )
    upper = " ".join(words).upper()
    if re.search(r"\bINTO\s+OUTFILE\b", upper):
        raise ReadOnlyViolation("read-only: INTO OUTFILE writes a file")
    if re.search(r"\bFORMAT\s+\w+\s*$", upper):
        raise ValueError("leave out FORMAT: `worldfeed sql --format table|csv|json` picks it")
    return text


def jsonable(value: Any) -> Any:
    """A ClickHouse value as JSON: dates as ISO text, NaN/inf as null, bytes as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(
        value, decimal.Decimal | uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address
    ):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


class ReadOnlyRunner:
    """One client with the read-only session settings, and the one-at-a-time gate."""

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn = dsn
        self.database = database
        self.gate = asyncio.Lock()
        self._client: Client | None = None
        self._per_query: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _connect(self) -> Client:
        with self._lock:
            if self._client is None:
                if is_embedded(self.dsn):
                    # its own handle on the engine: session settings and USE stay its own
                    self._client = clickhouse_connect.get_client(
                        interface="chdb",
                        path=chdb_path_of(self.dsn),
                        database=self.database,
                        settings=LIMITS,
                    )
                else:  # a server: connect() makes a fresh client; settings go per query
                    self._client = connect(self.dsn)
                    self._client.database = self.database
                    self._per_query = dict(LIMITS)
            return self._client

    def run(self, sql: str) -> SqlResultPublic:
        """Run one checked read statement; raise ClickHouseError as the engine does."""
        client = self._connect()
        t0 = time.perf_counter()
        result = client.query(sql, settings=self._per_query or None)
        rows = result.result_rows
        truncated = len(rows) >= MAX_ROWS
        return SqlResultPublic(
            columns=list(result.column_names),
            types=[t.name for t in result.column_types],
            rows=[[jsonable(v) for v in row] for row in rows[:MAX_ROWS]],
            truncated=truncated,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 2),
        )


def _runner(request: Request, dsn: str, database: str) -> ReadOnlyRunner:
    runner: ReadOnlyRunner | None = getattr(request.app.state, "sql_runner", None)
    if runner is None or runner.database != database:
        runner = ReadOnlyRunner(dsn, database)
        request.app.state.sql_runner = runner
    return runner


def _engine_error(exc: ClickHouseError) -> HTTPException:
    text = str(exc)
    code = re.search(r"Code: (\d+)", text)
    number = int(code.group(1)) if code else None
    message = text.split("DB::Exception:")[-1].split("(version")[0].strip() or text[:500]
    if number == _READONLY:
        return HTTPException(status_code=403, detail=f"read-only: {message}")
    if number == _TIMEOUT:
        return HTTPException(
            status_code=400, detail=f"the query ran past the {MAX_EXECUTION_S} s limit: {message}"
        )
    return HTTPException(status_code=400, detail=f"ClickHouse: {message[:2000]}")


@router.post(
    "",
    response_model=SqlResultPublic,
    responses={
        400: {"description": "Not valid SQL, several statements, or over the time limit"},
        401: {"description": "No admin token"},
        403: {"description": "Wrong admin token, or not a read statement"},
        429: {"description": "Another SQL query is running"},
    },
)
async def run_sql(
    body: SqlQuery, request: Request, storage: StorageDep, settings: SettingsDep
) -> SqlResultPublic:
    """Run one read-only statement (readonly=1, 2 s, 10k rows, 16 MiB); 403 for a write."""
    try:
        sql = check_read_only(body.query)
    except ReadOnlyViolation as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    runner = _runner(request, settings.clickhouse_dsn, storage.database)
    if runner.gate.locked():
        raise HTTPException(status_code=429, detail="another SQL query is running; try again")
    async with runner.gate:
        try:
            return await run_in_thread(runner.run, sql)
        except ClickHouseError as exc:
            raise _engine_error(exc) from exc
