"""Runs and their ticks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import Limit, StorageDep, TickFrom, TickTo
from api.schemas import RunPublic, TickPublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/runs", tags=["runs"])

RunPath = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", response_model=list[RunPublic])
async def read_runs(storage: StorageDep, limit: Limit = 100) -> list[RunPublic]:
    """Runs, newest first, with their progress."""
    rows = await run_in_thread(queries.runs, storage.client, storage.database, limit=limit)
    return [RunPublic.model_validate(r) for r in rows]


@router.get("/{run_id}", response_model=RunPublic, responses={404: {"description": "Unknown"}})
async def read_run(storage: StorageDep, run_id: RunPath) -> RunPublic:
    """One run; 404 if unknown."""
    row = await run_in_thread(queries.run_by_id, storage.client, storage.database, run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"run {run_id!r} not found")
    row["branches"] = await run_in_thread(
        queries.branches_of, storage.client, storage.database, run_id
    )
    return RunPublic.model_validate(row)


@router.get("/{run_id}/ticks", response_model=list[TickPublic])
async def read_ticks(
    storage: StorageDep,
    run_id: RunPath,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Limit = 100,
) -> list[TickPublic]:
    """A run's completed ticks in order with state hashes (next page: tick_from = last + 1)."""
    rows = await run_in_thread(
        queries.ticks,
        storage.client,
        storage.database,
        run_id,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
    )
    return [TickPublic.model_validate(r) for r in rows]
