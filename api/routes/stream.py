"""Live stream of new posts as server-sent events."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Channel, RunId, StorageDep
from api.schemas import PostPublic
from storage import queries, run_in_thread

log = logging.getLogger(__name__)

router = APIRouter(prefix="/stream", tags=["stream"])

# An insert's rows carry the time it started but become visible when it ends, so each
# poll looks this far behind the newest post it sent and drops the ids it already sent.
OVERLAP_MS = 5000
KEEPALIVE_S = 15.0
# The largest resume point (epoch ms) accepted, from ``since_ms`` or ``Last-Event-ID``: far
# beyond any real clock and well inside the Int64 the query binds it to.
MAX_SINCE_MS = 2**62
_EVENT_ID_HEAD = re.compile(r"[0-9]{1,19}")


def _since(last_event_id: str | None, since_ms: int | None) -> int | None:
    """Resume point: the ``Last-Event-ID`` a browser sends back on reconnect, else ``since_ms``.

    An id this stream did not issue (not ASCII digits, or beyond :data:`MAX_SINCE_MS`) is
    treated as absent, as SSE clients expect, rather than failing the request.
    """
    if last_event_id:
        head = last_event_id.split(":", 1)[0]
        if _EVENT_ID_HEAD.fullmatch(head) and int(head) <= MAX_SINCE_MS:
            return int(head)
    return since_ms


@router.get(
    "/posts",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: one `post` event per new post "
            "(`data` is a PostPublic, `id` is `<stored ms>:<post id>`), comments as keep-alives.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream_posts(
    request: Request,
    storage: StorageDep,
    run_id: RunId = None,
    channel: Channel = None,
    since_ms: Annotated[
        int | None,
        Query(ge=0, le=MAX_SINCE_MS, description="Also send posts stored since this epoch ms."),
    ] = None,
    poll_s: Annotated[float, Query(ge=0.1, le=10, description="Poll interval.")] = 1.0,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> StreamingResponse:
    """New posts as they are stored (filtered by run and channel), until the client leaves."""
    client, database = storage.client, storage.database
    start = _since(last_event_id, since_ms)
    if start is None:
        start = await run_in_thread(queries.now_ms, client)
    state = request.app.state

    async def events() -> AsyncIterator[bytes]:
        watermark = start
        sent: dict[str, int] = {}  # post id -> stored ms, for posts inside the overlap window
        last_write = time.monotonic()
        first = True
        state.live_streams += 1
        try:
            yield b"retry: 2000\n\n"
            while not await request.is_disconnected():
                low = watermark - OVERLAP_MS
                sent = {k: v for k, v in sent.items() if v >= low}
                while True:  # drain: a big insert may hold more than one page
                    rows = await run_in_thread(
                        queries.posts_stored_since,
                        client,
                        database,
                        low,
                        run_id=run_id,
                        channel=channel,
                        exclude=list(sent),
                    )
                    for row in rows:
                        stored = row.pop("stored_ms")
                        sent[row["post_id"]] = stored
                        if first and stored < start:
                            continue  # visible before the client came: not new to it
                        watermark = max(watermark, stored)
                        post = PostPublic.model_validate(row).model_dump_json()
                        yield (
                            f"id: {stored}:{row['post_id']}\nevent: post\ndata: {post}\n\n"
                        ).encode()
                        last_write = time.monotonic()
                    if len(rows) < queries.MAX_LIMIT:
                        break
                first = False
                if time.monotonic() - last_write >= KEEPALIVE_S:
                    yield b": keep-alive\n\n"
                    last_write = time.monotonic()
                await asyncio.sleep(poll_s)
        finally:
            state.live_streams -= 1
            log.debug("live stream closed (run %s, channel %s)", run_id, channel)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
