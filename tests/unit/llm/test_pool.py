"""TritonPool with fake instances: spreading, ejection, failover, probing, all down."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from llm.base import Completion, LLMError, LLMUnavailable
from llm.client import TritonLLM
from llm.pool import TritonPool, connect, parse_urls
from worldfeed.settings import Settings


class FakeInstance:
    """A Triton instance in a test: up or down, optionally slow, counting its calls."""

    def __init__(self, url: str, model: str = "llm", delay_s: float = 0.0) -> None:
        self.url = url
        self.model = model
        self.delay_s = delay_s
        self.up = True
        self.refuse = False
        self.calls = 0
        self.probes = 0
        self.closed = False

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if not self.up:
            raise LLMUnavailable(f"{self.url} down")
        if self.refuse:
            raise LLMError(f"{self.url} refused")
        return Completion(f"{self.url}:{prompt}", 1, 1, 1.0, self.model)

    async def ready(self) -> bool:
        self.probes += 1
        return self.up

    async def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pool(*members: FakeInstance, cool_down_s: float = 5.0) -> tuple[TritonPool, Clock]:
    clock = Clock()
    return TritonPool(list(members), cool_down_s=cool_down_s, clock=clock), clock


async def test_requests_are_spread_over_every_instance_in_turn() -> None:
    a, b, c = FakeInstance("a:1"), FakeInstance("b:1"), FakeInstance("c:1")
    pool, _ = _pool(a, b, c)
    for i in range(9):
        await pool.generate(str(i), {})
    assert (a.calls, b.calls, c.calls) == (3, 3, 3)
    assert pool.answered() == {"a:1": 3, "b:1": 3, "c:1": 3}
    assert pool.model == "llm"


async def test_a_busy_instance_gets_the_next_request_last() -> None:
    slow, fast = FakeInstance("slow:1", delay_s=0.2), FakeInstance("fast:1")
    pool, _ = _pool(slow, fast)
    stuck = asyncio.create_task(pool.generate("x", {}))  # occupies one instance
    await asyncio.sleep(0)
    answers = [await pool.generate(str(i), {}) for i in range(4)]
    assert all(c.text.startswith("fast:1") for c in answers)
    assert (await stuck).text.startswith("slow:1")


async def test_concurrent_requests_use_both_instances() -> None:
    a, b = FakeInstance("a:1", delay_s=0.01), FakeInstance("b:1", delay_s=0.01)
    pool, _ = _pool(a, b)
    await asyncio.gather(*(pool.generate(str(i), {}) for i in range(20)))
    assert a.calls == b.calls == 10


async def test_a_failed_instance_is_ejected_and_its_request_answered_elsewhere() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1")
    pool, _ = _pool(a, b)
    a.up = False
    answers = [await pool.generate(str(i), {}) for i in range(6)]
    assert all(c.text.startswith("b:1") for c in answers)
    assert a.calls == 1  # asked once, then out of rotation
    assert pool.in_rotation() == ["b:1"]


async def test_an_ejected_instance_is_probed_after_its_cool_down_and_comes_back() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1")
    pool, clock = _pool(a, b, cool_down_s=5.0)
    a.up = False
    await pool.generate("1", {})
    await pool.generate("2", {})
    assert a.probes == 0  # not before the cool-down
    clock.now += 5.0
    await pool.generate("3", {})  # starts a probe; a is still down
    await asyncio.sleep(0)
    assert a.probes == 1 and pool.in_rotation() == ["b:1"]
    await pool.generate("4", {})
    assert a.probes == 1  # the next probe waits another cool-down
    a.up = True
    clock.now += 5.0
    await pool.generate("5", {})
    await asyncio.sleep(0)
    assert a.probes == 2 and pool.in_rotation() == ["a:1", "b:1"]
    before = a.calls
    for i in range(4):
        await pool.generate(str(i), {})
    assert a.calls == before + 2  # back in the turn


async def test_a_model_error_is_raised_and_ejects_nothing() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1")
    pool, _ = _pool(a, b)
    a.refuse = b.refuse = True
    with pytest.raises(LLMError):
        await pool.generate("x", {})
    assert a.calls + b.calls == 1  # not asked again elsewhere
    assert pool.in_rotation() == ["a:1", "b:1"]


async def test_all_down_is_unavailable_until_one_answers_a_probe() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1")
    pool, clock = _pool(a, b)
    a.up = b.up = False
    with pytest.raises(LLMUnavailable, match="a:1, b:1"):
        await pool.generate("x", {})
    assert (a.calls, b.calls) == (1, 1)
    assert pool.in_rotation() == []
    with pytest.raises(LLMUnavailable):  # in cool-down: refused at once, nobody asked
        await pool.generate("y", {})
    assert (a.calls, b.calls) == (1, 1)
    b.up = True
    clock.now += 5.0
    answer = await pool.generate("z", {})  # waits for the due probes, then asks b
    assert answer.text == "b:1:z"
    assert pool.in_rotation() == ["b:1"]


async def test_close_closes_every_instance_and_stops_probes() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1", delay_s=0.0)
    pool, clock = _pool(a, b)
    a.up = False
    await pool.generate("x", {})
    clock.now += 5.0
    await pool.generate("y", {})
    await pool.close()
    assert a.closed and b.closed


async def test_ready_when_any_instance_is() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1")
    pool, _ = _pool(a, b)
    a.up = False
    assert await pool.ready()
    b.up = False
    assert not await pool.ready()


def test_a_pool_serves_one_model() -> None:
    with pytest.raises(ValueError, match="same model"):
        TritonPool([FakeInstance("a:1"), FakeInstance("b:1", model="other")])
    with pytest.raises(ValueError):
        TritonPool([])


def test_urls_are_parsed_and_each_checked() -> None:
    assert parse_urls("127.0.0.1:8011") == ["127.0.0.1:8011"]
    assert parse_urls(" a:1 , b:2") == ["a:1", "b:2"]
    for bad in ("a:1,b", "a:1,:2", "a:1,b:x", "a:1,b:70000", "a:1,"):
        entry = bad.split(",")[1].strip()
        with pytest.raises(ValueError, match=repr(entry)):
            parse_urls(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_urls("a:1,a:1")
    with pytest.raises(ValueError, match="no Triton URL"):
        parse_urls("")


def test_one_url_connects_one_client_several_a_pool() -> None:
    one = connect("127.0.0.1:8011", "llm", concurrency=3, timeout_s=9, retries=4)
    assert isinstance(one, TritonLLM)
    assert (one.url, one.concurrency, one.timeout_s, one.retries) == ("127.0.0.1:8011", 3, 9, 4)
    pool = connect("127.0.0.1:8011,127.0.0.1:8021", "llm", concurrency=3, retries=4)
    assert isinstance(pool, TritonPool)
    assert pool.urls == ["127.0.0.1:8011", "127.0.0.1:8021"]


def test_settings_take_a_list_of_triton_urls_and_name_a_bad_one() -> None:
    assert Settings().triton_grpc_urls == ["127.0.0.1:8011"]
    assert Settings(triton_grpc_url="t1:8001,t2:8001").triton_grpc_urls == ["t1:8001", "t2:8001"]
    with pytest.raises(ValueError, match="'t2'"):
        Settings(triton_grpc_url="t1:8001,t2")


async def test_a_failed_probe_closes_the_idle_channel() -> None:
    a, b = FakeInstance("a:1"), FakeInstance("b:1")
    pool, clock = _pool(a, b)
    a.up = False
    await pool.generate("x", {})
    assert not a.closed
    clock.now += 5.0
    await pool.generate("y", {})
    await asyncio.sleep(0)
    assert a.probes == 1 and a.closed  # the next probe opens a new channel
    assert not b.closed
