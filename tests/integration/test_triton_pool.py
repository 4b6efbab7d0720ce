"""Two real Triton servers behind one TritonPool: spread, one stopped mid-run, restarted."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from llm.chat import DEFAULT
from llm.pool import TritonPool, connect
from tests.fixtures.triton import SCRIPT, _free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPT = DEFAULT.render("You are a helpful assistant.", "Name a fruit.")
SAMPLING = {"max_tokens": 3, "temperature": 0.0}


@dataclass(frozen=True)
class Server:
    """One local tritonserver started by deploy/local/triton.sh."""

    http: int
    grpc: int
    metrics: int

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    def start(self) -> None:
        proc = subprocess.run(
            [str(SCRIPT), "start", str(self.http), str(self.grpc), str(self.metrics)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"triton {self.grpc} did not start:\n{proc.stdout}\n{proc.stderr}")

    def stop(self) -> None:
        subprocess.run(
            [str(SCRIPT), "stop", str(self.http), str(self.grpc)],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def two_servers() -> Iterator[tuple[Server, Server]]:
    """Two servers on free ports, started together; both stopped at the end, whatever happened."""
    ports = _free_ports(6)
    servers = (Server(*ports[:3]), Server(*ports[3:]))
    try:
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(Server.start, servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


async def _ask(pool: TritonPool, n: int, concurrency: int) -> list[str]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with sem:
            return (await pool.generate(PROMPT, SAMPLING)).text

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_requests_spread_fail_over_and_a_restarted_server_returns(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    pool = connect(f"{a.url},{b.url}", concurrency=2, timeout_s=60, retries=1, cool_down_s=1.0)
    assert isinstance(pool, TritonPool)
    async with pool:
        # both take work
        await _ask(pool, 8, concurrency=4)
        spread = pool.answered()
        assert spread[a.url] > 0 and spread[b.url] > 0, spread
        assert pool.in_rotation() == [a.url, b.url]

        # b stops while requests are going: every one is still answered
        run = asyncio.create_task(_ask(pool, 24, concurrency=4))
        while sum(pool.answered().values()) < 8 + 4:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(b.stop)
        texts = await run
        assert len(texts) == 24
        assert pool.in_rotation() == [a.url]
        served_by_b = pool.answered()[b.url]
        await _ask(pool, 4, concurrency=2)
        assert pool.answered()[b.url] == served_by_b  # out of rotation

        # b restarts: a probe brings it back, and it takes work again
        await asyncio.to_thread(b.start)
        deadline = time.monotonic() + 60
        while b.url not in pool.in_rotation() and time.monotonic() < deadline:
            await _ask(pool, 2, concurrency=2)  # requests start the due probes
            await asyncio.sleep(0.5)
        assert pool.in_rotation() == [a.url, b.url]
        await _ask(pool, 6, concurrency=2)
        assert pool.answered()[b.url] > served_by_b
