"""Posting quotas: how many posts an author may publish on a channel per simulated day."""

from __future__ import annotations

from collections.abc import MutableMapping

import orjson

from sim.calendar import day_of
from sim.world import WorldIndex
from topics.models import RenderRequested
from worldfeed.ids import stable_hash64


def quota_key(req: RenderRequested, author: str) -> bytes:
    """Key of an author's post count on a channel on one simulated day of a run."""
    return f"{req.run_id}/{author}/{req.channel}/{day_of(req.event.sim_minute)}".encode()


def apply_rate_limit(
    index: WorldIndex, req: RenderRequested, quota: MutableMapping[bytes, bytes]
) -> tuple[RenderRequested | None, str | None]:
    """Charge the request to its author's daily quota for the channel.

    Returns the request to render (news may go to another journalist with room left,
    chosen deterministically), or ``(None, reason)`` when it is over the limit. The
    quota stores request ids, so a redelivered request is never charged twice.
    """
    limit = index.catalog.channels[req.channel].rate_limit_per_day
    candidates = [req.author]
    if req.channel == "news":
        others = sorted(
            (j for j in index.journalists if j != req.author),
            key=lambda j: stable_hash64(req.request_id, j),
        )
        candidates += others
    for author in candidates:
        key = quota_key(req, author)
        taken: list[str] = orjson.loads(quota.get(key) or b"[]")
        if req.request_id in taken:
            return req.model_copy(update={"author": author}), None
        if len(taken) < limit:
            quota[key] = orjson.dumps([*taken, req.request_id])
            return req.model_copy(update={"author": author}) if author != req.author else req, None
    return None, (
        f"rate limited: {req.author} already has {limit} {req.channel} posts on day "
        f"{day_of(req.event.sim_minute)} (catalog limit {limit}/day)"
    )
