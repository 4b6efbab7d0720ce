"""World events in log order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from api.deps import Cursor, Limit, RunId, StorageDep, TickFrom, TickTo
from api.schemas import EventPagePublic, EventPublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=EventPagePublic)
async def read_events(
    storage: StorageDep,
    run_id: RunId = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    type: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Event type id.")
    ] = None,
    npc: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="NPC as actor, target or witness."),
    ] = None,
    place: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> EventPagePublic:
    """Events ordered by (tick, event_id), filtered by run, tick range, type, NPC, place."""
    page = await run_in_thread(
        queries.events,
        storage.client,
        storage.database,
        run_id=run_id,
        tick_from=tick_from,
        tick_to=tick_to,
        type=type,
        npc=npc,
        place=place,
        limit=limit,
        cursor=cursor,
    )
    return EventPagePublic.model_validate(page, from_attributes=True)


@router.get("/{event_id}", response_model=EventPublic, responses={404: {"description": "Unknown"}})
async def read_event(
    storage: StorageDep,
    event_id: Annotated[str, Path(min_length=1, max_length=64)],
    run_id: RunId = None,
) -> EventPublic:
    """One event by id (the same event in a run and its branches: ``run_id`` says which
    run's; without it, the first run that stored it); 404 if unknown."""
    row = await run_in_thread(
        queries.event_by_id, storage.client, storage.database, event_id, run_id
    )
    if row is None:
        raise HTTPException(status_code=404, detail=f"event {event_id!r} not found")
    return EventPublic.model_validate(row)
