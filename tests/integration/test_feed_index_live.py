"""The API's post index on the real path: ``worldfeed api`` with its embedded sink, a real
broker and the real engine.

Posts produced to the posts topic are stored by the sink and reach the index; the API
is restarted and fills its index from the engine (the posts stored before), while more
arrive live. Every page of a run's feed is then served from the index (``X-Cache:
index``) and lists exactly what the engine holds, newest first.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.kafka import free_port
from tests.fixtures.processes import Procs, produce_in_order, wait_http
from topics import POSTS
from topics.models import PostPublished
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = "run_index"


def get(url: str) -> tuple[Any, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read()), resp.headers.get("X-Cache", "")


def post(i: int, **fields: Any) -> PostPublished:
    values: dict[str, Any] = {
        "post_id": f"po_live_{i:06d}",
        "request_id": f"rq_live_{i:06d}",
        "run_id": RUN,
        "event_id": f"ev_live_{i:06d}",
        "channel": ("feed", "chat", "news")[i % 3],
        "author": f"npc_{i % 4}",
        "tick": i // 5,
        "sim_minute": i // 5 * 15,
        "title": f"Headline {i}" if i % 3 == 2 else None,
        "body": f"Post {i}.",
        "source": "llm",
        "score": 0.5,
        "tokens_in": 10,
        "tokens_out": 5,
        "latency_ms": 20.0,
    }
    values.update(fields)
    return PostPublished(**values)


def wait(check: Callable[[], bool], timeout_s: float, procs: Procs, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        procs.assert_alive()
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def every_page(api: str, query: str) -> tuple[list[str], set[str]]:
    ids: list[str] = []
    served: set[str] = set()
    cursor = ""
    for _ in range(100):
        page, how = get(f"{api}/feed?run_id={RUN}&limit=7{query}{cursor}")
        ids += [p["post_id"] for p in page["items"]]
        served.add(how)
        if page["next_cursor"] is None:
            return ids, served
        cursor = f"&cursor={page['next_cursor']}"
    raise AssertionError("more than 100 pages")


def engine_order(api: str, query: str) -> list[str]:
    """The run's posts as the engine lists them (``/posts``: oldest first), newest first."""
    ids: list[str] = []
    cursor = ""
    while True:
        page, _ = get(f"{api}/posts?run_id={RUN}&limit=500{query}{cursor}")
        ids += [p["post_id"] for p in page["items"]]
        if page["next_cursor"] is None:
            return ids[::-1]
        cursor = f"&cursor={page['next_cursor']}"


async def test_the_index_fills_from_the_engine_and_follows_the_sink(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    settings = settings_factory(api_port=free_port())
    api = f"http://127.0.0.1:{settings.api_port}"
    procs.start("api", settings, "api")
    wait_http(f"{api}/health", 90, procs)
    before = [post(i) for i in range(60)]
    await produce_in_order(settings, POSTS, before)

    def shows(n: int) -> Callable[[], bool]:
        return lambda: len(get(f"{api}/posts?run_id={RUN}&limit=500")[0]["items"]) >= n

    wait(shows(60), 60, procs, "the sink did not store the first posts")
    first, how = get(f"{api}/feed?run_id={RUN}&limit=3")
    assert how == "index" and [p["post_id"] for p in first["items"]] == [
        "po_live_000059",
        "po_live_000058",
        "po_live_000057",
    ]

    # a new API process: its index is filled from the engine while the sink goes on
    procs.kill("api")
    procs.start("api", settings, "api")
    wait_http(f"{api}/health", 90, procs)
    late = [post(i) for i in range(60, 90)] + [
        post(200, tick=2),  # an old tick
        post(201, moderation="blocked", moderation_reason="rule"),  # never shown
    ]
    await produce_in_order(settings, POSTS, late)
    wait(shows(91), 60, procs, "the sink did not store the late posts")

    def ready() -> bool:
        return bool(get(f"{api}/health")[0].get("feed_index", {}).get("state") == "ready")

    wait(ready, 60, procs, "the index never filled")
    index = get(f"{api}/health")[0]["feed_index"]
    assert index["filled"] >= 60 and index["posts"] == 91

    def settled() -> bool:
        return every_page(api, "")[0] == engine_order(api, "")

    wait(settled, 30, procs, "the index never matched the engine")
    for query in ("", "&channel=chat", "&author=npc_1", "&tick_from=3&tick_to=9"):
        ids, served = every_page(api, query)
        assert served == {"index"}, query
        assert ids == engine_order(api, query), query
    newest = every_page(api, "")[0]
    assert "po_live_000200" in newest and "po_live_000201" not in newest
