"""Liveness and dependency health."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from api.postindex import PostIndex
from api.schemas import FeedIndexPublic, HealthPublic

router = APIRouter(prefix="/health", tags=["health"])

HealthCheck = Callable[[], Awaitable[str]]
# the consumer lag (group -> topic -> messages) and last completed tick of the process's
# consumers, where the API runs some (the embedded sink); see api.main.create_app
Progress = Callable[[], tuple[dict[str, dict[str, int]], int | None]]
CHECK_TIMEOUT_S = 2.0


async def _run_check(check: HealthCheck) -> str:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure is a health result, not a crash
        return f"error: {type(exc).__name__}: {exc}"[:300]


@router.get(
    "",
    response_model=HealthPublic,
    response_model_exclude_none=True,
    responses={503: {"model": HealthPublic}},
)
async def read_health(request: Request, response: Response) -> HealthPublic:
    """Each dependency's status (503 when any is not ok); where the API runs the sink, its
    consumer lag and the last completed tick it stored."""
    checks: dict[str, HealthCheck] = request.app.state.health_checks
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    ok = all(r == "ok" for r in results)
    if not ok:
        response.status_code = 503
    lag, last_tick = None, None
    progress: Progress | None = request.app.state.progress
    if progress is not None:
        lag, last_tick = progress()
    index: PostIndex = request.app.state.post_index
    feed_index = None
    if index.filling is not None:
        feed_index = FeedIndexPublic(
            state="off" if index.off else "ready" if index.ready else "filling",
            posts=index.posts,
            filled=index.stats.filled,
            fill_s=index.stats.fill_s if index.ready else None,
        )
    return HealthPublic(
        status="ok" if ok else "degraded",
        checks=report,
        lag=lag or None,
        last_tick=last_tick,
        feed_index=feed_index,
    )
