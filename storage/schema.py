"""The tables as the writer and the reads see them: one spec per table, with types.

The migrations (``storage/migrations``) are the DDL that deployed databases apply in
order, and they must stay; this module is the Python side's one statement of what they
produce. The writer inserts :attr:`TableSpec.columns`, the reads select them, and
``tests/unit/storage/test_migrate.py`` checks that the engine's columns after every
migration (``system.columns``: names, order, types) equal these specs, so a migration
and this module cannot drift apart silently. A new migration that changes a table
changes its spec here in the same commit.

Where a table is filled from a message's JSON rather than from rows mapped in Python
(events: the engine parses the JSON it is given; see :class:`JsonSource`), that is
stated here too, once: the writer and the sink ask :func:`json_table_for`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from topics.models import EventHappened

Columns = tuple[tuple[str, str], ...]  # (name, ClickHouse type as system.columns spells it)


@dataclass(frozen=True)
class JsonSource:
    """How the engine fills a table from a topic message's JSON (``JSONEachRow``).

    Lines go into ``landing``, a ``Null`` table whose materialized view maps them to the
    table's columns (migration 0006). The engine parses the JSON beside the Python
    consumer (chDB releases the GIL), where mapping and encoding rows in Python cost
    ~10 us per event. ``landing_columns`` are the model's fields less ``skipped`` (fields
    the table does not keep, dropped at insert): a field renamed in the model would
    otherwise be skipped silently and stored as its default.
    """

    model: type[Any]
    landing: str
    landing_columns: Columns
    skipped: frozenset[str]
    # a line's row identity, as the table's key columns and version would hold it
    key_of: Callable[[bytes], tuple[Any, ...]]


@dataclass(frozen=True)
class TableSpec:
    """One table: the columns the writer sends, the ones the engine fills, the row's ids.

    A row is stored once when no other row has its ``key`` (the ORDER BY) and, in a
    table with a ``version``, its version: the writer drops the rest before inserting
    (:class:`storage.writer.ClickHouseWriter`). A new version of a row (an event
    re-scored) is a row of its own until a merge keeps the highest.
    """

    written: Columns  # in insert order; the reads select these
    ids: tuple[str, ...]  # a row's derived ids: the insert dedup token hashes them
    key: tuple[str, ...]  # ORDER BY: what the ReplacingMergeTree collapses rows on
    filled: Columns = ()  # DEFAULT / MATERIALIZED columns the writer never sends
    json: JsonSource | None = None
    version: str | None = None  # the ReplacingMergeTree's version column, if it has one

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """Names of the written columns, in insert order."""
        return tuple(name for name, _ in self.written)

    @functools.cached_property
    def identity(self) -> tuple[str, ...]:
        """The columns that say whether a row is stored already: the key, then the version."""
        return self.key + ((self.version,) if self.version else ())

    @functools.cached_property
    def column_set(self) -> frozenset[str]:
        """The written columns, for checking a row's keys."""
        return frozenset(self.columns)

    @functools.cached_property
    def types(self) -> dict[str, str]:
        """Every column's ClickHouse type, written and filled."""
        return dict(self.written + self.filled)


def score_version(cascade: float | None) -> int:
    """``events.score_version`` of a row with this ``impact.cascade``, as migration 0005
    computes it: ``toUInt32(round(ifNull(impact_cascade, 0) * 10000))`` (both round half
    to even)."""
    return round((cascade or 0.0) * 10000)


class _Impact(msgspec.Struct):
    cascade: float | None = None


class _EventKey(msgspec.Struct):
    run_id: str
    tick: int
    event_id: str
    impact: _Impact | None = None


_event_key_decoder = msgspec.json.Decoder(_EventKey)  # reads 4 fields, skips the rest


def _event_key(line: bytes) -> tuple[str, int, str, int]:
    """``(run_id, tick, event_id, score_version)`` of an event's JSON."""
    k = _event_key_decoder.decode(line)
    return k.run_id, k.tick, k.event_id, score_version(k.impact.cascade if k.impact else None)


_EVENT_JSON = JsonSource(
    model=EventHappened,
    landing="events_in",
    landing_columns=(
        ("event_id", "String"),
        ("run_id", "String"),
        ("tick", "UInt32"),
        ("sim_minute", "UInt32"),
        ("type", "String"),
        ("actor", "String"),
        ("target", "Nullable(String)"),
        ("place", "Nullable(String)"),
        ("witnesses", "Array(String)"),
        ("summary", "String"),
        ("source", "String"),
        ("refs", "Array(String)"),
        ("effects", "String"),  # the JSON array as text
        (
            "impact",
            "Tuple(novelty Nullable(Float64), conflict Nullable(Float64), "
            "status Nullable(Float64), cascade Nullable(Float64), total Nullable(Float64))",
        ),
    ),
    skipped=frozenset({"kind", "world", "actor_memories", "restored"}),
    key_of=_event_key,
)

TABLES: dict[str, TableSpec] = {
    "runs": TableSpec(
        (
            ("run_id", "String"),
            ("seed", "Int64"),
            ("world", "LowCardinality(String)"),
            ("days", "Float64"),
            ("speed", "Float64"),
            ("step_minutes", "UInt32"),
            ("created_at", "DateTime64(3, 'UTC')"),
            ("start_minute", "UInt32"),
            ("catalog_digest", "String"),
            ("parent_run", "Nullable(String)"),
            ("branch_tick", "Nullable(UInt32)"),
        ),
        ("run_id",),
        key=("run_id",),
    ),
    "snapshots": TableSpec(
        (
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("source", "LowCardinality(String)"),
            ("shard", "UInt32"),
            ("part", "UInt32"),
            ("parts", "UInt32"),
            ("npcs", "UInt32"),
            ("bytes", "UInt64"),
            ("sha256", "String"),
        ),
        ("run_id", "tick", "source", "shard", "part"),
        key=("run_id", "tick", "source", "shard", "part"),
        filled=(("stored_at", "DateTime64(3, 'UTC')"),),
    ),
    "decisions": TableSpec(
        (
            ("decision_id", "String"),
            ("request_id", "String"),
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("asked_tick", "UInt32"),
            ("sim_minute", "UInt32"),
            ("npc_id", "String"),
            ("cohort", "Bool"),
            ("prompt_hash", "String"),
            ("status", "LowCardinality(String)"),
            ("outcome", "LowCardinality(String)"),
            ("reason_code", "LowCardinality(Nullable(String))"),
            ("action", "LowCardinality(Nullable(String))"),
            ("event_type", "LowCardinality(Nullable(String))"),
            ("target", "Nullable(String)"),
            ("model_reason", "Nullable(String)"),
            ("event_id", "Nullable(String)"),
            ("post_id", "Nullable(String)"),
            ("reaction", "LowCardinality(Nullable(String))"),
        ),
        ("decision_id",),
        key=("run_id", "tick", "npc_id", "decision_id"),
        filled=(("stored_at", "DateTime64(3, 'UTC')"),),
    ),
    "exposures": TableSpec(
        (
            ("exposure_id", "String"),
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("sim_minute", "UInt32"),
            ("npc_id", "String"),
            ("post_key", "String"),
            ("post_id", "String"),
            ("event_id", "String"),
            ("post_tick", "UInt32"),
            ("author", "String"),
            ("channel", "LowCardinality(String)"),
            ("recommender", "LowCardinality(String)"),
            ("rank", "UInt16"),
            ("reaction", "LowCardinality(Nullable(String))"),
            ("reaction_event_id", "Nullable(String)"),
        ),
        ("exposure_id",),
        key=("run_id", "tick", "npc_id", "exposure_id"),
    ),
    "ticks": TableSpec(
        (
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("sim_minute", "UInt32"),
            ("state_hash", "String"),
            ("npcs", "UInt32"),
            ("events", "UInt32"),
            ("effects", "UInt32"),
            ("wall_ms", "Float64"),
            ("last", "Bool"),
        ),
        ("run_id", "tick"),
        key=("run_id", "tick"),
    ),
    "events": TableSpec(
        (
            ("event_id", "String"),
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("sim_minute", "UInt32"),
            ("type", "LowCardinality(String)"),
            ("actor", "String"),
            ("target", "Nullable(String)"),
            ("place", "LowCardinality(Nullable(String))"),
            ("witnesses", "Array(String)"),
            ("summary", "String"),
            ("source", "LowCardinality(String)"),
            ("refs", "Array(String)"),
            ("effects", "String"),  # JSON array of Effect objects
            ("impact_novelty", "Nullable(Float64)"),
            ("impact_conflict", "Nullable(Float64)"),
            ("impact_status", "Nullable(Float64)"),
            ("impact_cascade", "Nullable(Float64)"),
            ("impact_total", "Nullable(Float64)"),
        ),
        ("event_id",),
        key=("run_id", "tick", "event_id"),
        # the ReplacingMergeTree version: the highest cascade wins (migration 0005)
        filled=(("score_version", "UInt32"),),
        json=_EVENT_JSON,
        version="score_version",
    ),
    "posts": TableSpec(
        (
            ("post_id", "String"),
            ("request_id", "String"),
            ("run_id", "String"),
            ("event_id", "String"),
            ("channel", "LowCardinality(String)"),
            ("author", "String"),
            ("tick", "UInt32"),
            ("sim_minute", "UInt32"),
            ("title", "Nullable(String)"),
            ("body", "String"),
            ("source", "LowCardinality(String)"),
            ("moderation", "LowCardinality(String)"),
            ("moderation_reason", "Nullable(String)"),
            ("score", "Float64"),
            ("model", "LowCardinality(Nullable(String))"),
            ("tokens_in", "UInt32"),
            ("tokens_out", "UInt32"),
            ("latency_ms", "Float64"),
            ("reply_to", "Nullable(String)"),  # migration 0010
            ("repost_of", "Nullable(String)"),
        ),
        ("post_id",),
        key=("run_id", "channel", "tick", "post_id"),
        # insert time, for the live stream: posts arrive out of tick order (migration 0003)
        filled=(("stored_at", "DateTime64(3, 'UTC')"),),
    ),
    "npc_snapshots": TableSpec(
        (
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("npc_id", "String"),
            ("place", "LowCardinality(Nullable(String))"),
            ("reputation", "Float64"),
            ("state", "String"),  # JSON of the NPC's state
            ("state_hash", "String"),
        ),
        ("run_id", "npc_id", "tick"),
        key=("run_id", "npc_id", "tick"),
    ),
    "relationship_snapshots": TableSpec(
        (
            ("run_id", "String"),
            ("tick", "UInt32"),
            ("npc_id", "String"),
            ("other_id", "String"),
            ("affinity", "Float64"),
            ("trust", "Float64"),
            ("familiarity", "Float64"),
            ("tags", "Array(LowCardinality(String))"),
        ),
        ("run_id", "npc_id", "other_id", "tick"),
        key=("run_id", "npc_id", "other_id", "tick"),
    ),
    "llm_calls": TableSpec(
        (
            ("call_id", "String"),
            ("run_id", "String"),
            ("request_id", "String"),
            ("attempt", "UInt8"),
            ("prompt_hash", "String"),
            ("model", "LowCardinality(Nullable(String))"),
            ("tokens_in", "UInt32"),
            ("tokens_out", "UInt32"),
            ("latency_ms", "Float64"),
            ("cache_hit", "Bool"),
            ("outcome", "LowCardinality(String)"),
            ("error", "Nullable(String)"),
            ("at", "DateTime64(3, 'UTC')"),
        ),
        ("call_id",),
        key=("run_id", "request_id", "call_id"),
    ),
    "dead_letters": TableSpec(
        (
            ("dl_id", "String"),
            ("stage", "LowCardinality(String)"),
            ("topic", "LowCardinality(String)"),
            ("partition", "Int32"),
            ("offset", "Int64"),
            ("key", "Nullable(String)"),
            ("value", "String"),
            ("reason", "String"),
            ("at", "DateTime64(3, 'UTC')"),
        ),
        ("dl_id",),
        key=("stage", "topic", "partition", "offset", "dl_id"),
    ),
}

# table -> its landing table, for the tables the engine fills from JSON
JSON_TABLES: dict[str, str] = {
    name: spec.json.landing for name, spec in TABLES.items() if spec.json is not None
}


def json_table_for(model: Any) -> str | None:
    """The table filled from the JSON of ``model``'s messages, or None (rows mapped in Python)."""
    for name, spec in TABLES.items():
        if spec.json is not None and spec.json.model is model:
            return name
    return None
