"""Read functions over the worldfeed tables, used by the API.

Every function is synchronous (call it through :func:`storage.run_in_thread` from async
code), takes the client and the database, and returns plain dicts. Exact reads use
``FINAL`` so rows delivered twice are returned once — except the post pages (``feed``,
``posts``), which read without it so the engine can use the feed projections and stop
after a page, and collapse copies themselves (:func:`_paged_posts`; same result). Public
post reads never return posts whose moderation is ``blocked``.

Paged reads return a :class:`Page` with an opaque ``next_cursor``: the base64 of the
last row's sort key (``tick``, id). Keyset pagination keeps pages stable while new rows
arrive: a row is on page n+1 iff its key is beyond the cursor, whatever was inserted
since page n was read — no duplicates, no skipped rows.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from clickhouse_connect.driver.client import Client

from storage.clickhouse import check_identifier
from storage.schema import TABLES

MAX_LIMIT = 500

# the columns reads return are exactly the ones the writer stores
POST_COLUMNS = TABLES["posts"].columns
EVENT_COLUMNS = TABLES["events"].columns
TICK_COLUMNS = TABLES["ticks"].columns
NPC_SNAPSHOT_COLUMNS = TABLES["npc_snapshots"].columns
DECISION_COLUMNS = TABLES["decisions"].columns


class InvalidQuery(ValueError):
    """Parameters that cannot be answered (bad limit, tick_from > tick_to, bad cursor)."""


class InvalidCursor(InvalidQuery):
    """A cursor that this API did not issue, or issued for another listing."""


@dataclass
class Page:
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(kind: str, tick: int, key: str) -> str:
    """Opaque cursor for the row with sort key ``(tick, key)`` in listing ``kind``."""
    return base64.urlsafe_b64encode(orjson.dumps([kind, tick, key])).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[int, str]:
    """``(tick, key)`` of a cursor from :func:`encode_cursor`; raises :class:`InvalidCursor`.

    Strict: a JSON array of exactly ``[kind, tick, key]`` with ``tick`` an integer (not a
    bool) in ``0..2**32-1`` (the UInt32 tick columns) and ``key`` a string; the error names
    the part that is wrong.
    """
    max_tick = 2**32 - 1
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("invalid cursor: not a cursor this API issued") from exc
    if not isinstance(value, list) or len(value) != 3:
        raise InvalidCursor("invalid cursor: not a cursor this API issued")
    got_kind, tick, key = value
    if got_kind != kind:
        raise InvalidCursor(f"invalid cursor for {kind}: it belongs to another listing")
    if type(tick) is not int or not 0 <= tick <= max_tick:
        raise InvalidCursor(f"invalid cursor for {kind}: tick must be an integer 0..{max_tick}")
    if not isinstance(key, str):
        raise InvalidCursor(f"invalid cursor for {kind}: key must be a string")
    return tick, key


def _rows(client: Client, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    return list(result.named_results())


def _clamp(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _post_row(row: dict[str, Any]) -> dict[str, Any]:
    return row


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    row["effects"] = orjson.loads(row["effects"]) if row["effects"] else []
    components = ("novelty", "conflict", "status", "cascade", "total")
    values = {c: row.pop(f"impact_{c}") for c in components}
    row["impact"] = None if values["total"] is None else values
    return row


class _Where:
    """Collects WHERE conditions and their bound parameters."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def equal(self, **filters: str | None) -> None:
        """``column = value`` (String) for every filter that is set; None means no filter."""
        for column, value in filters.items():
            if value is not None:
                self.add(f"{column} = {{{column}:String}}", **{column: value})

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1"


def _tick_range(where: _Where, tick_from: int | None, tick_to: int | None) -> None:
    if tick_from is not None and tick_to is not None and tick_from > tick_to:
        raise InvalidQuery("tick_from must not be greater than tick_to")
    if tick_from is not None:
        where.add("tick >= {tick_from:UInt32}", tick_from=tick_from)
    if tick_to is not None:
        where.add("tick <= {tick_to:UInt32}", tick_to=tick_to)


# Lazy materialization: the engine finds a page's rows from the key columns alone, then
# reads the wide columns (body, title, ...) of those rows only. Its default limit (10
# rows) is below a page; raise it to MAX_LIMIT plus the over-fetch of _paged_posts.
_PAGE_SETTINGS = (
    "SETTINGS max_threads = 1, query_plan_optimize_lazy_materialization = 1, "
    f"query_plan_max_limit_for_lazy_materialization = {4 * (MAX_LIMIT + 1)}"
)
# rows read beyond a page, so that a duplicate or a blocked post rarely needs a second read
_OVER_FETCH = 4


def _paged_posts(
    client: Client,
    database: str,
    where: _Where,
    limit: int,
    cursor: str | None,
    order: Literal["asc", "desc"],
    kind: str,
) -> Page:
    """A keyset page of posts, exact as under ``FINAL`` but read without it.

    ``FINAL`` keeps the engine from using the feed projections (migration 0004) and
    from stopping after a page, so the page is read plainly and collapsed here: a post
    stored twice (redelivered in another batch, not merged yet) has the same sort key,
    so its copies are adjacent in ``(tick, post_id)`` order. The read takes a few rows
    more than the page; when a post id occurs twice in them, the copies may differ
    (ReplacingMergeTree keeps the last inserted, which a plain read cannot tell), so
    that page is read again with ``FINAL`` — rare, and exact. Blocked posts are
    dropped after the collapse (a later blocked copy must hide an earlier published
    one), and the read widens when they leave the page short.
    """
    db = check_identifier(database)
    limit = _clamp(limit)
    if cursor:
        tick, key = decode_cursor(kind, cursor)
        op = "<" if order == "desc" else ">"
        # spelled out rather than a tuple comparison, so the key analysis prunes on tick
        where.add(
            f"tick {op}= {{c_tick:UInt32}} AND (tick {op} {{c_tick:UInt32}} "
            f"OR post_id {op} {{c_key:String}})",
            c_tick=tick,
            c_key=key,
        )
    direction = "DESC" if order == "desc" else "ASC"
    fetch = limit + 1 + _OVER_FETCH
    while True:
        sql = (
            f"SELECT {', '.join(POST_COLUMNS)} FROM {db}.posts WHERE {where.sql()} "  # noqa: S608 - checked identifiers, values bound
            f"ORDER BY tick {direction}, post_id {direction} LIMIT {fetch} {_PAGE_SETTINGS}"
        )
        rows = _rows(client, sql, where.params)
        complete = len(rows) < fetch
        if not complete:
            # the last post's copies may go on past the window: judge it next time
            last = rows[-1]["post_id"]
            while rows and rows[-1]["post_id"] == last:
                rows.pop()
        ids = [r["post_id"] for r in rows]
        if len(set(ids)) != len(ids):
            return _paged_posts_final(client, db, where, limit, direction, kind)
        visible = [r for r in rows if r["moderation"] != "blocked"]
        if len(visible) > limit or complete:
            break
        fetch *= 4
    return _page(visible, limit, kind)


def _page(rows: list[dict[str, Any]], limit: int, kind: str) -> Page:
    page = Page([_post_row(r) for r in rows[:limit]])
    if len(rows) > limit:
        last = page.items[-1]
        page.next_cursor = encode_cursor(kind, last["tick"], last["post_id"])
    return page


def _paged_posts_final(
    client: Client, db: str, where: _Where, limit: int, direction: str, kind: str
) -> Page:
    sql = (
        f"SELECT {', '.join(POST_COLUMNS)} FROM {db}.posts FINAL "  # noqa: S608 - checked identifiers, values bound
        f"WHERE {where.sql()} AND moderation != 'blocked' "
        f"ORDER BY tick {direction}, post_id {direction} LIMIT {limit + 1}"
    )
    return _page(_rows(client, sql, where.params), limit, kind)


def feed(
    client: Client,
    database: str,
    *,
    run_id: str | None = None,
    channel: str | None = None,
    author: str | None = None,
    place: str | None = None,
    tick_from: int | None = None,
    tick_to: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Newest-first posts (tick, post_id descending), blocked ones hidden.

    ``place`` filters on the place of the post's event (a semi-join on ``events``).
    """
    db = check_identifier(database)
    where = _Where()
    where.equal(run_id=run_id, channel=channel, author=author)
    if place is not None:
        run_filter = " AND run_id = {run_id:String}" if run_id is not None else ""
        where.add(
            f"event_id IN (SELECT event_id FROM {db}.events WHERE place = {{place:String}}"  # noqa: S608 - checked identifiers, values bound
            f"{run_filter})",
            place=place,
        )
    _tick_range(where, tick_from, tick_to)
    return _paged_posts(client, db, where, limit, cursor, "desc", "feed")


def posts(
    client: Client,
    database: str,
    *,
    run_id: str | None = None,
    channel: str | None = None,
    author: str | None = None,
    event_id: str | None = None,
    tick_from: int | None = None,
    tick_to: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Posts in log order (tick, post_id ascending), blocked ones hidden."""
    where = _Where()
    where.equal(run_id=run_id, channel=channel, author=author, event_id=event_id)
    _tick_range(where, tick_from, tick_to)
    return _paged_posts(client, database, where, limit, cursor, "asc", "posts")


def post_runs(client: Client, database: str) -> list[tuple[str, int, int]]:
    """``(run_id, stored rows, highest tick)`` of every run with posts, by run id."""
    db = check_identifier(database)
    result = client.query(
        f"SELECT run_id, count(), max(tick) FROM {db}.posts GROUP BY run_id ORDER BY run_id"  # noqa: S608 - checked identifier
    )
    return [(str(r), int(n), int(t)) for r, n, t in result.result_rows]


def posts_in_ticks(
    client: Client, database: str, run_id: str, tick_from: int, tick_below: int
) -> list[dict[str, Any]]:
    """Every post of a run in ticks ``[tick_from, tick_below)``, each once as ``FINAL``
    decides (its last stored copy), blocked ones included, by ``(tick, post_id)``."""
    db = check_identifier(database)
    return [
        _post_row(r)
        for r in _rows(
            client,
            f"SELECT {', '.join(POST_COLUMNS)} FROM {db}.posts FINAL "  # noqa: S608 - checked identifiers, values bound
            "WHERE run_id = {run_id:String} AND tick >= {lo:UInt32} AND tick < {hi:UInt32} "
            "ORDER BY tick, post_id",
            {"run_id": run_id, "lo": tick_from, "hi": tick_below},
        )
    ]


def post_by_id(client: Client, database: str, post_id: str) -> dict[str, Any] | None:
    """One post by id, or None if unknown or blocked."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT {', '.join(POST_COLUMNS)} FROM {db}.posts FINAL "  # noqa: S608 - checked identifiers, values bound
        "WHERE post_id = {post_id:String} AND moderation != 'blocked' LIMIT 1",
        {"post_id": post_id},
    )
    return _post_row(rows[0]) if rows else None


def events(
    client: Client,
    database: str,
    *,
    run_id: str | None = None,
    tick_from: int | None = None,
    tick_to: int | None = None,
    type: str | None = None,
    npc: str | None = None,
    place: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Events in log order (tick, event_id ascending); ``npc`` matches actor, target or witness."""
    db = check_identifier(database)
    limit = _clamp(limit)
    where = _Where()
    where.equal(run_id=run_id, type=type)
    if npc is not None:
        where.add(
            "(actor = {npc:String} OR target = {npc:String} OR has(witnesses, {npc:String}))",
            npc=npc,
        )
    where.equal(place=place)
    _tick_range(where, tick_from, tick_to)
    if cursor:
        tick, key = decode_cursor("events", cursor)
        where.add("(tick, event_id) > ({c_tick:UInt32}, {c_key:String})", c_tick=tick, c_key=key)
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {db}.events FINAL WHERE {where.sql()} "  # noqa: S608 - checked identifiers, values bound
        f"ORDER BY tick, event_id LIMIT {limit + 1}"
    )
    rows = _rows(client, sql, where.params)
    page = Page([_event_row(r) for r in rows[:limit]])
    if len(rows) > limit:
        last = page.items[-1]
        page.next_cursor = encode_cursor("events", last["tick"], last["event_id"])
    return page


def decisions(
    client: Client,
    database: str,
    *,
    run_id: str | None = None,
    npc: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    tick_from: int | None = None,
    tick_to: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """LLM decisions as the engine resolved them, in log order (tick, NPC, decision id),
    filtered by run, NPC, outcome (accepted, rejected, fallback), reason code and ticks."""
    db = check_identifier(database)
    limit = _clamp(limit)
    where = _Where()
    where.equal(run_id=run_id, npc_id=npc, outcome=outcome, reason_code=reason)
    _tick_range(where, tick_from, tick_to)
    if cursor:
        tick, key = decode_cursor("decisions", cursor)
        npc_key, _, dec_key = key.partition("/")
        where.add(
            "(tick, npc_id, decision_id) > ({c_tick:UInt32}, {c_npc:String}, {c_key:String})",
            c_tick=tick,
            c_npc=npc_key,
            c_key=dec_key,
        )
    sql = (
        f"SELECT {', '.join(DECISION_COLUMNS)} FROM {db}.decisions FINAL WHERE {where.sql()} "  # noqa: S608 - checked identifiers, values bound
        f"ORDER BY tick, npc_id, decision_id LIMIT {limit + 1}"
    )
    rows = _rows(client, sql, where.params)
    page = Page(rows[:limit])
    if len(rows) > limit:
        last = page.items[-1]
        key = f"{last['npc_id']}/{last['decision_id']}"
        page.next_cursor = encode_cursor("decisions", last["tick"], key)
    return page


def _run_filter(run_id: str | None) -> tuple[str, dict[str, Any]]:
    """`` WHERE run_id = …`` and its bound parameter, or nothing for every run."""
    if run_id is None:
        return "", {}
    return " WHERE run_id = {run_id:String}", {"run_id": run_id}


def decision_counts(client: Client, database: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Decisions by outcome: accepted first try, repaired, retried, rejected by rule (per
    reason), timed out, other fallbacks (per cause)."""
    db = check_identifier(database)
    run_filter, params = _run_filter(run_id)
    rows = _rows(
        client,
        f"SELECT outcome, status, ifNull(reason_code, '') AS reason, count() AS n "  # noqa: S608 - checked identifiers, values bound
        f"FROM {db}.decisions FINAL{run_filter} GROUP BY outcome, status, reason "
        "ORDER BY outcome, status, reason",
        params,
    )
    out: dict[str, Any] = {
        "total": 0,
        "accepted": 0,
        "accepted_first_try": 0,
        "repaired": 0,
        "retried": 0,
        "rejected": 0,
        "rejected_by_reason": {},
        "timed_out": 0,
        "fallback": 0,
        "fallback_by_cause": {},
    }
    for r in rows:
        n = r["n"]
        out["total"] += n
        if r["status"] in ("repaired", "retried"):
            out[r["status"]] += n
        if r["outcome"] == "accepted":
            out["accepted"] += n
            out["accepted_first_try"] += n if r["status"] == "ok" else 0
        elif r["outcome"] == "rejected":
            out["rejected"] += n
            by = out["rejected_by_reason"]
            by[r["reason"]] = by.get(r["reason"], 0) + n
        else:
            out["fallback"] += n
            out["timed_out"] += n if r["reason"] == "timeout" else 0
            by = out["fallback_by_cause"]
            by[r["reason"]] = by.get(r["reason"], 0) + n
    return out


def event_by_id(
    client: Client, database: str, event_id: str, run_id: str | None = None
) -> dict[str, Any] | None:
    """One event by id (a content id: the same event in a run and its branches), in
    ``run_id`` when given, else in the run that stored it first; or None."""
    db = check_identifier(database)
    where = _Where()
    where.add("event_id = {event_id:String}", event_id=event_id)
    if run_id is not None:
        where.add("run_id = {run_id:String}", run_id=run_id)
    rows = _rows(
        client,
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {db}.events FINAL WHERE {where.sql()} "  # noqa: S608 - checked identifiers, values bound
        "ORDER BY tick, run_id LIMIT 1",
        where.params,
    )
    return _event_row(rows[0]) if rows else None


_RUNS_SQL = """
SELECT
    ids.run_id AS run_id, r.seed AS seed, r.world AS world, r.days AS days, r.speed AS speed,
    r.step_minutes AS step_minutes, r.created_at AS created_at,
    r.start_minute AS start_minute, nullIf(r.catalog_digest, '') AS catalog_digest,
    r.parent_run AS parent_run, r.branch_tick AS branch_tick,
    ifNull(t.ticks, 0) AS ticks, t.last_tick AS last_tick, t.last_sim_minute AS last_sim_minute,
    ifNull(t.finished, false) AS finished
FROM (
    SELECT run_id FROM {db}.runs UNION DISTINCT SELECT DISTINCT run_id FROM {db}.ticks
) AS ids
LEFT JOIN (SELECT * FROM {db}.runs FINAL) AS r ON r.run_id = ids.run_id
LEFT JOIN (
    SELECT run_id, count() AS ticks, max(tick) AS last_tick, max(sim_minute) AS last_sim_minute,
           max(last) AS finished
    FROM {db}.ticks FINAL GROUP BY run_id
) AS t ON t.run_id = ids.run_id
WHERE {where}
ORDER BY r.created_at DESC NULLS LAST, run_id
LIMIT {limit}
SETTINGS join_use_nulls = 1
"""


def runs(client: Client, database: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """Runs (from ``runs`` and from ``ticks``), newest start first, with tick progress."""
    db = check_identifier(database)
    sql = _RUNS_SQL.format(db=db, where="1", limit=_clamp(limit))
    return _rows(client, sql, {})


def run_by_id(client: Client, database: str, run_id: str) -> dict[str, Any] | None:
    """One run with its tick progress, or None."""
    db = check_identifier(database)
    sql = _RUNS_SQL.format(db=db, where="ids.run_id = {run_id:String}", limit=1)
    rows = _rows(client, sql, {"run_id": run_id})
    return rows[0] if rows else None


def branches_of(client: Client, database: str, run_id: str, *, limit: int = 100) -> list[str]:
    """The runs branched from a run (its children in the lineage), by branch tick."""
    db = check_identifier(database)
    sql = (
        f"SELECT run_id FROM {db}.runs FINAL WHERE parent_run = {{run_id:String}} "  # noqa: S608 - checked identifier, values bound
        f"ORDER BY branch_tick, run_id LIMIT {_clamp(limit)}"
    )
    return [str(row["run_id"]) for row in _rows(client, sql, {"run_id": run_id})]


def ticks(
    client: Client,
    database: str,
    run_id: str,
    *,
    tick_from: int | None = None,
    tick_to: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A run's completed ticks in order (page with ``tick_from`` = last tick + 1)."""
    db = check_identifier(database)
    where = _Where()
    where.add("run_id = {run_id:String}", run_id=run_id)
    _tick_range(where, tick_from, tick_to)
    sql = (
        f"SELECT {', '.join(TICK_COLUMNS)} FROM {db}.ticks FINAL WHERE {where.sql()} "  # noqa: S608 - checked identifiers, values bound
        f"ORDER BY tick LIMIT {_clamp(limit)}"
    )
    return _rows(client, sql, where.params)


STAT_TABLES = tuple(TABLES)


def stats(client: Client, database: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Row counts per table, posts per channel and moderation, LLM usage, and rates.

    Rates come from the stored ticks: events per tick and per simulated hour, posts per
    simulated hour, ticks per wall second (tick wall time, barrier included).

    With ``run_id``, counts are for that run (``dead_letters`` has no run and stays global).
    """
    db = check_identifier(database)
    run_filter, params = _run_filter(run_id)
    parts = [
        f"SELECT '{t}' AS t, count() AS n FROM {db}.{t} FINAL"  # noqa: S608 - checked identifiers, values bound
        + (run_filter if t != "dead_letters" else "")
        for t in STAT_TABLES
    ]
    tables = {r["t"]: r["n"] for r in _rows(client, " UNION ALL ".join(parts), params)}
    channels = _rows(
        client,
        f"SELECT channel, moderation, count() AS n FROM {db}.posts FINAL{run_filter} "  # noqa: S608 - checked identifiers, values bound
        "GROUP BY channel, moderation ORDER BY channel, moderation",
        params,
    )
    per_channel: dict[str, dict[str, int]] = {}
    for r in channels:
        per_channel.setdefault(r["channel"], {})[r["moderation"]] = r["n"]
    post_tokens = _rows(
        client,
        f"SELECT sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, "  # noqa: S608 - checked identifiers, values bound
        f"countIf(source = 'llm') AS llm_posts, countIf(source = 'template') AS template_posts "
        f"FROM {db}.posts FINAL{run_filter}",
        params,
    )[0]
    calls = _rows(
        client,
        f"SELECT count() AS calls, countIf(cache_hit) AS cache_hits, sum(tokens_in) AS tokens_in, "  # noqa: S608 - checked identifiers, values bound
        f"sum(tokens_out) AS tokens_out, avg(latency_ms) AS avg_latency_ms "
        f"FROM {db}.llm_calls FINAL{run_filter}",
        params,
    )[0]
    if not calls["calls"]:
        calls["avg_latency_ms"] = None
    outcomes = _rows(
        client,
        f"SELECT outcome, count() AS n FROM {db}.llm_calls FINAL{run_filter} "  # noqa: S608 - checked identifiers, values bound
        "GROUP BY outcome ORDER BY outcome",
        params,
    )
    calls["outcomes"] = {r["outcome"]: r["n"] for r in outcomes}
    clock = _rows(
        client,
        # a run's simulated span is its ticks times the step, the step being the mean gap
        f"SELECT sum(n) AS ticks, sum(ev) AS events, sum(wall) AS wall_ms, "  # noqa: S608 - checked identifiers, values bound
        f"sum(if(n > 1, (hi - lo) / (n - 1) * n, 0)) AS sim_minutes FROM ("
        f"SELECT run_id, count() AS n, sum(events) AS ev, sum(wall_ms) AS wall, "
        f"min(sim_minute) AS lo, max(sim_minute) AS hi FROM {db}.ticks FINAL{run_filter} "
        f"GROUP BY run_id)",
        params,
    )[0]
    n_ticks, wall_s = clock["ticks"], (clock["wall_ms"] or 0.0) / 1000
    sim_hours = (clock["sim_minutes"] or 0.0) / 60
    posts_total = sum(sum(m.values()) for m in per_channel.values())
    rates = {
        "ticks": n_ticks,
        "sim_hours": sim_hours,
        "wall_s": wall_s,
        "events_per_tick": clock["events"] / n_ticks if n_ticks else None,
        "events_per_sim_hour": clock["events"] / sim_hours if sim_hours else None,
        "posts_per_sim_hour": posts_total / sim_hours if sim_hours else None,
        "ticks_per_wall_s": n_ticks / wall_s if wall_s else None,
        "tokens_per_llm_post": (post_tokens["tokens_out"] / post_tokens["llm_posts"])
        if post_tokens["llm_posts"]
        else None,
    }
    return {
        "rates": rates,
        "tables": tables,
        "posts_per_channel": per_channel,
        "post_tokens": post_tokens,
        "llm_calls": calls,
        "decisions": decision_counts(client, database, run_id=run_id),
        "feed": feed_counts(client, database, run_id=run_id),
    }


def _reactions(db: str, where: str) -> str:
    """The feed loop's reads and reactions as rows (tick, post_id, seen, reaction): each
    exposure (its reaction, if the rules drew one) and each reaction an LLM decision chose
    (an accepted decision naming its post: the reader's exposure carries none)."""
    return (
        f"SELECT tick, post_id, 1 AS seen, reaction FROM {db}.exposures FINAL WHERE {where} "  # noqa: S608 - checked identifier, fixed conditions
        f"UNION ALL SELECT tick, assumeNotNull(post_id) AS post_id, 0 AS seen, reaction "
        f"FROM {db}.decisions FINAL WHERE {where} AND outcome = 'accepted' "
        "AND reaction IS NOT NULL AND post_id IS NOT NULL"
    )


def reach(client: Client, database: str, post_id: str) -> list[dict[str, Any]]:
    """Who read a post and what they did, per tick (the feed loop's exposures and the
    reactions LLM decisions chose): readers, likes, reposts, replies (feuds included) and
    feuds, oldest tick first."""
    db = check_identifier(database)
    return _rows(
        client,
        f"SELECT tick, toUInt64(sum(seen)) AS seen, countIf(reaction = 'like') AS likes, "  # noqa: S608 - checked identifiers, values bound
        f"countIf(reaction = 'repost') AS reposts, "
        f"countIf(reaction IN ('reply', 'feud')) AS replies, countIf(reaction = 'feud') AS feuds "
        f"FROM ({_reactions(db, 'post_id = {post_id:String}')}) GROUP BY tick ORDER BY tick",
        {"post_id": post_id},
    )


def posts_answering(
    client: Client, database: str, post_ids: list[str], limit: int
) -> list[dict[str, Any]]:
    """The replies to and reposts of these posts (a thread's next level), oldest first
    (tick, post_id), at most ``limit``; blocked posts never appear."""
    db = check_identifier(database)
    if not post_ids:
        return []
    return [
        _post_row(r)
        for r in _rows(
            client,
            f"SELECT {', '.join(POST_COLUMNS)} FROM {db}.posts FINAL "  # noqa: S608 - checked identifiers, values bound
            "WHERE (reply_to IN {ids:Array(String)} OR repost_of IN {ids:Array(String)}) "
            "AND moderation != 'blocked' ORDER BY tick, post_id LIMIT {limit:UInt32}",
            {"ids": post_ids, "limit": max(0, limit)},
        )
    ]


def reactions_by_post(
    client: Client, database: str, post_ids: list[str]
) -> dict[str, dict[str, int]]:
    """post id -> readers, likes, reposts and replies (feuds included) from the exposures
    and the reactions LLM decisions chose."""
    db = check_identifier(database)
    if not post_ids:
        return {}
    rows = _rows(
        client,
        f"SELECT post_id, toUInt64(sum(seen)) AS seen, countIf(reaction = 'like') AS likes, "  # noqa: S608 - checked identifiers, values bound
        f"countIf(reaction = 'repost') AS reposts, "
        f"countIf(reaction IN ('reply', 'feud')) AS replies "
        f"FROM ({_reactions(db, 'post_id IN {ids:Array(String)}')}) GROUP BY post_id",
        {"ids": post_ids},
    )
    return {r.pop("post_id"): r for r in rows}


def spread(client: Client, database: str, run_id: str, event_id: str) -> list[dict[str, Any]]:
    """How a story reached the town: per tick, the readers who read a post about the event
    for the first time then (the feed loop's exposures), oldest tick first."""
    db = check_identifier(database)
    return _rows(
        client,
        f"SELECT first AS tick, count() AS new_readers FROM (SELECT npc_id, min(tick) AS first "  # noqa: S608 - checked identifiers, values bound
        f"FROM {db}.exposures FINAL WHERE run_id = {{run_id:String}} AND event_id = "
        f"{{event_id:String}} GROUP BY npc_id) GROUP BY first ORDER BY first",
        {"run_id": run_id, "event_id": event_id},
    )


def town_size(client: Client, database: str, run_id: str) -> int | None:
    """NPCs in a run's world (its ticks), or None before its first tick is stored."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT max(npcs) AS n, count() AS ticks FROM {db}.ticks FINAL "  # noqa: S608 - checked identifiers, values bound
        "WHERE run_id = {run_id:String}",
        {"run_id": run_id},
    )
    return int(rows[0]["n"]) if rows and rows[0]["ticks"] else None


def feed_counts(client: Client, database: str, *, run_id: str | None = None) -> dict[str, Any]:
    """The feed loop: exposures (posts read), and reactions by kind (like, reply, repost,
    feud), the rules' and those LLM decisions chose."""
    db = check_identifier(database)
    run_filter, params = _run_filter(run_id)
    where = run_filter.removeprefix(" WHERE ") if run_filter else "1"
    rows = _rows(
        client,
        f"SELECT ifNull(reaction, '') AS reaction, toUInt64(sum(seen)) AS seen, count() AS n "  # noqa: S608 - checked identifiers, values bound
        f"FROM ({_reactions(db, where)}) GROUP BY reaction ORDER BY reaction",
        params,
    )
    reactions = {r["reaction"]: r["n"] for r in rows if r["reaction"]}
    return {
        "exposures": sum(r["seen"] for r in rows),
        "reactions": sum(reactions.values()),
        "reactions_by_kind": reactions,
    }


def ping(client: Client) -> str:
    """``"ok"`` if the engine answers ``SELECT 1``; raises otherwise."""
    client.command("SELECT 1")
    return "ok"


# ---- NPCs --------------------------------------------------------------------------------


def latest_run_id(client: Client, database: str) -> str | None:
    """The newest run (by start time, then id), or None when there is none."""
    rows = runs(client, database, limit=1)
    return rows[0]["run_id"] if rows else None


def npc_snapshot(client: Client, database: str, run_id: str, npc_id: str) -> dict[str, Any] | None:
    """An NPC's latest snapshot in a run (``state`` decoded), or None."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT {', '.join(NPC_SNAPSHOT_COLUMNS)} FROM {db}.npc_snapshots FINAL "  # noqa: S608 - checked identifiers, values bound
        "WHERE run_id = {run_id:String} AND npc_id = {npc_id:String} ORDER BY tick DESC LIMIT 1",
        {"run_id": run_id, "npc_id": npc_id},
    )
    if not rows:
        return None
    row = rows[0]
    row["state"] = orjson.loads(row["state"]) if row["state"] else {}
    return row


def npc_timeline(
    client: Client,
    database: str,
    npc_id: str,
    *,
    run_id: str | None = None,
    tick_from: int | None = None,
    tick_to: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """An NPC's events (as actor, target or witness) and posts, newest first.

    Items are ``{"kind": "event", "tick", "role", "event"}`` or
    ``{"kind": "post", "tick", "role": "author", "post"}``; at most ``limit`` in all.
    """
    db = check_identifier(database)
    limit = _clamp(limit)
    where = _Where()
    where.add(
        "(actor = {npc:String} OR target = {npc:String} OR has(witnesses, {npc:String}))",
        npc=npc_id,
    )
    where.equal(run_id=run_id)
    _tick_range(where, tick_from, tick_to)
    events_sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)}, "  # noqa: S608 - checked identifiers, values bound
        "multiIf(actor = {npc:String}, 'actor', target = {npc:String}, 'target', 'witness') "
        f"AS role FROM {db}.events FINAL WHERE {where.sql()} "
        f"ORDER BY tick DESC, event_id DESC LIMIT {limit}"
    )
    items: list[dict[str, Any]] = []
    for row in _rows(client, events_sql, where.params):
        role = row.pop("role")
        items.append({"kind": "event", "tick": row["tick"], "role": role, "event": _event_row(row)})
    pwhere = _Where()
    pwhere.add("author = {npc:String}", npc=npc_id)
    pwhere.add("moderation != 'blocked'")
    pwhere.equal(run_id=run_id)
    _tick_range(pwhere, tick_from, tick_to)
    posts_sql = (
        f"SELECT {', '.join(POST_COLUMNS)} FROM {db}.posts FINAL WHERE {pwhere.sql()} "  # noqa: S608 - checked identifiers, values bound
        f"ORDER BY tick DESC, post_id DESC LIMIT {limit}"
    )
    for row in _rows(client, posts_sql, pwhere.params):
        items.append({"kind": "post", "tick": row["tick"], "role": "author", "post": row})
    # newest first; at one tick the event comes before the posts written about it
    items.sort(key=lambda i: (i["tick"], i["kind"] == "event"), reverse=True)
    return items[:limit]


# ---- live posts ----------------------------------------------------------------------------


def posts_stored_since(
    client: Client,
    database: str,
    since_ms: int,
    *,
    run_id: str | None = None,
    channel: str | None = None,
    after_id: str | None = None,
    limit: int = MAX_LIMIT,
) -> list[dict[str, Any]]:
    """Posts stored at or after ``since_ms`` (epoch ms), in (stored, post id) order, blocked hidden.

    Every row carries ``stored_ms``. Posts arrive out of tick order, so the live stream
    follows storage time. ``after_id`` makes it a keyset page: only rows after
    ``(since_ms, after_id)``, so a caller pages through one insert's many rows of the same
    millisecond with two bound values, whatever it has read before.
    """
    db = check_identifier(database)
    where = _Where()
    since = "fromUnixTimestamp64Milli({since:Int64})"
    if after_id is None:
        where.add(f"stored_at >= {since}", since=since_ms)
    else:
        where.add(
            f"(stored_at > {since} OR (stored_at = {since} AND post_id > {{after_id:String}}))",
            since=since_ms,
            after_id=after_id,
        )
    where.add("moderation != 'blocked'")
    where.equal(run_id=run_id, channel=channel)
    sql = (
        f"SELECT {', '.join(POST_COLUMNS)}, toUnixTimestamp64Milli(stored_at) AS stored_ms "  # noqa: S608 - checked identifiers, values bound
        f"FROM {db}.posts WHERE {where.sql()} "
        f"ORDER BY stored_at, post_id LIMIT {_clamp(limit)}"
    )
    return _rows(client, sql, where.params)


def now_ms(client: Client) -> int:
    """The engine's clock in epoch ms (the live stream's watermarks use the same clock)."""
    return int(client.command("SELECT toUnixTimestamp64Milli(now64(3))"))  # type: ignore[arg-type]  # a scalar
