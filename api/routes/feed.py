"""The public, newest-first feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Channel, Cursor, Limit, RunId, StorageDep, TickFrom, TickTo
from api.schemas import PostPagePublic
from storage import queries, run_in_thread

router = APIRouter(prefix="/feed", tags=["feed"])


@router.get("", response_model=PostPagePublic)
async def read_feed(
    storage: StorageDep,
    channel: Channel = None,
    run_id: RunId = None,
    author: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    place: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PostPagePublic:
    """Posts newest first (tick, post_id descending); blocked posts never appear."""
    page = await run_in_thread(
        queries.feed,
        storage.client,
        storage.database,
        run_id=run_id,
        channel=channel,
        author=author,
        place=place,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
        cursor=cursor,
    )
    return PostPagePublic.model_validate(page, from_attributes=True)
