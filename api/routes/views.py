"""What the web UI draws: a run hour by hour, its events with posts and cascade, the town
as a graph at a tick (and how it changed since another), and an NPC's history.

Read-only, shaped for the pages in ``api/static/`` (one request per picture). The
catalog of the run's world fills in what the log does not repeat: names, fame, the
starting relationships (an NPC is snapshotted only after it changes), and where
everyone is at an hour (the schedules).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from api.deps import MAX_TICK, StorageDep
from api.worlds import UnknownWorld, WorldCatalogs
from catalog import Catalog
from sim.calendar import hour_of
from sim.world import WorldIndex
from storage import queries, run_in_thread, views
from worldfeed.settings import Settings

router = APIRouter(prefix="/views", tags=["views"])

RunPath = Annotated[str, Path(min_length=1, max_length=64, description="Run id.")]
NpcPath = Annotated[str, Path(min_length=1, max_length=64, description="NPC id.")]
Tick = Annotated[int | None, Query(ge=0, le=MAX_TICK)]
Text = Annotated[str | None, Query(min_length=1, max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown run"}}


async def _run(storage: StorageDep, run_id: str) -> dict[str, Any]:
    run = await run_in_thread(queries.run_by_id, storage.client, storage.database, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
    return run


async def _catalog(request: Request, run: dict[str, Any]) -> Catalog | None:
    catalogs: WorldCatalogs = request.app.state.catalogs
    settings: Settings = request.app.state.settings
    try:
        return await catalogs.of_run(run["world"], settings.catalog_dir)
    except UnknownWorld:
        return None


@functools.lru_cache(maxsize=8)
def _index(catalog: Catalog) -> WorldIndex:
    return WorldIndex.build(catalog)


def starting_reputation(fame: float) -> float:
    """An NPC's reputation before its first snapshot (catalog/README.md: 50 + fame/4)."""
    return 50 + fame / 4


@router.get("/runs/{run_id}/hourly", responses=NOT_FOUND)
async def run_hourly(storage: StorageDep, run_id: RunPath) -> dict[str, Any]:
    """The run hour by hour (events, posts per channel, LLM calls, tokens, cache hits,
    fallbacks, ticks/s) with its totals and the dead letters per stage."""
    run = await _run(storage, run_id)
    hours = await run_in_thread(views.hourly, storage.client, storage.database, run_id)
    stats = await run_in_thread(queries.stats, storage.client, storage.database, run_id=run_id)
    dead = await run_in_thread(views.dead_letters_by_stage, storage.client, storage.database)
    return {"run": run, "hours": hours, "stats": stats, "dead_letters": dead}


@router.get("/runs/{run_id}/events", responses=NOT_FOUND)
async def run_events(
    storage: StorageDep,
    run_id: RunPath,
    type: Text = None,
    npc: Text = None,
    place: Text = None,
    min_impact: Annotated[float | None, Query(ge=0, le=10)] = None,
    tick_from: Tick = None,
    tick_to: Tick = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_EVENTS)] = 200,
) -> dict[str, Any]:
    """Events of a run, filtered by type, NPC, place, minimum impact and ticks, each with
    the posts it caused and the events that re-scored it; plus the filters' values."""
    await _run(storage, run_id)
    return await run_in_thread(
        views.events_with_posts,
        storage.client,
        storage.database,
        run_id,
        type=type,
        npc=npc,
        place=place,
        min_impact=min_impact,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
    )


def _graph(
    catalog: Catalog | None, stored: dict[str, Any], hour: int | None
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Nodes and edges: the catalog's start, overridden by the snapshots."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    index = _index(catalog) if catalog is not None else None
    if catalog is not None and index is not None:
        # where the schedules put everyone at that hour, after capacity turned some away
        where = (
            {n: place for place, npcs in index.occupancy[hour].items() for n in npcs}
            if hour is not None
            else {}
        )
        for npc_id, npc in catalog.npcs.items():
            place = where.get(npc_id)
            nodes[npc_id] = {
                "npc_id": npc_id,
                "handle": npc.handle,
                "display_name": npc.display_name,
                "occupation": npc.occupation,
                "fame": npc.fame,
                "reputation": starting_reputation(npc.fame),
                "place": place,
            }
        for source, others in index.relationships.items():
            for target, (affinity, trust, familiarity) in others.items():
                edges[(source, target)] = {
                    "source": source,
                    "target": target,
                    "affinity": affinity,
                    "trust": trust,
                    "familiarity": familiarity,
                }
    for n in stored["nodes"]:
        node = nodes.setdefault(
            n["npc_id"],
            {"npc_id": n["npc_id"], "handle": n["npc_id"], "display_name": n["npc_id"], "fame": 0},
        )
        node["reputation"] = n["reputation"]
        if hour is None:
            node["place"] = n["place"]
    for e in stored["edges"]:
        edges[(e["source"], e["target"])] = dict(e)
    return list(nodes.values()), edges


@router.get("/runs/{run_id}/town", responses=NOT_FOUND)
async def run_town(
    request: Request,
    storage: StorageDep,
    run_id: RunPath,
    tick: Tick = None,
    from_tick: Annotated[
        int | None, Query(ge=0, le=MAX_TICK, description="Compare with the town at this tick.")
    ] = None,
) -> dict[str, Any]:
    """The town at ``tick`` (default: the last snapshot): NPCs sized by reputation, where
    they are, relationships; with ``from_tick``, each relationship's change since then."""
    run = await _run(storage, run_id)
    catalog = await _catalog(request, run)
    ticks = await run_in_thread(views.snapshot_ticks, storage.client, storage.database, run_id)
    if tick is None:
        tick = ticks[-1] if ticks else 0
    stored = await run_in_thread(views.graph_at, storage.client, storage.database, run_id, tick)
    done = await run_in_thread(
        queries.ticks, storage.client, storage.database, run_id, tick_from=tick, tick_to=tick
    )
    sim_minute = done[0]["sim_minute"] if done else None
    hour = hour_of(sim_minute) if sim_minute is not None else None
    nodes, edges = _graph(catalog, stored, hour)
    if from_tick is not None:
        before_stored = await run_in_thread(
            views.graph_at, storage.client, storage.database, run_id, from_tick
        )
        _, before = _graph(catalog, before_stored, None)
        for key, edge in edges.items():
            old = before.get(key)
            edge["affinity_before"] = old["affinity"] if old else None
            edge["trust_before"] = old["trust"] if old else None
    places = []
    if catalog is not None:
        present: dict[str, list[str]] = {}
        for node in nodes:
            if node.get("place"):
                present.setdefault(node["place"], []).append(node["npc_id"])
        places = [
            {
                "place_id": p.id,
                "name": p.name,
                "kind": p.kind,
                "present": sorted(present.get(p.id, [])),
            }
            for p in catalog.places.values()
        ]
    return {
        "run_id": run_id,
        "world": run["world"],
        "ticks": ticks,
        "tick": tick,
        "sim_minute": sim_minute,
        "from_tick": from_tick,
        "nodes": nodes,
        "edges": list(edges.values()),
        "places": places,
    }


@router.get("/runs/{run_id}/npcs/{npc_id}/history", responses=NOT_FOUND)
async def npc_history(
    request: Request,
    storage: StorageDep,
    run_id: RunPath,
    npc_id: NpcPath,
    top: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """An NPC over the run: reputation and goal progress per snapshot, and affinity and
    trust toward its closest relationships (largest |affinity| at the end)."""
    run = await _run(storage, run_id)
    history = await run_in_thread(
        views.npc_history, storage.client, storage.database, run_id, npc_id, top
    )
    catalog = await _catalog(request, run)
    names = {n.id: n.handle for n in catalog.npcs.values()} if catalog is not None else {}
    for rel in history["relationships"]:
        rel["handle"] = names.get(rel["other_id"], rel["other_id"])
    return {"run_id": run_id, "npc_id": npc_id, **history}
