"""api.cache.PageCache: TTL, single flight, errors not cached, bounded by entries and bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.cache import ENTRY_OVERHEAD, PageCache
from api.main import create_app
from storage import ClickHouseWriter
from worldfeed.settings import Settings


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (tasks started, joined)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


async def test_concurrent_identical_requests_share_one_load() -> None:
    cache = PageCache(ttl_s=60)
    calls = 0
    gate = asyncio.Event()

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        return b"page"

    waiting = [asyncio.create_task(cache.get("k", load)) for _ in range(5)]
    await until(lambda: cache.stats.miss + cache.stats.shared == 5)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert calls == 1
    assert sorted(outcome for _, outcome in results) == ["miss"] + ["shared"] * 4
    assert {body for body, _ in results} == {b"page"}
    assert await cache.get("k", load) == (b"page", "hit")
    assert calls == 1
    assert (cache.stats.hit, cache.stats.shared, cache.stats.miss) == (1, 4, 1)


async def test_entries_expire_and_keys_are_separate() -> None:
    clock = Clock()
    cache = PageCache(ttl_s=0.05, clock=clock)
    n = 0

    async def load() -> bytes:
        nonlocal n
        n += 1
        return str(n).encode()

    assert await cache.get("a", load) == (b"1", "miss")
    assert await cache.get("b", load) == (b"2", "miss")
    clock.now += 0.049
    assert await cache.get("a", load) == (b"1", "hit")
    clock.now += 0.002
    assert await cache.get("a", load) == (b"3", "miss")


async def test_ttl_zero_caches_nothing() -> None:
    cache = PageCache(ttl_s=0)

    async def load() -> bytes:
        return b"x"

    assert await cache.get("a", load) == (b"x", "miss")
    assert await cache.get("a", load) == (b"x", "miss")


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache = PageCache(ttl_s=60)
    fail = True
    gate = asyncio.Event()

    async def load() -> bytes:
        await gate.wait()
        if fail:
            raise ValueError("boom")
        return b"ok"

    waiting = [asyncio.create_task(cache.get("k", load)) for _ in range(3)]
    await until(lambda: cache.stats.miss + cache.stats.shared == 3)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    fail = False
    assert await cache.get("k", load) == (b"ok", "miss")


async def test_a_cancelled_waiter_does_not_cancel_the_shared_load() -> None:
    cache = PageCache(ttl_s=60)
    gate = asyncio.Event()

    async def load() -> bytes:
        await gate.wait()
        return b"page"

    first = asyncio.create_task(cache.get("k", load))
    second = asyncio.create_task(cache.get("k", load))
    await until(lambda: cache.stats.miss + cache.stats.shared == 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    assert await second == (b"page", "shared")
    assert await cache.get("k", load) == (b"page", "hit")


def test_oldest_entries_go_first_when_full() -> None:
    cache = PageCache(ttl_s=60, max_entries=2)

    async def run() -> list[str]:
        async def load() -> bytes:
            return b"x"

        for key in ("a", "b", "c"):
            await cache.get(key, load)
        return [outcome for key in ("a", "c") for _, outcome in [await cache.get(key, load)]]

    assert asyncio.run(run()) == ["miss", "hit"]


async def test_the_cache_is_bounded_by_bytes_not_only_entries() -> None:
    """Few large pages fill the byte budget long before the entry limit."""
    max_bytes = 50_000
    cache = PageCache(ttl_s=60, max_entries=4096, max_bytes=max_bytes)

    async def big() -> bytes:
        return b"x" * 9_000

    for i in range(40):
        assert (await cache.get(f"page-{i}", big))[1] == "miss"
        assert cache.nbytes <= max_bytes
    assert 1 <= len(cache) <= max_bytes // 9_000
    assert cache.nbytes >= len(cache) * (9_000 + ENTRY_OVERHEAD)  # keys and bookkeeping count
    assert (await cache.get("page-39", big))[1] == "hit"  # the newest stayed
    assert (await cache.get("page-0", big))[1] == "miss"  # the oldest went

    async def huge() -> bytes:
        return b"y" * (max_bytes + 1)

    before = len(cache)
    assert await cache.get("huge", huge) == (b"y" * (max_bytes + 1), "miss")
    assert len(cache) == before and cache.nbytes <= max_bytes  # served, not kept
    cache.clear()
    assert cache.nbytes == 0


def test_the_feed_cache_takes_its_byte_bound_from_the_settings(
    api_settings: Callable[..., Settings],
    ch_client,
    client_of: Callable[[FastAPI], TestClient],
    writer: ClickHouseWriter,
    post_factory,
) -> None:
    writer.write_messages([post_factory(i, body="b" * 3000) for i in range(20)])
    app = create_app(api_settings(api_cache_max_bytes=20_000), ch_client)
    with client_of(app) as api:
        for limit in range(1, 21):  # 20 distinct pages, up to 60 kB each
            assert api.get("/feed", params={"limit": limit}).status_code == 200
        cache: PageCache = app.state.feed_cache
        assert 0 < cache.nbytes <= 20_000
        assert len(cache) < 20
