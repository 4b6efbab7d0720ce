"""The batching ClickHouse sink core, independent of Kafka.

:class:`ClickHouseWriter` buffers rows per table and writes each table's buffer with
**one insert per flush** (at most ``batch_size`` rows per insert), never one insert
per message. The caller (the faust sink agent, a test, a backfill script) decides when
to flush: after :meth:`ClickHouseWriter.add` returns ``True`` (a buffer is full), or
when :meth:`ClickHouseWriter.due` says the oldest buffered row waited ``flush_s``.

Stored once, in raw rows (not only after a merge or through ``FINAL``): before each
insert the writer drops the rows that are stored already, so a message delivered twice,
in the same batch or in any later one, by this sink or another, is one row.

1. A row is identified by its table's key (the ``ReplacingMergeTree``'s ORDER BY) and,
   where the table has one, its version (:attr:`storage.schema.TableSpec.identity`): an
   event re-scored is a new version, a row of its own; the same score again is not.
2. Within a batch, the first row of each identity is kept.
3. Then the rows this writer stored recently (a bounded set of identities, ``recent``)
   are dropped without asking, and the table is asked which of the rest it holds: one
   ``SELECT`` per table per insert, each key column ``IN`` the batch's values (the
   primary index narrows it to a few granules), matched exactly here.
4. Every insert still carries ``insert_deduplication_token`` (a hash of its rows' ids,
   or its JSON lines): an insert retried after its first attempt got in but reported an
   error is dropped by the engine even if the check did not see the first attempt yet.

The check is exact as long as one writer at a time writes a given row: a Kafka
partition has one sink at a time, and a message's rows always go to the same table.
Two sinks writing the same row from different partitions at the same moment (none of the
topics does this: a re-score is a new version) could both insert it; ``FINAL`` still
collapses that.

A failed insert leaves its rows in the buffer and re-raises: call ``flush`` again
or crash and replay from the last committed offset. Commit Kafka offsets only after
``flush`` returned.

Row mapping from topic messages is :func:`rows_for` (a message may make several rows:
an NPC snapshot is one ``npc_snapshots`` row plus one ``relationship_snapshots`` row per
relationship) and :func:`row_for` for single-row messages. The tables' columns and ids
are :data:`storage.schema.TABLES`.

Tables with a :class:`~storage.schema.JsonSource` (events, the bulk of the rows) are not
mapped here: :meth:`ClickHouseWriter.add_json` buffers each message's JSON as it was
consumed and :meth:`ClickHouseWriter.write_json` inserts the lines as ``JSONEachRow``
into the landing table, which the engine maps. The caller must have validated each line
against the topic's model in strict mode, so its types are the columns'.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import operator
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from storage.clickhouse import check_identifier, run_in_thread
from storage.schema import JSON_TABLES, TABLES, TableSpec, json_table_for
from topics.codec import encode
from topics.models import (
    DeadLettered,
    DecisionResolved,
    LLMCalled,
    NpcSnapshotted,
    PostPublished,
    PostSeen,
    RunCommanded,
    SnapshotPart,
    TickCompleted,
    TickTallies,
)
from worldfeed.ids import derive_id

log = logging.getLogger(__name__)

Row = dict[str, Any]
T = TypeVar("T", Row, bytes)
Item = TypeVar("Item")
_Taken = tuple[dict[str, list[Row]], dict[str, list[bytes]]]  # detached (rows, JSON lines)
Identity = tuple[Any, ...]  # a row's key columns, then its version (TableSpec.identity)

RECENT = 20_000  # identities of rows stored recently (~300 B each): a batch or two re-read


JSON_INSERT_SETTINGS: dict[str, int] = {
    "input_format_skip_unknown_fields": 1,  # the fields a JsonSource skips
    "input_format_json_read_arrays_as_strings": 1,  # effects: the JSON array as text
    "deduplicate_blocks_in_dependent_materialized_views": 1,  # the dedup token reaches events
}


def _ms_to_datetime(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def rows_for(message: Any) -> list[tuple[str, Row]]:
    """Map a topic message to its ``(table, row)`` pairs.

    :class:`NpcSnapshotted` → one ``npc_snapshots`` row (``state`` = JSON of place,
    reputation, relationships, memories, goals and, with the feed loop, follows) plus one
    ``relationship_snapshots`` row per relationship (tags are static and live in the
    catalog, so they stay empty).
    Everything else is one row, as :func:`row_for` maps it (messages of a table filled
    from JSON excepted: see :func:`storage.schema.json_table_for`).
    """
    if isinstance(message, NpcSnapshotted):
        state = message.model_dump(
            include={"place", "reputation", "relationships", "memories", "goals"}
        )
        if message.follows is not None:
            state["follows"] = message.follows
        rows: list[tuple[str, Row]] = [
            (
                "npc_snapshots",
                {
                    "run_id": message.run_id,
                    "tick": message.tick,
                    "npc_id": message.npc_id,
                    "place": message.place,
                    "reputation": message.reputation,
                    "state": orjson.dumps(state).decode(),
                    "state_hash": message.state_hash,
                },
            )
        ]
        for other, values in sorted(message.relationships.items()):
            if len(values) != 3:
                raise ValueError(
                    f"relationship {message.npc_id}->{other} needs [affinity, trust, familiarity]"
                )
            affinity, trust, familiarity = values
            rows.append(
                (
                    "relationship_snapshots",
                    {
                        "run_id": message.run_id,
                        "tick": message.tick,
                        "npc_id": message.npc_id,
                        "other_id": other,
                        "affinity": affinity,
                        "trust": trust,
                        "familiarity": familiarity,
                        "tags": [],
                    },
                )
            )
        return rows
    return [row_for(message)]


# the clock's tick-wide tallies live in the ticks log (recovery reads them), not in the table
TICK_TALLIES = tuple(TickTallies.model_fields)


def row_for(message: Any) -> tuple[str, Row]:
    """Map a topic message to ``(table, row)``.

    Handles :class:`PostPublished` → ``posts``,
    :class:`TickCompleted` → ``ticks``, :class:`LLMCalled` → ``llm_calls``,
    :class:`DecisionResolved` → ``decisions``, :class:`PostSeen` → ``exposures``,
    :class:`DeadLettered` → ``dead_letters`` and
    :class:`RunCommanded` with ``command == "start"`` → ``runs`` (its ``created_at`` is
    the wall clock at mapping time; a redelivered start keeps one row either way).
    Anything else raises ``TypeError`` (other run commands raise ``ValueError``;
    :class:`NpcSnapshotted` makes several rows: use :func:`rows_for`;
    messages of a table filled from JSON, events, are mapped by the engine: see
    :func:`storage.schema.json_table_for`).
    """
    json_table = json_table_for(type(message))
    if json_table is not None:
        raise TypeError(
            f"{json_table} are mapped by the engine from their JSON: use "
            "ClickHouseWriter.add_json or add_message"
        )
    if isinstance(message, PostPublished):
        return "posts", message.model_dump(exclude={"kind"})
    if isinstance(message, TickCompleted):
        # the tick-wide tallies live in the ticks log (the clock recovers from it); the
        # table keeps its columns until a migration adds them
        return "ticks", message.model_dump(exclude={"kind", "injected", "focal", *TICK_TALLIES})
    if isinstance(message, DecisionResolved):
        return "decisions", message.model_dump(exclude={"kind"})
    if isinstance(message, PostSeen):
        return "exposures", message.model_dump(exclude={"kind"})
    if isinstance(message, LLMCalled):
        row = message.model_dump(exclude={"kind", "at_ms"})
        row["at"] = _ms_to_datetime(message.at_ms)
        return "llm_calls", row
    if isinstance(message, DeadLettered):
        row = message.model_dump(exclude={"kind", "at_ms"})
        row["at"] = _ms_to_datetime(message.at_ms)
        row["dl_id"] = derive_id(
            "dl",
            message.stage,
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            message.reason,
            message.at_ms,
        )
        return "dead_letters", row
    if isinstance(message, RunCommanded):
        if message.command != "start":
            raise ValueError(f"only 'start' run commands are stored, not {message.command!r}")
        return "runs", {
            "run_id": message.run_id,
            "seed": message.seed,
            "world": message.world,
            "days": message.days,
            "speed": message.speed,
            "step_minutes": message.step_minutes,
            "created_at": datetime.now(UTC),
            "start_minute": message.start_minute,
            "catalog_digest": message.catalog_digest or "",
            "parent_run": message.parent_run,
            "branch_tick": message.branch_tick,
        }
    if isinstance(message, SnapshotPart):
        return "snapshots", {
            "run_id": message.run_id,
            "tick": message.tick,
            "source": message.source,
            "shard": message.shard,
            "part": message.part,
            "parts": message.parts,
            "npcs": len(message.states),
            "bytes": len(orjson.dumps(message.states)),
            "sha256": message.sha256,
        }
    if isinstance(message, NpcSnapshotted):
        raise TypeError("NpcSnapshotted makes several rows: use rows_for")
    raise TypeError(f"no table for {type(message).__name__}")


def dedup_token(table: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Insert deduplication token of a batch: sha256 of the table and its rows' ids, in order."""
    h = hashlib.sha256(table.encode())
    ids = TABLES[table].ids
    for row in rows:
        for col in ids:
            h.update(b"\x1f")
            h.update(str(row.get(col)).encode())
        h.update(b"\x1e")
    return h.hexdigest()


def json_dedup_token(table: str, lines: Sequence[bytes]) -> str:
    """Insert deduplication token of a batch of JSON lines: sha256 of the table and the lines.

    The content, not only the ids: an event and its re-score share an id.
    """
    h = hashlib.sha256(table.encode())
    for line in lines:
        h.update(b"\x1e")
        h.update(line)
    return h.hexdigest()


def identity_of(table: str, row: Mapping[str, Any]) -> Identity:
    """A row's :attr:`~storage.schema.TableSpec.identity` values: equal ones are one row."""
    return tuple(row.get(col) for col in TABLES[table].identity)


def first_of_each(items: Sequence[Item], identities: Sequence[Identity]) -> dict[Identity, Item]:
    """The first item of each identity, in order: a message delivered twice in one batch."""
    firsts: dict[Identity, Item] = {}
    for identity, item in zip(identities, items, strict=True):
        firsts.setdefault(identity, item)
    return firsts


def _param_type(ch_type: str) -> str:
    """The type of a query parameter that holds a column's values (no LowCardinality)."""
    return re.sub(r"^LowCardinality\((.*)\)$", r"\1", ch_type)


def stored_query(
    database: str, table: str, identities: Collection[Identity]
) -> tuple[str, dict[str, Any]]:
    """``SELECT`` of the stored identities among ``identities`` (a superset: each identity
    column ``IN`` the values the batch has; match the rows exactly) and its parameters."""
    spec: TableSpec = TABLES[table]
    where, params = [], {}
    for i, col in enumerate(spec.identity):
        params[f"v{i}"] = list({k[i] for k in identities if k[i] is not None})
        where.append(f"`{col}` IN {{v{i}:Array({_param_type(spec.types[col])})}}")
    cols = ", ".join(f"`{col}`" for col in spec.identity)
    sql = f"SELECT {cols} FROM {database}.{table} WHERE {' AND '.join(where)}"  # noqa: S608 - checked identifiers, values bound
    return sql, params


class RecentlyStored:
    """Identities of rows stored recently (by this writer, or found stored), per table;
    the oldest are forgotten beyond ``size``. A redelivery soon after (a batch re-read
    after the sink started over, a message produced twice) is dropped without a query."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, Identity], None] = OrderedDict()

    def __contains__(self, item: tuple[str, Identity]) -> bool:
        return item in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, table: str, identities: Iterable[Identity]) -> None:
        """Remember ``identities`` of ``table`` as stored."""
        seen = self._seen
        for identity in identities:
            key = (table, identity)
            seen[key] = None
            seen.move_to_end(key)
        while len(seen) > self.size:
            seen.popitem(last=False)


class ClickHouseWriter:
    """Batches rows per table into few, large, idempotent inserts.

    ``add(table, row)`` / ``add_json(table, line)`` / ``add_message(msg)`` buffer;
    ``flush()`` (async, runs the blocking inserts in a thread) or ``flush_sync()`` writes
    every buffer, one insert per table per ``batch_size`` rows; ``write(table, rows)`` and
    ``write_json(table, lines)`` are one synchronous insert. Each insert first drops the
    rows stored already (see the module's docstring); ``recent`` bounds the identities
    remembered as stored.
    ``due()`` is true when a buffer is full or the oldest buffered row is ``flush_s`` old.

    Not thread-safe: use it from one task (the sink agent) or one thread. Concurrent
    ``flush()`` calls are serialised by an ``asyncio.Lock``.
    """

    def __init__(
        self,
        client: Client,
        database: str,
        *,
        batch_size: int = 5000,
        flush_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        recent: int = RECENT,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.client = client
        self.database = check_identifier(database)
        self.batch_size = batch_size
        self.flush_s = flush_s
        self._clock = clock
        self._buffers: dict[str, list[Row]] = {}
        self._lines: dict[str, list[bytes]] = {}  # JSON_TABLES: each message's JSON
        self._oldest: float | None = None
        self._flush_lock = asyncio.Lock()
        self.recently_stored = RecentlyStored(recent)
        self.rows_written = 0  # rows inserted
        self.duplicates = 0  # rows dropped as stored already (or twice in their batch)
        self.inserts = 0
        # rows inserted by the last flush (and the failed ones just before it): newly_stored
        self.inserted: set[tuple[str, Identity]] = set()
        self._failed = False

    @classmethod
    def from_settings(cls, settings: Any, client: Client, database: str) -> ClickHouseWriter:
        """A writer with ``settings.sink_batch_size`` and ``settings.sink_flush_s``."""
        return cls(
            client, database, batch_size=settings.sink_batch_size, flush_s=settings.sink_flush_s
        )

    # ---- buffering --------------------------------------------------------------------

    def add(self, table: str, row: Mapping[str, Any]) -> bool:
        """Buffer one row; returns True when that table's buffer reached ``batch_size``.

        Unknown tables or columns raise ``ValueError`` here, not at flush time.
        """
        self._check(table, row)
        return self._buffer(table, dict(row))

    def _buffer(self, table: str, row: Row) -> bool:
        return self._append(self._buffers, table, row)

    def _append(self, buffers: dict[str, list[Any]], table: str, item: Any) -> bool:
        buffer = buffers.setdefault(table, [])
        buffer.append(item)
        if self._oldest is None:
            self._oldest = self._clock()
        return len(buffer) >= self.batch_size

    def add_json(self, table: str, line: bytes) -> bool:
        """Buffer one message's JSON for a table of :data:`JSON_TABLES`; True when full.

        ``line`` is one JSON object that was validated against the topic's model in strict
        mode (the engine parses it into typed columns: a string where a number belongs
        would fail the whole insert).
        """
        if table not in JSON_TABLES:
            raise ValueError(
                f"{table!r} is not filled from JSON (JSON_TABLES: {list(JSON_TABLES)})"
            )
        return self._append(self._lines, table, line)

    def add_message(self, message: Any) -> bool:
        """Buffer a topic message's rows (:func:`rows_for`); True when a buffer is full.

        All of a message's rows are mapped and checked before any is buffered, so a
        message that cannot be stored raises and leaves nothing behind. An event is
        buffered as its JSON (:meth:`add_json`).
        """
        json_table = json_table_for(type(message))
        if json_table is not None:
            return self.add_json(json_table, encode(message))
        pairs = rows_for(message)  # fresh dicts, owned by the writer from here on
        for table, row in pairs:
            self._check(table, row)
        full = False
        for table, row in pairs:
            full = self._buffer(table, row) or full
        return full

    @staticmethod
    def _check(table: str, row: Mapping[str, Any]) -> None:
        spec = TABLES.get(table)
        if spec is None:
            raise ValueError(f"unknown table {table!r}")
        extra = row.keys() - spec.column_set
        if extra:
            raise ValueError(f"unknown columns for {table}: {sorted(extra)}")

    def pending(self) -> int:
        """Rows buffered, all tables together."""
        return sum(len(b) for b in self._buffers.values()) + sum(
            len(b) for b in self._lines.values()
        )

    def due(self) -> bool:
        """True when a buffer is full or the oldest buffered row waited ``flush_s``."""
        if self._oldest is None:
            return False
        sizes = [*map(len, self._buffers.values()), *map(len, self._lines.values())]
        if any(n >= self.batch_size for n in sizes):
            return True
        return self._clock() - self._oldest >= self.flush_s

    # ---- writing ----------------------------------------------------------------------

    def write(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert the rows of ``rows`` not stored yet into ``table`` now: one insert with a
        dedup token; returns how many were inserted (the rest were stored already)."""
        if not rows:
            return 0
        fresh = self._unstored(table, rows, [identity_of(table, row) for row in rows])
        new = list(fresh.values())
        if not new:
            return self._stored(table, fresh, len(rows))
        columns = TABLES[table].columns
        get = operator.itemgetter(*columns)
        try:  # rows from rows_for carry every column
            data = [get(row) for row in new]
        except KeyError:
            data = [[row.get(col) for col in columns] for row in new]
        self.client.insert(
            f"{self.database}.{table}",
            data,
            column_names=list(columns),
            settings={"insert_deduplication_token": dedup_token(table, new)},
        )
        return self._stored(table, fresh, len(rows))

    def write_json(self, table: str, lines: Sequence[bytes]) -> int:
        """Insert the JSON ``lines`` not stored yet into ``table`` (of :data:`JSON_TABLES`)
        now: one insert, through its landing table, with a dedup token; returns how many
        were inserted.

        The engine's JSON parser refuses what JSON parsers accept: a repeated key (the
        validator keeps the last one). When the engine refuses a batch, it is inserted
        once more re-encoded (parsed and dumped, so each key appears once), with the same
        token: the same batch.
        """
        if not lines:
            return 0
        source = TABLES[table].json
        if source is None:
            raise ValueError(f"{table!r} is not filled from JSON")
        fresh = self._unstored(table, lines, [source.key_of(line) for line in lines])
        new = list(fresh.values())
        if not new:
            return self._stored(table, fresh, len(lines))
        token = json_dedup_token(table, new)
        try:
            self._insert_json(table, new, token)
        except DatabaseError as exc:
            canonical = [orjson.dumps(orjson.loads(line)) for line in new]
            if canonical == new:
                raise
            log.warning("%s: the engine refused the JSON (%s); inserting it re-encoded", table, exc)
            self._insert_json(table, canonical, token)
        return self._stored(table, fresh, len(lines))

    def _unstored(
        self, table: str, items: Sequence[Item], identities: Sequence[Identity]
    ) -> dict[Identity, Item]:
        """The first item of each identity whose row is not stored yet: not stored recently
        by this writer, nor found in the table (one query)."""
        recent = self.recently_stored
        fresh = {
            k: item
            for k, item in first_of_each(items, identities).items()
            if (table, k) not in recent
        }
        if fresh:
            sql, params = stored_query(self.database, table, fresh)
            found = set(map(tuple, self.client.query(sql, parameters=params).result_rows))
            stored = [k for k in fresh if k in found]
            for k in stored:
                del fresh[k]
            recent.add(table, stored)
        return fresh

    def _stored(self, table: str, inserted: Mapping[Identity, Any], given: int) -> int:
        """Count an insert of ``inserted`` (none: no insert) out of ``given`` rows."""
        self.recently_stored.add(table, inserted)
        self.inserted.update((table, k) for k in inserted)
        self.inserts += bool(inserted)
        self.rows_written += len(inserted)
        self.duplicates += given - len(inserted)
        return len(inserted)

    def _insert_json(self, table: str, lines: Sequence[bytes], token: str) -> None:
        self.client.raw_insert(
            f"{self.database}.{JSON_TABLES[table]}",
            None,
            b"\n".join(lines),
            fmt="JSONEachRow",
            settings={**JSON_INSERT_SETTINGS, "insert_deduplication_token": token},
        )

    def _take(self) -> _Taken:
        """Detach the buffers so ``add`` may go on while they are written."""
        taken = (self._buffers, self._lines)
        self._buffers, self._lines, self._oldest = {}, {}, None
        return taken

    def _restore(self, unwritten: _Taken) -> None:
        """Put rows whose insert failed back in front of anything added meanwhile."""
        rows_left, lines_left = unwritten
        for table, rows in rows_left.items():
            if rows:
                self._buffers[table] = rows + self._buffers.get(table, [])
        for table, lines in lines_left.items():
            if lines:
                self._lines[table] = lines + self._lines.get(table, [])
        if self.pending() and self._oldest is None:
            self._oldest = self._clock()

    def _write_all(self, taken: _Taken) -> dict[str, int]:
        """Write detached buffers in ``batch_size`` chunks; consumed rows leave ``taken``
        (stored now or already); returns how many left, per table."""
        written: dict[str, int] = {}
        if not self._failed:  # else what the failed flush inserted counts as this one's
            self.inserted = set()
        self._failed = True
        self._write_chunks(taken[0], self.write, written)
        self._write_chunks(taken[1], self.write_json, written)
        self._failed = False
        if written:
            log.debug("flushed %s", written)
        return written

    def _write_chunks(
        self,
        buffers: dict[str, list[T]],
        write: Callable[[str, Sequence[T]], int],
        written: dict[str, int],
    ) -> None:
        for table, rows in buffers.items():
            while rows:
                batch = rows[: self.batch_size]
                write(table, batch)
                del rows[: len(batch)]
                written[table] = written.get(table, 0) + len(batch)

    def flush_sync(self) -> dict[str, int]:
        """Write every buffer (blocking); returns the rows flushed per table: inserted
        now, or dropped as stored already (:attr:`duplicates` counts those).

        Rows leave the writer only once their insert succeeded: after an exception
        the rest stays buffered, and a retry finds what a half-applied flush stored.
        """
        taken = self._take()
        try:
            return self._write_all(taken)
        finally:
            self._restore(taken)

    async def flush(self) -> dict[str, int]:
        """Write every buffer from async code (inserts run in a worker thread).

        ``add`` may be called while a flush is in flight; those rows go in the next one.
        """
        async with self._flush_lock:
            taken = self._take()
            try:
                return await run_in_thread(self._write_all, taken)
            finally:
                self._restore(taken)

    def newly_stored(self, messages: Iterable[Any]) -> list[Any]:
        """Of ``messages`` (mapped by :func:`rows_for`), the ones whose rows the last flush
        inserted (or a failed flush right before it), each once: not those it found stored
        already, so a listener sees what the table holds (the first copy of a post, not a
        later one with the same id)."""
        out, seen = [], set()
        for message in messages:
            table, row = rows_for(message)[0]
            key = (table, identity_of(table, row))
            if key in self.inserted and key not in seen:
                seen.add(key)
                out.append(message)
        return out

    def write_messages(self, messages: Iterable[Any]) -> dict[str, int]:
        """Map, buffer and flush ``messages`` synchronously (backfills, tests)."""
        for message in messages:
            self.add_message(message)
        return self.flush_sync()
