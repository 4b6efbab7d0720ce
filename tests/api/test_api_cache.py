"""api.cache.PageCache: TTL, single flight, errors not cached."""

from __future__ import annotations

import asyncio

import pytest

from api.cache import PageCache


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
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert calls == 1
    assert sorted(outcome for _, outcome in results) == ["miss"] + ["shared"] * 4
    assert {body for body, _ in results} == {b"page"}
    assert await cache.get("k", load) == (b"page", "hit")
    assert calls == 1
    assert (cache.stats.hit, cache.stats.shared, cache.stats.miss) == (1, 4, 1)


async def test_entries_expire_and_keys_are_separate() -> None:
    cache = PageCache(ttl_s=0.05)
    n = 0

    async def load() -> bytes:
        nonlocal n
        n += 1
        return str(n).encode()

    assert await cache.get("a", load) == (b"1", "miss")
    assert await cache.get("b", load) == (b"2", "miss")
    assert await cache.get("a", load) == (b"1", "hit")
    await asyncio.sleep(0.06)
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

    async def load() -> bytes:
        await asyncio.sleep(0.01)
        if fail:
            raise ValueError("boom")
        return b"ok"

    results = await asyncio.gather(
        *(cache.get("k", load) for _ in range(3)), return_exceptions=True
    )
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
    await asyncio.sleep(0)
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
