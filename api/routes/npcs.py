"""NPCs: profiles from the world catalog, current state from the latest snapshot, timelines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from api.deps import RunId, SettingsDep, StorageDep, TickFrom, TickTo
from api.schemas import (
    GoalPublic,
    MemoryPublic,
    NpcPagePublic,
    NpcPublic,
    NpcStatePublic,
    NpcSummaryPublic,
    RelationshipPublic,
    TimelineItemPublic,
    TimelinePublic,
)
from api.worlds import UnknownWorld, WorldCatalogs
from catalog import Catalog, Npc
from storage import queries, run_in_thread
from worldfeed.settings import Settings

router = APIRouter(prefix="/npcs", tags=["npcs"])

NpcPath = Annotated[str, Path(min_length=1, max_length=64, description="NPC id.")]


async def _run_and_catalog(
    request: Request, storage: StorageDep, settings: Settings, run_id: str | None
) -> tuple[str | None, Catalog]:
    """The run (given, else the newest; None when there is none) and its world's catalog."""
    world: str | None = None
    if run_id is not None:
        run = await run_in_thread(queries.run_by_id, storage.client, storage.database, run_id)
        if run is None:
            raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
        world = run.get("world")
    else:
        run_id = await run_in_thread(queries.latest_run_id, storage.client, storage.database)
        if run_id is not None:
            run = await run_in_thread(queries.run_by_id, storage.client, storage.database, run_id)
            world = run.get("world") if run else None
    catalogs: WorldCatalogs = request.app.state.catalogs
    try:
        return run_id, await catalogs.of_run(world, settings.catalog_dir)
    except UnknownWorld as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc


def _summary(npc: Npc) -> dict[str, Any]:
    return {
        "npc_id": npc.id,
        "handle": npc.handle,
        "display_name": npc.display_name,
        "occupation": npc.occupation,
        "age": npc.age,
        "home": npc.home,
        "work": npc.work,
        "fame": npc.fame,
        "channels": list(npc.channels),
    }


@router.get("", response_model=NpcPagePublic, responses={404: {"description": "Unknown run"}})
async def read_npcs(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    run_id: RunId = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=80, description="Part of the id, handle or name."),
    ] = None,
    occupation: Annotated[str | None, Query(min_length=1, max_length=60)] = None,
    place: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Home or work place id.")
    ] = None,
    channel: Annotated[
        str | None,
        Query(pattern="^(feed|chat|news)$", description="NPCs who write on this channel."),
    ] = None,
    min_fame: Annotated[float | None, Query(ge=0, le=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> NpcPagePublic:
    """NPCs of the run's world (default: the newest run's, else the configured world)."""
    _, catalog = await _run_and_catalog(request, storage, settings, run_id)
    needle = q.lower() if q else None
    matches = [
        npc
        for npc in catalog.npcs.values()
        if (
            needle is None
            or any(needle in s.lower() for s in (npc.id, npc.handle, npc.display_name))
        )
        and (occupation is None or npc.occupation.lower() == occupation.lower())
        and (place is None or place in (npc.home, npc.work))
        and (channel is None or channel in npc.channels)
        and (min_fame is None or npc.fame >= min_fame)
    ]
    page = matches[offset : offset + limit]
    return NpcPagePublic(
        items=[NpcSummaryPublic(**_summary(n)) for n in page], total=len(matches), offset=offset
    )


def _relationships(
    catalog: Catalog, npc_id: str, values: dict[str, list[float]] | None
) -> list[RelationshipPublic]:
    """From a snapshot (``values``) or, before any, the catalog's start values; tags from it."""
    tags: dict[str, list[str]] = {}
    start: dict[str, list[float]] = {}
    for rel in catalog.relationships:
        if rel.source == npc_id:
            tags[rel.target] = list(rel.tags)
            start[rel.target] = [rel.affinity, rel.trust, rel.familiarity]
    out = []
    for other, (affinity, trust, familiarity) in sorted(
        (values if values is not None else start).items()
    ):
        who = catalog.npcs.get(other)
        out.append(
            RelationshipPublic(
                other_id=other,
                handle=who.handle if who else None,
                display_name=who.display_name if who else None,
                affinity=affinity,
                trust=trust,
                familiarity=familiarity,
                tags=tags.get(other, []),
            )
        )
    out.sort(key=lambda r: (-r.affinity, r.other_id))
    return out


def _goals(catalog: Catalog, npc_id: str, progress: dict[str, float] | None) -> list[GoalPublic]:
    goals = [g for g in catalog.goals if g.npc == npc_id]
    known = {g.kind for g in goals}
    out = [
        GoalPublic(
            kind=g.kind,
            target=g.target,
            priority=g.priority,
            progress=(progress or {}).get(g.kind, g.progress),
        )
        for g in goals
    ]
    out += [
        GoalPublic(kind=k, progress=v)
        for k, v in sorted((progress or {}).items())
        if k not in known
    ]
    return out


@router.get("/{npc_id}", response_model=NpcPublic, responses={404: {"description": "Unknown"}})
async def read_npc(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    npc_id: NpcPath,
    run_id: RunId = None,
    memories: Annotated[int, Query(ge=0, le=100, description="Most recent memories.")] = 10,
) -> NpcPublic:
    """Profile, and state as of the latest snapshot in the run (default: the newest run)."""
    run_id, catalog = await _run_and_catalog(request, storage, settings, run_id)
    npc = catalog.npcs.get(npc_id)
    if npc is None:
        raise HTTPException(status_code=404, detail=f"npc {npc_id!r} not found")
    snap = None
    if run_id is not None:
        snap = await run_in_thread(
            queries.npc_snapshot, storage.client, storage.database, run_id, npc_id
        )
    if snap is None:
        state = NpcStatePublic(
            run_id=run_id,
            relationships=_relationships(catalog, npc_id, None),
            memories=[],
            goals=_goals(catalog, npc_id, None),
        )
    else:
        st = snap["state"]
        recent = sorted(st.get("memories", []), key=lambda m: (m[0], m[1]), reverse=True)
        state = NpcStatePublic(
            run_id=run_id,
            tick=snap["tick"],
            place=snap["place"],
            reputation=snap["reputation"],
            relationships=_relationships(catalog, npc_id, st.get("relationships", {})),
            memories=[
                MemoryPublic(tick=m[0], event_id=m[1], text=m[2], salience=m[3])
                for m in recent[:memories]
            ],
            goals=_goals(catalog, npc_id, st.get("goals", {})),
            follows=st.get("follows"),
        )
    return NpcPublic(
        **_summary(npc),
        traits=npc.traits.model_dump(),
        interests=list(npc.interests),
        voice=npc.voice,
        posting_propensity=npc.posting_propensity,
        state=state,
    )


@router.get(
    "/{npc_id}/timeline", response_model=TimelinePublic, responses={404: {"description": "Unknown"}}
)
async def read_timeline(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    npc_id: NpcPath,
    run_id: RunId = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
) -> TimelinePublic:
    """Events the NPC took part in (actor, target, witness) and posts they wrote, newest first."""
    run_id, catalog = await _run_and_catalog(request, storage, settings, run_id)
    if npc_id not in catalog.npcs:
        raise HTTPException(status_code=404, detail=f"npc {npc_id!r} not found")
    items = await run_in_thread(
        queries.npc_timeline,
        storage.client,
        storage.database,
        npc_id,
        run_id=run_id,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
    )
    return TimelinePublic(
        npc_id=npc_id, items=[TimelineItemPublic.model_validate(i) for i in items]
    )
