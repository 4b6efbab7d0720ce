"""GET /stream/posts: server-sent events of new posts, through a real uvicorn server.

The server runs in the test's event loop on loopback, over the session chDB engine;
the client is httpx streaming. When the client disconnects, the stream ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.main import create_app
from api.routes.stream import MAX_SINCE_MS, _last_post, _since
from storage import ClickHouseWriter, queries
from tests.fixtures.kafka import free_port
from worldfeed.settings import Settings


async def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Wait until ``condition`` holds (checked every 20 ms), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.02)


Live = Callable[..., AbstractAsyncContextManager[tuple[str, FastAPI]]]


@pytest.fixture
def live_server(api_settings: Callable[..., Settings], ch_client: Client) -> Live:
    """Factory: the API (settings overridden by keywords) in uvicorn on loopback, in this loop."""

    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[tuple[str, FastAPI]]:
        app = create_app(api_settings(**overrides), ch_client)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        await until(lambda: server.started or task.done(), "uvicorn to start")
        assert not task.done(), "uvicorn did not start"
        try:
            yield f"http://127.0.0.1:{port}", app
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 20)

    return serve


@pytest.fixture
async def live(live_server: Live) -> AsyncIterator[tuple[str, FastAPI]]:
    async with live_server() as served:
        yield served


async def _events(lines: AsyncIterator[str], n: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in current:
                out.append(current)
                if len(out) == n:
                    return out
            current = {}
        elif not line.startswith(":") and ":" in line:
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return out


async def test_stream_pushes_new_posts_and_ends_when_the_client_leaves(
    live: tuple[str, FastAPI], writer: ClickHouseWriter, post_factory
) -> None:
    url, app = live
    writer.write_messages([post_factory(0)])  # stored before the client came: not sent
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        params = {"run_id": "run1", "channel": "feed", "poll_s": 0.2}
        async with client.stream("GET", "/stream/posts", params=params) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert app.state.live_streams == 1

            # the stream starts at the engine's clock when the request came, before these
            async def arrive() -> None:
                await asyncio.to_thread(
                    writer.write_messages,
                    [
                        post_factory(7, tick=1),  # arrives late with an old tick: still new
                        post_factory(8, run_id="other"),  # another run: filtered out
                        post_factory(9, channel="news"),  # another channel: filtered out
                        post_factory(5, tick=9),
                    ],
                )

            writer_task = asyncio.create_task(arrive())
            events = await asyncio.wait_for(_events(resp.aiter_lines(), 2), 15)
            await writer_task
        assert [e["event"] for e in events] == ["post", "post"]
        posts = [json.loads(e["data"]) for e in events]
        assert sorted(p["post_id"] for p in posts) == [f"po_{5:016x}", f"po_{7:016x}"]
        assert all(e["id"].endswith(json.loads(e["data"])["post_id"]) for e in events)
        # the client left: the server's generator ends
        await until(lambda: app.state.live_streams == 0, "the stream to end after the disconnect")
        # invalid parameters are a 4xx before any streaming starts
        bad = await client.get("/stream/posts", params={"channel": "radio"})
        assert bad.status_code == 422


@pytest.mark.parametrize(
    "header",
    ["²", "١٢٣", "²:p1", "9" * 30, f"{2**63}:p1", f"{MAX_SINCE_MS + 1}", "-5", "+5", " 5", "5 "],
)
def test_stream_treats_an_invalid_last_event_id_as_absent(header: str) -> None:
    assert _since(header, None) is None
    assert _since(header, 1234) == 1234


def test_stream_resumes_from_a_valid_last_event_id() -> None:
    assert _since("1700000000000:p1", 5) == 1700000000000
    assert _since(str(MAX_SINCE_MS), None) == MAX_SINCE_MS


@pytest.mark.parametrize("since_ms", [-1, MAX_SINCE_MS + 1, 2**64])
def test_stream_refuses_since_ms_out_of_range(api: TestClient, since_ms: int) -> None:
    resp = api.get("/stream/posts", params={"since_ms": since_ms})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "since_ms"]


def _spy_on_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], int]]:
    """Record every read of the stream: its arguments (not the client) and rows returned."""
    calls: list[tuple[dict[str, Any], int]] = []
    real = queries.posts_stored_since

    def spy(client: Client, database: str, since_ms: int, **kw: Any) -> list[dict[str, Any]]:
        rows = real(client, database, since_ms, **kw)
        calls.append(({"since_ms": since_ms, **kw}, len(rows)))
        return rows

    monkeypatch.setattr(queries, "posts_stored_since", spy)
    return calls


async def test_a_replay_from_zero_is_read_in_bounded_keyset_pages(
    live_server: Live,
    writer: ClickHouseWriter,
    post_factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """since_ms=0 over many posts of one insert (one stored ms): every post once, in order,
    and no read carries more than two bound values or returns more than a poll's rows."""
    n = 1200
    await asyncio.to_thread(writer.write_messages, [post_factory(i) for i in range(n)])
    calls = _spy_on_reads(monkeypatch)
    async with (
        live_server(stream_rows_per_poll=300) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=20) as client,
        client.stream("GET", "/stream/posts", params={"since_ms": 0, "poll_s": 0.1}) as resp,
    ):
        assert resp.status_code == 200
        events = await asyncio.wait_for(_events(resp.aiter_lines(), n), 60)
    ids = [json.loads(e["data"])["post_id"] for e in events]
    assert ids == sorted(f"po_{i:016x}" for i in range(n))  # one insert: post id order
    assert len({e["id"] for e in events}) == n
    assert calls and all(rows <= 300 for _, rows in calls)
    for args, _ in calls:
        # a keyset position, not a list of what was sent: bounded whatever the replay
        assert len(repr(args)) < 200, args
    # the replay took several polls: the first rows_per_poll rows, then the next ...
    assert sum(rows for _, rows in calls[:1]) == 300


async def test_streams_beyond_the_cap_get_a_clean_503(live_server: Live) -> None:
    async with (
        live_server(stream_max_clients=2) as (url, app),
        httpx.AsyncClient(base_url=url, timeout=20) as client,
        client.stream("GET", "/stream/posts", params={"poll_s": 0.1}) as first,
    ):
        async with client.stream("GET", "/stream/posts") as second:
            assert (first.status_code, second.status_code) == (200, 200)
            third = await client.get("/stream/posts")
            assert third.status_code == 503
            assert third.headers["retry-after"] == "5"
            assert "too many live streams" in third.json()["detail"]
            assert app.state.live_streams == 2
        await until(lambda: app.state.live_streams == 1, "the second stream to end")
        async with client.stream("GET", "/stream/posts") as again:
            assert again.status_code == 200


async def test_a_stream_ends_after_its_lifetime_and_resumes_from_its_last_id(
    live_server: Live, writer: ClickHouseWriter, post_factory
) -> None:
    async with (
        live_server(stream_lifetime_s=1.0) as (url, app),
        httpx.AsyncClient(base_url=url, timeout=20) as client,
    ):
        await asyncio.to_thread(writer.write_messages, [post_factory(i) for i in range(3)])
        params = {"since_ms": 0, "poll_s": 0.1}
        async with client.stream("GET", "/stream/posts", params=params) as resp:
            # the whole response ends by itself: the server closed the stream
            lines = await asyncio.wait_for(_all_lines(resp.aiter_lines()), 15)
        first = [e for e in _parse(lines) if e.get("event") == "post"]
        assert [json.loads(e["data"])["post_id"] for e in first] == [
            f"po_{i:016x}" for i in range(3)
        ]
        await until(lambda: app.state.live_streams == 0, "the stream slot to be released")
        await asyncio.to_thread(writer.write_messages, [post_factory(3)])
        headers = {"Last-Event-ID": first[-1]["id"]}
        async with client.stream("GET", "/stream/posts", headers=headers, params=params) as resp:
            lines = await asyncio.wait_for(_all_lines(resp.aiter_lines()), 15)
        rest = [json.loads(e["data"])["post_id"] for e in _parse(lines) if "data" in e]
        assert rest == [f"po_{3:016x}"]


async def test_a_client_that_takes_no_data_is_dropped(live_server: Live) -> None:
    """A client that stops reading leaves the server's send waiting: stream_idle_s ends it."""
    async with live_server(stream_idle_s=0.5) as (_, app):
        started = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the client says nothing more, and never leaves
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
                started.set()
                return
            await asyncio.Event().wait()  # the body never drains

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/stream/posts",
            "raw_path": b"/stream/posts",
            "query_string": b"poll_s=0.1",
            "root_path": "",
            "headers": [(b"host", b"localhost")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await asyncio.wait_for(app(scope, receive, send), 10)
        assert started.is_set()
        assert app.state.live_streams == 0


async def _all_lines(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


def _parse(lines: list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*lines, ""]:
        if not line:
            if current:
                out.append(current)
            current = {}
        elif not line.startswith(":") and ":" in line:
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return out


def test_the_post_id_of_a_last_event_id_is_a_resume_point_within_its_ms() -> None:
    assert _last_post("1700000000000:po_1") == "po_1"
    for bad in (None, "", "1700000000000", "²:po_1", "5:", "5:a b", "5:" + "x" * 65):
        assert _last_post(bad) == ""


@settings(max_examples=2000, database=None)
@given(header=st.text(max_size=40) | st.from_regex(r"[0-9\u00b2\u0660-\u0669]{1,30}(:.*)?"))
def test_any_last_event_id_gives_a_bounded_resume_point_or_none(header: str) -> None:
    """Property (randomized): whatever a client sends, no exception and no out-of-range point."""
    since = _since(header, None)
    assert since is None or 0 <= since <= MAX_SINCE_MS
    assert _since(header, 7) in (since, 7)
    post = _last_post(header)
    assert post == "" or (since is not None and header.endswith(":" + post))
