"""Counts and LLM usage."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RunId, StorageDep
from api.schemas import StatsPublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("", response_model=StatsPublic)
async def read_stats(storage: StorageDep, run_id: RunId = None) -> StatsPublic:
    """Rows per table, posts per channel and moderation status, LLM tokens and calls."""
    data = await run_in_thread(queries.stats, storage.client, storage.database, run_id=run_id)
    return StatsPublic.model_validate(data)
