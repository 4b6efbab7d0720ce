"""The API's request latency, by route template (the feed latency of the dashboards)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worldfeed import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# live streams stay open for up to an hour: not requests with a latency
UNTIMED = ("/stream/",)


def route_of(scope: Scope) -> str:
    """The template of the route that answered (``/posts/{post_id}``), never the raw path
    (bounded labels); ``unmatched`` for a request no route took (a 404, a guard's 400)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestTimer:
    """Observes every HTTP request's duration on
    :data:`~worldfeed.metrics.API_REQUEST_SECONDS` (route template, method, status class).

    A plain ASGI middleware, like :class:`api.main.AdminGuard`. Live streams
    (``/stream/posts``) are left out: they stay open as long as their client reads.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the server answers if the app raises before it responds

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_of(scope)
            method = scope.get("method", "")
            if not route.startswith(UNTIMED):
                metrics.API_REQUEST_SECONDS.labels(
                    route, method if method in METHODS else "other", metrics.status_class(status)
                ).observe(time.perf_counter() - t0)
