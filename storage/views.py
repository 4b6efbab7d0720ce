"""Reads behind the web UI's pictures: a run hour by hour, events with their posts and
cascade, the town's graph as of a tick, an NPC's history, and why a post exists.

Same conventions as :mod:`storage.queries`: synchronous, client and database first,
plain dicts back, ``FINAL`` for exact reads, values bound as parameters.
"""

from __future__ import annotations

from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from storage.clickhouse import check_identifier
from storage.queries import EVENT_COLUMNS, _event_row, _rows

CHANNELS = ("feed", "chat", "news")
MAX_EVENTS = 500
MAX_SNAPSHOT_TICKS = 2000


def hourly(client: Client, database: str, run_id: str) -> list[dict[str, Any]]:
    """Per simulated hour of a run: events, posts per channel, template fallbacks, LLM calls,
    tokens and cache hits (calls placed at their post's hour), ticks and their wall time."""
    db = check_identifier(database)
    p = {"run_id": run_id}
    hours: dict[int, dict[str, Any]] = {}

    def at(hour: int) -> dict[str, Any]:
        return hours.setdefault(
            hour,
            {
                "hour": hour,
                "events": 0,
                **{f"posts_{c}": 0 for c in CHANNELS},
                "fallbacks": 0,
                "llm_calls": 0,
                "cache_hits": 0,
                "tokens_in": 0,
                "tokens_out": 0,
                "ticks": 0,
                "wall_ms": 0.0,
            },
        )

    for r in _rows(
        client,
        f"SELECT intDiv(sim_minute, 60) AS hour, count() AS n FROM {db}.events FINAL "  # noqa: S608 - checked identifiers, values bound
        "WHERE run_id = {run_id:String} GROUP BY hour",
        p,
    ):
        at(r["hour"])["events"] = r["n"]
    for r in _rows(
        client,
        f"SELECT intDiv(sim_minute, 60) AS hour, channel, count() AS n, "  # noqa: S608 - checked identifiers, values bound
        f"countIf(source = 'template') AS fallbacks FROM {db}.posts FINAL "
        "WHERE run_id = {run_id:String} AND moderation != 'blocked' GROUP BY hour, channel",
        p,
    ):
        row = at(r["hour"])
        if r["channel"] in CHANNELS:
            row[f"posts_{r['channel']}"] = r["n"]
        row["fallbacks"] += r["fallbacks"]
    for r in _rows(
        client,
        f"SELECT intDiv(p.sim_minute, 60) AS hour, count() AS calls, "  # noqa: S608 - checked identifiers, values bound
        f"countIf(c.cache_hit) AS hits, sum(c.tokens_in) AS tin, sum(c.tokens_out) AS tout "
        f"FROM {db}.llm_calls AS c FINAL "
        f"INNER JOIN (SELECT request_id, any(sim_minute) AS sim_minute FROM {db}.posts "
        "WHERE run_id = {run_id:String} GROUP BY request_id) AS p ON p.request_id = c.request_id "
        "WHERE c.run_id = {run_id:String} GROUP BY hour",
        p,
    ):
        row = at(r["hour"])
        row.update(llm_calls=r["calls"], cache_hits=r["hits"], tokens_in=r["tin"])
        row["tokens_out"] = r["tout"]
    for r in _rows(
        client,
        f"SELECT intDiv(sim_minute, 60) AS hour, count() AS n, sum(wall_ms) AS wall "  # noqa: S608 - checked identifiers, values bound
        f"FROM {db}.ticks FINAL WHERE run_id = {{run_id:String}} GROUP BY hour",
        p,
    ):
        at(r["hour"]).update(ticks=r["n"], wall_ms=r["wall"])
    out = [hours[h] for h in sorted(hours)]
    for row in out:
        row["ticks_per_s"] = row["ticks"] / (row["wall_ms"] / 1000) if row["wall_ms"] else None
    return out


def dead_letters_by_stage(client: Client, database: str) -> dict[str, int]:
    """Dead letters per stage (the table has no run id: every run's)."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT stage, count() AS n FROM {db}.dead_letters FINAL GROUP BY stage ORDER BY stage",  # noqa: S608 - checked identifier
        {},
    )
    return {r["stage"]: r["n"] for r in rows}


def events_with_posts(
    client: Client,
    database: str,
    run_id: str,
    *,
    type: str | None = None,
    npc: str | None = None,
    place: str | None = None,
    min_impact: float | None = None,
    tick_from: int | None = None,
    tick_to: int | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """A run's events (filtered), each with the posts it caused and the later events that
    refer back to it (re-scored it: the cascade), plus the values the filters can take."""
    db = check_identifier(database)
    limit = max(1, min(limit, MAX_EVENTS))
    where = ["e.run_id = {run_id:String}"]
    params: dict[str, Any] = {"run_id": run_id}
    if type:
        where.append("e.type = {type:String}")
        params["type"] = type
    if npc:
        where.append(
            "(e.actor = {npc:String} OR e.target = {npc:String} OR has(e.witnesses, {npc:String}))"
        )
        params["npc"] = npc
    if place:
        where.append("e.place = {place:String}")
        params["place"] = place
    if min_impact is not None:
        where.append("ifNull(e.impact_total, 0) >= {min_impact:Float64}")
        params["min_impact"] = min_impact
    if tick_from is not None:
        where.append("e.tick >= {tick_from:UInt32}")
        params["tick_from"] = tick_from
    if tick_to is not None:
        where.append("e.tick <= {tick_to:UInt32}")
        params["tick_to"] = tick_to
    columns = ", ".join(f"e.{c} AS {c}" for c in EVENT_COLUMNS)
    sql = f"""
        SELECT {columns},
               ifNull(p.posts, []) AS posts,
               ifNull(r.rescored_by, []) AS rescored_by
        FROM {db}.events AS e FINAL
        LEFT JOIN (
            SELECT event_id, groupArray((post_id, channel, author)) AS posts
            FROM {db}.posts FINAL
            WHERE run_id = {{run_id:String}} AND moderation != 'blocked' GROUP BY event_id
        ) AS p ON p.event_id = e.event_id
        LEFT JOIN (
            SELECT ref, groupArray(event_id) AS rescored_by
            FROM {db}.events FINAL ARRAY JOIN refs AS ref
            WHERE run_id = {{run_id:String}} GROUP BY ref
        ) AS r ON r.ref = e.event_id
        WHERE {" AND ".join(where)}
        ORDER BY e.tick, e.event_id
        LIMIT {limit + 1}
        SETTINGS join_use_nulls = 1
    """  # noqa: S608 - checked identifiers, values bound
    rows = _rows(client, sql, params)
    items = []
    for row in rows[:limit]:
        posts = row.pop("posts")
        rescored = row.pop("rescored_by")
        event = _event_row(row)
        event["posts"] = [{"post_id": a, "channel": b, "author": c} for a, b, c in posts]
        event["rescored_by"] = sorted(rescored)
        items.append(event)
    facets = _rows(
        client,
        f"SELECT groupUniqArray(type) AS types, groupUniqArray(assumeNotNull(place)) AS places, "  # noqa: S608 - checked identifiers, values bound
        f"groupUniqArray(actor) AS actors, max(tick) AS last_tick "
        f"FROM {db}.events FINAL WHERE run_id = {{run_id:String}}",
        {"run_id": run_id},
    )[0]
    return {
        "items": items,
        "more": len(rows) > limit,
        "types": sorted(facets["types"]),
        "places": sorted(p for p in facets["places"] if p),
        "actors": sorted(facets["actors"]),
        "last_tick": facets["last_tick"] if items or facets["types"] else None,
    }


def snapshot_ticks(client: Client, database: str, run_id: str) -> list[int]:
    """Ticks at which the run took NPC snapshots, ascending."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT DISTINCT tick FROM {db}.npc_snapshots WHERE run_id = {{run_id:String}} "  # noqa: S608 - checked identifier
        f"ORDER BY tick LIMIT {MAX_SNAPSHOT_TICKS}",
        {"run_id": run_id},
    )
    return [r["tick"] for r in rows]


def graph_at(client: Client, database: str, run_id: str, tick: int) -> dict[str, Any]:
    """Every NPC's latest snapshot at or before ``tick`` (place, reputation) and every
    relationship's latest values at or before it: the town as of that tick."""
    db = check_identifier(database)
    p = {"run_id": run_id, "tick": tick}
    nodes = _rows(
        client,
        f"SELECT npc_id, argMax(place, tick) AS place, argMax(reputation, tick) AS reputation, "  # noqa: S608 - checked identifier
        f"max(tick) AS as_of FROM {db}.npc_snapshots FINAL "
        "WHERE run_id = {run_id:String} AND tick <= {tick:UInt32} GROUP BY npc_id ORDER BY npc_id",
        p,
    )
    edges = _rows(
        client,
        f"SELECT npc_id AS source, other_id AS target, argMax(affinity, tick) AS affinity, "  # noqa: S608 - checked identifier
        f"argMax(trust, tick) AS trust, argMax(familiarity, tick) AS familiarity "
        f"FROM {db}.relationship_snapshots FINAL "
        "WHERE run_id = {run_id:String} AND tick <= {tick:UInt32} "
        "GROUP BY npc_id, other_id ORDER BY npc_id, other_id",
        p,
    )
    return {"nodes": nodes, "edges": edges}


def npc_history(
    client: Client, database: str, run_id: str, npc_id: str, top: int = 5
) -> dict[str, Any]:
    """An NPC's snapshots over time: reputation and goal progress per tick, and affinity and
    trust per tick toward its ``top`` closest relationships (largest |affinity| at the end)."""
    db = check_identifier(database)
    p = {"run_id": run_id, "npc_id": npc_id}
    snaps = _rows(
        client,
        f"SELECT tick, reputation, state FROM {db}.npc_snapshots FINAL "  # noqa: S608 - checked identifier
        "WHERE run_id = {run_id:String} AND npc_id = {npc_id:String} ORDER BY tick",
        p,
    )
    goals: dict[str, list[list[float]]] = {}
    for s in snaps:
        state = orjson.loads(s["state"]) if s["state"] else {}
        for kind, progress in sorted((state.get("goals") or {}).items()):
            goals.setdefault(kind, []).append([s["tick"], progress])
    closest = _rows(
        client,
        f"SELECT other_id, argMax(affinity, tick) AS last FROM {db}.relationship_snapshots FINAL "  # noqa: S608 - checked identifier
        "WHERE run_id = {run_id:String} AND npc_id = {npc_id:String} "
        f"GROUP BY other_id ORDER BY abs(last) DESC, other_id LIMIT {max(1, min(top, 20))}",
        p,
    )
    others = [r["other_id"] for r in closest]
    series = _rows(
        client,
        f"SELECT other_id, tick, affinity, trust FROM {db}.relationship_snapshots FINAL "  # noqa: S608 - checked identifier
        "WHERE run_id = {run_id:String} AND npc_id = {npc_id:String} "
        "AND has({others:Array(String)}, other_id) ORDER BY other_id, tick",
        {**p, "others": others},
    )
    relationships: dict[str, dict[str, list[list[float]]]] = {
        o: {"affinity": [], "trust": []} for o in others
    }
    for r in series:
        relationships[r["other_id"]]["affinity"].append([r["tick"], r["affinity"]])
        relationships[r["other_id"]]["trust"].append([r["tick"], r["trust"]])
    return {
        "reputation": [[s["tick"], s["reputation"]] for s in snaps],
        "goals": goals,
        "relationships": [{"other_id": o, **relationships[o]} for o in others],
    }


def llm_calls_for_request(client: Client, database: str, request_id: str) -> list[dict[str, Any]]:
    """The LLM calls (attempts, cache hits) made to render one request, in attempt order."""
    db = check_identifier(database)
    return _rows(
        client,
        f"SELECT call_id, attempt, outcome, error, cache_hit, model, prompt_hash, tokens_in, "  # noqa: S608 - checked identifier
        f"tokens_out, latency_ms, at FROM {db}.llm_calls FINAL "
        "WHERE request_id = {request_id:String} ORDER BY attempt, at, call_id",
        {"request_id": request_id},
    )


def events_referring_to(
    client: Client, database: str, run_id: str, event_id: str
) -> list[dict[str, Any]]:
    """Later events of the run that refer back to ``event_id`` (they re-scored it)."""
    db = check_identifier(database)
    rows = _rows(
        client,
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {db}.events FINAL "  # noqa: S608 - checked identifier
        "WHERE run_id = {run_id:String} AND has(refs, {event_id:String}) "
        f"ORDER BY tick, event_id LIMIT {MAX_EVENTS}",
        {"run_id": run_id, "event_id": event_id},
    )
    return [_event_row(r) for r in rows]
