"""InFlight: a re-delivered message joins its run; a moved partition's runs are cancelled."""

from __future__ import annotations

import asyncio

import pytest

from streams.inflight import InFlight


async def test_a_copy_of_a_message_joins_the_run_in_flight() -> None:
    inflight: InFlight[str] = InFlight()
    started = 0
    release = asyncio.Event()

    async def work() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "post"

    first = asyncio.ensure_future(inflight.run("req-1", 3, work))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(inflight.run("req-1", 3, work))
    await asyncio.sleep(0)
    assert len(inflight) == 1
    release.set()
    assert await first == "post"
    assert await second == "post"
    assert started == 1
    assert len(inflight) == 0  # forgotten once done: a later copy runs again


async def test_distinct_keys_run_separately_and_a_finished_key_runs_again() -> None:
    inflight: InFlight[int] = InFlight()
    calls: list[str] = []

    def work(key: str):
        async def go() -> int:
            calls.append(key)
            return len(calls)

        return go

    assert await asyncio.gather(inflight.run("a", 0, work("a")), inflight.run("b", 0, work("b")))
    assert await inflight.run("a", 0, work("a")) == 3
    assert calls == ["a", "b", "a"]


async def test_runs_of_a_partition_assigned_elsewhere_are_cancelled() -> None:
    inflight: InFlight[str] = InFlight()
    cancelled: list[str] = []
    started: list[str] = []

    def work(key: str):
        async def go() -> str:
            started.append(key)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(key)
                raise
            return key

        return go

    kept = asyncio.ensure_future(inflight.run("kept", 1, work("kept")))
    moved = asyncio.ensure_future(inflight.run("moved", 2, work("moved")))
    joined = asyncio.ensure_future(inflight.run("moved", 2, work("moved")))
    while len(started) < 2:
        await asyncio.sleep(0)
    assert inflight.keep_only({1, 3}) == 1
    assert await moved is None  # the new owner answers it
    assert await joined is None
    assert cancelled == ["moved"]
    assert not kept.done() and inflight.moved == 1
    kept.cancel()
    with pytest.raises(asyncio.CancelledError):
        await kept
    while len(cancelled) < 2:
        await asyncio.sleep(0)
    assert cancelled == ["moved", "kept"]  # its only waiter stopped: the run stops too
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert len(inflight) == 0


async def test_a_stopped_waiter_leaves_the_run_to_the_others() -> None:
    inflight: InFlight[str] = InFlight()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "post"

    first = asyncio.ensure_future(inflight.run("req", 0, work))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(inflight.run("req", 0, work))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    assert await second == "post"


async def test_an_error_reaches_every_waiter() -> None:
    inflight: InFlight[str] = InFlight()

    async def work() -> str:
        await asyncio.sleep(0)
        raise ValueError("bad request")

    results = await asyncio.gather(
        inflight.run("req", 0, work), inflight.run("req", 0, work), return_exceptions=True
    )
    assert [type(r) for r in results] == [ValueError, ValueError]
