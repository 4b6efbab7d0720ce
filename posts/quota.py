"""Posting quotas: how many posts an author may publish on a channel per simulated day."""

from __future__ import annotations

from collections.abc import MutableMapping

import orjson

from sim.calendar import day_of
from sim.world import WorldIndex
from topics.models import QuotaRestored, RenderRequested
from worldfeed.ids import stable_hash64


def quota_key(req: RenderRequested, author: str) -> bytes:
    """Key of an author's post count on a channel on one simulated day of a run."""
    return _key(req.run_id, author, req.channel, day_of(req.event.sim_minute))


def _key(run_id: str, author: str, channel: str, day: int) -> bytes:
    return f"{run_id}/{author}/{channel}/{day}".encode()


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


def restore_quota(quota: MutableMapping[bytes, bytes], msg: QuotaRestored) -> None:
    """Start a branch's quota for one author, channel and day with its parent's charges."""
    key = _key(msg.run_id, msg.author, msg.channel, msg.day)
    taken: list[str] = orjson.loads(quota.get(key) or b"[]")
    quota[key] = orjson.dumps(sorted(set(taken) | set(msg.request_ids)))


def inherited_quotas(
    index: WorldIndex, requests: list[RenderRequested], run_id: str, day: int
) -> list[QuotaRestored]:
    """What a parent's render requests (in order) charged on ``day``, for a branch
    ``run_id`` that continues that day: the branch's authors keep the posts they made."""
    quota: dict[bytes, bytes] = {}
    for req in requests:
        if day_of(req.event.sim_minute) == day:  # a day's quota counts only that day's posts
            apply_rate_limit(index, req, quota)
    out = []
    for key, value in sorted(quota.items()):
        _, author, channel, key_day = key.decode().rsplit("/", 3)
        if int(key_day) == day:
            out.append(
                QuotaRestored(
                    run_id=run_id,
                    author=author,
                    channel=channel,
                    day=day,
                    request_ids=orjson.loads(value),
                )
            )
    return out
