"""Live stream of new posts as server-sent events.

Every stream is bounded: at most ``stream_max_clients`` at once (then 503 with
``Retry-After``), each lives at most ``stream_lifetime_s`` (then ends cleanly; the
client reconnects with its ``Last-Event-ID`` and misses nothing), a client that takes no
data for ``stream_idle_s`` is dropped, and each poll reads at most
``stream_rows_per_poll`` posts through a keyset cursor ``(stored ms, post id)``, so a
replay from ``since_ms=0`` costs the server the same per poll as a live tail.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from api.deps import Channel, RunId, SettingsDep, StorageDep
from api.schemas import PostPublic
from storage import queries, run_in_thread

log = logging.getLogger(__name__)

router = APIRouter(prefix="/stream", tags=["stream"])

# An insert's rows carry the time it started but become visible when it ends, so each
# pass re-reads this far behind the newest post it sent and drops the ids it already sent.
OVERLAP_MS = 5000
KEEPALIVE_S = 15.0
RETRY_AFTER_S = 5
# The largest resume point (epoch ms) accepted, from ``since_ms`` or ``Last-Event-ID``: far
# beyond any real clock and well inside the Int64 the query binds it to.
MAX_SINCE_MS = 2**62
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"const": "post"},
        "id": {"type": "string", "pattern": "^[0-9]{1,19}:[A-Za-z0-9_.-]{1,64}$"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/PostPublic"},
        },
    },
    "required": ["event", "id", "data"],
}
_EVENT_ID_HEAD = re.compile(r"[0-9]{1,19}")
_EVENT_ID_POST = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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


def _last_post(last_event_id: str | None) -> str:
    """The post id of a valid ``Last-Event-ID`` (``<ms>:<post id>``): posts of that same ms up
    to it were sent already. ``""`` when absent or invalid."""
    if _since(last_event_id, None) is None or last_event_id is None:
        return ""
    post_id = last_event_id.partition(":")[2]
    return post_id if _EVENT_ID_POST.fullmatch(post_id) else ""


class _ClientStalled(Exception):
    """A send to the client did not complete within the idle limit (not an ``OSError``,
    which Starlette turns into a disconnect)."""


class LiveStream(StreamingResponse):
    """A streaming response that holds one of the app's stream slots until it ends, and
    ends when its client takes no data for ``idle_s`` (a send that does not complete)."""

    def __init__(self, content: AsyncIterator[bytes], request: Request, idle_s: float) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.state = request.app.state
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_or_give_up(message: Message) -> None:
            try:
                async with asyncio.timeout(self.idle_s):
                    await send(message)
            except TimeoutError as exc:
                raise _ClientStalled from exc

        try:
            await super().__call__(scope, receive, send_or_give_up)
        except _ClientStalled:
            log.info("live stream closed: its client took no data for %.0fs", self.idle_s)
        finally:
            self.state.live_streams -= 1


@router.get(
    "/posts",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: one `post` event per new post "
            "(`data` is a PostPublic, `id` is `<stored ms>:<post id>`), comments as "
            "keep-alives; it ends after the server's stream lifetime (reconnect with "
            "`Last-Event-ID`).",
            # the schema of one event (OpenAPI 3.1 reads `schema` of an event stream so)
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        503: {"description": "Too many live streams; retry after `Retry-After` seconds."},
    },
)
async def stream_posts(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
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
    state = request.app.state
    if state.live_streams >= settings.stream_max_clients:
        raise HTTPException(
            status_code=503,
            detail=f"too many live streams (at most {settings.stream_max_clients})",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    client, database = storage.client, storage.database
    start = _since(last_event_id, since_ms)
    start_after = _last_post(last_event_id)
    state.live_streams += 1  # released by LiveStream when the response ends
    try:
        if start is None:
            start = await run_in_thread(queries.now_ms, client)
    except BaseException:
        state.live_streams -= 1
        raise
    rows_per_poll = settings.stream_rows_per_poll
    ends_at = time.monotonic() + settings.stream_lifetime_s

    async def read(cursor: tuple[int, str | None], limit: int) -> list[dict[str, Any]]:
        return await run_in_thread(
            queries.posts_stored_since,
            client,
            database,
            max(0, cursor[0]),
            run_id=run_id,
            channel=channel,
            after_id=cursor[1],
            limit=limit,
        )

    async def events() -> AsyncIterator[bytes]:
        watermark = start  # newest stored ms sent (or the resume point)
        sent: dict[str, int] = {}  # post id -> stored ms, for posts inside the overlap window
        # where the next read goes on: None starts a pass at the overlap window behind the
        # watermark; a pass that used up a poll's rows goes on from its last row next poll
        cursor: tuple[int, str | None] | None = None
        # the first pass ended: a post stored before `start` (and up to `start_after` in
        # its ms) is new now, one that was still being inserted when the client came
        caught_up = False
        last_write = time.monotonic()
        yield b"retry: 2000\n\n"
        while time.monotonic() < ends_at and not await request.is_disconnected():
            if cursor is None:
                cursor = (watermark - OVERLAP_MS, None)
            budget = rows_per_poll
            while budget > 0:
                limit = min(queries.MAX_LIMIT, budget)
                rows = await read(cursor, limit)
                budget -= len(rows)
                for row in rows:
                    stored: int = row.pop("stored_ms")
                    post_id: str = row["post_id"]
                    cursor = (stored, post_id)
                    if post_id in sent:
                        continue
                    sent[post_id] = stored
                    if not caught_up and (stored, post_id) <= (start, start_after):
                        continue  # visible before the client came: not new to it
                    watermark = max(watermark, stored)
                    post = PostPublic.model_validate(row).model_dump_json()
                    yield f"id: {stored}:{post_id}\nevent: post\ndata: {post}\n\n".encode()
                    last_write = time.monotonic()
                if len(rows) < limit:  # the end of what is visible: next poll, a new pass
                    cursor = None
                    caught_up = True
                    break
            low = watermark - OVERLAP_MS
            sent = {k: v for k, v in sent.items() if v >= low}
            if time.monotonic() - last_write >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                last_write = time.monotonic()
            await asyncio.sleep(min(poll_s, max(0.0, ends_at - time.monotonic())))
        log.debug("live stream ended (run %s, channel %s)", run_id, channel)

    return LiveStream(events(), request, settings.stream_idle_s)
