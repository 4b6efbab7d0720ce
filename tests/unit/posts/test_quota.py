"""Daily posting quotas per author, channel and simulated day."""

from __future__ import annotations

from collections.abc import Callable

from posts.quota import apply_rate_limit, quota_key
from sim.world import WorldIndex
from topics.models import RenderRequested

MakeRequest = Callable[..., RenderRequested]


def test_daily_quota_per_author_and_channel(index: WorldIndex, make_request: MakeRequest) -> None:
    quota: dict[bytes, bytes] = {}
    limit = index.catalog.channels["feed"].rate_limit_per_day
    results = [apply_rate_limit(index, make_request("feed", n), quota) for n in range(limit + 1)]
    assert all(r is not None for r, _ in results[:limit])
    over, reason = results[-1]
    assert over is None and reason and "rate limited" in reason
    # a redelivered request is not charged twice
    again, _ = apply_rate_limit(index, make_request("feed", 0), quota)
    assert again is not None


def test_news_over_quota_goes_to_another_journalist(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    quota: dict[bytes, bytes] = {}
    limit = index.catalog.channels["news"].rate_limit_per_day
    first = index.journalists[0]
    authors = [
        apply_rate_limit(index, make_request("news", n, author=first), quota)[0]
        for n in range(limit * len(index.journalists) + 1)
    ]
    assert [a.author for a in authors[:limit]] == [first] * limit
    assert {a.author for a in authors[limit:-1]} == set(index.journalists) - {first}
    assert authors[-1] is None


def test_quota_is_per_simulated_day(make_request: MakeRequest) -> None:
    req = make_request()
    next_day = req.model_copy(
        update={"event": req.event.model_copy(update={"sim_minute": req.event.sim_minute + 1440})}
    )
    assert quota_key(req, "a") == b"r1/a/feed/1"
    assert quota_key(next_day, "a") == b"r1/a/feed/2"
