"""A post's reach in the world: who read it and what they did, tick by tick, and how its
story spread across the town (issue 18)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import StorageDep
from api.schemas import ReachPublic, ReachTickPublic, SpreadPublic, SpreadTickPublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/posts", tags=["posts"])

COUNTS = ("seen", "likes", "reposts", "replies", "feuds")


@router.get("/{post_id}/reach", response_model=ReachPublic)
async def read_reach(
    storage: StorageDep, post_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> ReachPublic:
    """Readers, likes, reposts and replies of a post, in total and per tick (zeros for a
    post nobody read, or a run without the feed loop)."""
    rows = await run_in_thread(queries.reach, storage.client, storage.database, post_id)
    ticks = [ReachTickPublic.model_validate(r) for r in rows]
    totals = {k: sum(getattr(t, k) for t in ticks) for k in COUNTS}
    return ReachPublic(post_id=post_id, by_tick=ticks, **totals)


@router.get(
    "/{post_id}/spread", response_model=SpreadPublic, responses={404: {"description": "Unknown"}}
)
async def read_spread(
    storage: StorageDep, post_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> SpreadPublic:
    """The spread of a post's story across the town: per tick, how many NPCs had read a
    post about its event so far, and what share of the town that is. 404 if unknown."""
    db, client = storage.database, storage.client
    post = await run_in_thread(queries.post_by_id, client, db, post_id)
    if post is None:
        raise HTTPException(status_code=404, detail=f"post {post_id!r} not found")
    run_id, event_id = post["run_id"], post["event_id"]
    rows = await run_in_thread(queries.spread, client, db, run_id, event_id)
    town = await run_in_thread(queries.town_size, client, db, run_id)
    ticks, readers = [], 0
    for row in rows:
        readers += row["new_readers"]
        share = round(readers / town, 4) if town else None
        ticks.append(SpreadTickPublic(readers=readers, share=share, **row))
    return SpreadPublic(
        post_id=post_id,
        run_id=run_id,
        event_id=event_id,
        town=town,
        readers=readers,
        share=round(readers / town, 4) if town else None,
        by_tick=ticks,
    )
