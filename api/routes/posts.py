"""Posts in log order, and one post by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from api.deps import Channel, Cursor, Limit, RunId, StorageDep, TickFrom, TickTo
from api.schemas import PostPagePublic, PostPublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/posts", tags=["posts"])


@router.get("", response_model=PostPagePublic)
async def read_posts(
    storage: StorageDep,
    run_id: RunId = None,
    channel: Channel = None,
    author: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    event_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PostPagePublic:
    """Posts oldest first (tick, post_id ascending); blocked posts never appear."""
    page = await run_in_thread(
        queries.posts,
        storage.client,
        storage.database,
        run_id=run_id,
        channel=channel,
        author=author,
        event_id=event_id,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
        cursor=cursor,
    )
    return PostPagePublic.model_validate(page, from_attributes=True)


@router.get("/{post_id}", response_model=PostPublic, responses={404: {"description": "Unknown"}})
async def read_post(
    storage: StorageDep, post_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> PostPublic:
    """One post by id; 404 if unknown (or blocked)."""
    row = await run_in_thread(queries.post_by_id, storage.client, storage.database, post_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"post {post_id!r} not found")
    return PostPublic.model_validate(row)
