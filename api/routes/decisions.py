"""LLM decisions (issue 12): what focal NPCs chose and what the engine made of it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Cursor, Limit, RunId, StorageDep, TickFrom, TickTo
from api.schemas import DecisionPagePublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/decisions", tags=["decisions"])


@router.get("", response_model=DecisionPagePublic)
async def read_decisions(
    storage: StorageDep,
    run_id: RunId = None,
    npc: Annotated[str | None, Query(min_length=1, max_length=64, description="NPC id.")] = None,
    outcome: Annotated[
        Literal["accepted", "rejected", "fallback"] | None,
        Query(description="What the engine did with it."),
    ] = None,
    reason: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Reason code of a rejection or fallback (e.g. target_unreachable).",
        ),
    ] = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> DecisionPagePublic:
    """Decisions ordered by (tick, NPC), filtered by run, NPC, outcome, reason and ticks."""
    page = await run_in_thread(
        queries.decisions,
        storage.client,
        storage.database,
        run_id=run_id,
        npc=npc,
        outcome=outcome,
        reason=reason,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
        cursor=cursor,
    )
    return DecisionPagePublic.model_validate(page, from_attributes=True)
