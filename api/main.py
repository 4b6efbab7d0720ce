"""The API application: :func:`create_app` assembles the routers.

Start it with uvicorn's factory mode (settings from ``WORLDFEED_*``)::

    uvicorn api.main:app_from_env --factory --host 127.0.0.1 --port 8000

The lifespan connects to ClickHouse (unless a client is passed in), applies the
migrations, then runs the ``on_startup`` hooks (e.g. the embedded sink of the streams
package, which then shares the chDB engine); on shutdown it runs ``on_shutdown``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.admin_token import with_admin_token
from api.cache import PageCache
from api.deps import Storage, check_admin_token
from api.metrics import RequestTimer
from api.postindex import PostIndex
from api.routes import (
    admin,
    decisions,
    events,
    feed,
    health,
    lineage,
    metrics,
    npcs,
    posts,
    reach,
    runs,
    sql,
    stats,
    stream,
    thread,
    ui,
    views,
)
from api.timeline import Filter, Timelines
from api.worlds import CATALOG_WORLDS, WorldCatalogs
from bus.commands import CommandSender
from storage import connect, database_of, migrate, queries, run_in_thread
from storage.queries import InvalidCursor, InvalidQuery, ping
from worldfeed.settings import Settings

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
HealthCheck = Callable[[], Awaitable[str]]


def create_app(
    settings: Settings,
    client: Client | None = None,
    *,
    health_checks: dict[str, HealthCheck] | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    commands: CommandSender | None = None,
    worlds_dir: Path | None = None,
    feed_cache_s: float = 1.0,
    progress: health.Progress | None = None,
) -> FastAPI:
    """Build the API for ``settings``.

    ``client``: a clickhouse-connect client to use instead of ``connect(settings.clickhouse_dsn)``
    (the database always comes from the DSN). ``health_checks``: extra named async checks
    for ``GET /health`` (each returns ``"ok"`` or raises / returns an error text) beside
    the built-in ``clickhouse`` one. ``on_startup`` hooks run after migrations, in order;
    ``on_shutdown`` hooks run in order at shutdown (each one even if an earlier one failed).
    ``commands``: the sender of admin run commands (default: one for ``settings``, started
    on the first command). ``worlds_dir``: where ``POST /admin/worlds`` writes worlds
    (default ``settings.worlds_dir``). ``feed_cache_s``: how long a ``/feed`` page is served from
    the cache (:class:`api.cache.PageCache`; 0 turns it off). ``progress``: the consumer
    lag and last completed tick that ``GET /health`` reports (where the API runs the sink).
    """
    settings = with_admin_token(settings)
    database = database_of(settings.clickhouse_dsn)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ch = client if client is not None else await run_in_thread(connect, settings.clickhouse_dsn)
        applied = await run_in_thread(migrate, ch, database)
        if applied:
            log.info("migrations applied to %s: %s", database, applied)
        app.state.storage = Storage(ch, database)

        async def check_clickhouse() -> str:
            return await run_in_thread(ping, ch)

        app.state.health_checks = {"clickhouse": check_clickhouse, **(health_checks or {})}
        for hook in on_startup:
            await hook()
        try:
            yield
        finally:
            for hook in (*on_shutdown, app.state.commands.close):
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook %r failed", hook)

    app = FastAPI(
        title="worldfeed",
        summary="Feeds, posts, events and runs of a simulated social world.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.commands = commands or CommandSender(settings)
    app.state.worlds_dir = worlds_dir or settings.worlds_dir
    app.state.catalogs = WorldCatalogs(
        [CATALOG_WORLDS, app.state.worlds_dir], settings.world_cache_max_bytes
    )
    app.state.progress = progress
    app.state.seeding = None  # the world generation in progress (one at a time)
    app.state.live_streams = 0
    app.state.feed_cache = PageCache(feed_cache_s, max_bytes=settings.api_cache_max_bytes)

    async def newest_posts(f: Filter, n: int) -> list[dict[str, Any]]:
        storage: Storage = app.state.storage
        run_id, channel, author = f
        page = await run_in_thread(
            queries.feed,
            storage.client,
            storage.database,
            run_id=run_id,
            channel=channel,
            author=author,
            limit=n,
        )
        return page.items

    app.state.timelines = Timelines(
        newest_posts,
        capacity=settings.api_timeline_posts,
        max_bytes=settings.api_timeline_max_bytes,
    )

    # filled and fed only where the sink runs in this process (cli.main.feed_timelines)
    app.state.post_index = PostIndex(max_posts=settings.api_feed_index_max_posts)

    app.add_middleware(AdminGuard, settings=settings)
    app.add_middleware(HostGuard, allowed=settings.api_allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestTimer)  # outermost: times the guards' answers too

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_: Request, exc: InvalidQuery) -> JSONResponse:
        # valid types but an unanswerable combination (tick_from > tick_to), or a cursor this
        # API did not issue: a 422 shaped like FastAPI's own, as the OpenAPI spec declares
        where = ["query", "cursor"] if isinstance(exc, InvalidCursor) else ["query"]
        return JSONResponse(
            status_code=422,
            content={"detail": [{"type": "value_error", "loc": where, "msg": str(exc)}]},
        )

    for module in (
        health,
        metrics,
        feed,
        posts,
        reach,
        thread,
        events,
        decisions,
        runs,
        npcs,
        stats,
        stream,
        admin,
        sql,
        views,
        ui,
    ):
        app.include_router(module.router)
    app.include_router(lineage.admin)
    app.include_router(lineage.public)
    app.mount("/static", StaticFiles(directory=ui.STATIC_DIR), name="static")
    return app


class AdminGuard:
    """Refuses every ``/admin`` request without the admin token, before a route reads a body.

    A plain ASGI middleware: ``@app.middleware("http")`` (BaseHTTPMiddleware) would wrap
    every request of every route in extra tasks and streams, a measurable cost at
    hundreds of feed requests per second.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/admin" or path.startswith("/admin/"):
            request = Request(scope, receive)
            try:
                check_admin_token(self.settings, request.headers.get("authorization"))
            except HTTPException as exc:
                response = await http_exception_handler(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HostGuard:
    """Answers 400 to a request whose ``Host`` header is not one of ``allowed``.

    A page on another site can make a browser send requests to a loopback API (DNS
    rebinding) only under its own host name, which this refuses. ``allowed`` holds host
    names or addresses without the port (``[::1]`` or ``::1``), ``*.example.org`` for
    subdomains, or ``*`` for any. Starlette's ``TrustedHostMiddleware`` cuts an IPv6
    ``Host`` at its first colon, so it would refuse ``[::1]:8000``.
    """

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.any = "*" in allowed
        names = {h.lower().strip("[]") for h in allowed}
        self.exact = {h for h in names if not h.startswith("*.")}
        self.suffixes = tuple(h[1:] for h in names if h.startswith("*."))

    def allows(self, host: str) -> bool:
        """Whether a ``Host`` header value (port included or not) is allowed."""
        host = host.strip().lower()
        if host.startswith("["):  # [v6] or [v6]:port
            name, bracket, _ = host[1:].partition("]")
            if not bracket:
                return False
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if not name:
            return False
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if not self.allows(host):
            response = PlainTextResponse(f"invalid Host header {host[:100]!r}", status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# The UI (api/static/) loads only its own files and talks only to its own origin.
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from jsDelivr (fonts from Google
# for ReDoc, the favicon from fastapi.tiangolo.com) and start them with an inline script;
# Swagger UI and ReDoc style elements inline, and ReDoc runs its search in a blob: worker.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds ``nosniff``, ``X-Frame-Options: DENY``, ``no-referrer`` and a CSP to every response.

    The CSP is :data:`CSP`, or :data:`DOCS_CSP` under ``/docs`` and ``/redoc``. A plain ASGI
    middleware, like :class:`AdminGuard`; it leaves the body (and SSE streams) untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        docs = any(path == p or path.startswith(p + "/") for p in DOCS_PATHS)
        policy = DOCS_CSP if docs else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)


def app_from_env() -> FastAPI:
    """uvicorn factory: settings from the environment (``WORLDFEED_*``)."""
    return create_app(Settings())
