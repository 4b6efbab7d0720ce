"""The public, newest-first feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.cache import PageCache
from api.deps import Channel, Cursor, Limit, RunId, StorageDep, TickFrom, TickTo
from api.postindex import PostIndex
from api.schemas import PostPagePublic
from api.timeline import Timelines
from storage import queries, run_in_thread

router = APIRouter(prefix="/feed", tags=["feed"])


@router.get(
    "",
    response_model=PostPagePublic,
    responses={
        200: {"headers": {"X-Cache": {"description": "index, memory, hit, shared or miss"}}}
    },
)
async def read_feed(
    request: Request,
    storage: StorageDep,
    channel: Channel = None,
    run_id: RunId = None,
    author: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    place: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Posts newest first (tick, post_id descending); blocked posts never appear.

    Where the sink runs in the API, any page of a run's feed comes from the post
    index (``X-Cache: index``, see :mod:`api.postindex`) once it is filled, and a
    channel's recent pages across runs from memory (``X-Cache: memory``), as fresh as
    what the sink has stored: see :mod:`api.timeline`. Other pages may be up to a
    second old (``X-Cache: hit``): see :mod:`api.cache`.
    """

    async def load() -> bytes:
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
        return PostPagePublic.model_validate(page, from_attributes=True).model_dump_json().encode()

    after = queries.decode_cursor("feed", cursor) if cursor else None
    if place is None:  # a run's feed, any page: from the post index once it is filled
        index: PostIndex = request.app.state.post_index
        body = index.page(run_id, channel, author, tick_from, tick_to, after, limit)
        if body is not None:
            return Response(body, media_type="application/json", headers={"X-Cache": "index"})
    if place is None and tick_from is None and tick_to is None:  # a plain timeline
        timelines: Timelines = request.app.state.timelines
        body = await timelines.page((run_id, channel, author), limit, after)
        if body is not None:
            return Response(body, media_type="application/json", headers={"X-Cache": "memory"})
    cache: PageCache = request.app.state.feed_cache
    key = (storage.database, run_id, channel, author, place, tick_from, tick_to, limit, cursor)
    body, outcome = await cache.get(key, load)
    return Response(body, media_type="application/json", headers={"X-Cache": outcome})
