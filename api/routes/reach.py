"""A post's reach in the world: who read it and what they did, tick by tick (issue 18)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import StorageDep
from api.schemas import ReachPublic, ReachTickPublic
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
