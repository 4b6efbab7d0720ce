"""GET /stream/posts: server-sent events of new posts, through a real uvicorn server.

The server runs in the test's event loop on loopback, over the session chDB engine;
the client is httpx streaming. When the client disconnects, the stream ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.stream import MAX_SINCE_MS, _since
from storage import ClickHouseWriter
from tests.fixtures.kafka import free_port
from worldfeed.settings import Settings


@pytest.fixture
async def live(
    chdb_path: Path, ch_client: Client, database: str
) -> AsyncIterator[tuple[str, FastAPI]]:
    settings = Settings(env="test", clickhouse_dsn=f"chdb://{chdb_path}?database={database}")
    app = create_app(settings, ch_client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


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
            await asyncio.sleep(0.3)

            async def arrive() -> None:
                await asyncio.sleep(0.3)
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
        deadline = time.monotonic() + 10
        while app.state.live_streams:
            assert time.monotonic() < deadline, "the stream did not end after the disconnect"
            await asyncio.sleep(0.1)
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
