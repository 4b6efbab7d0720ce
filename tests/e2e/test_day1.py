"""Day 1, end to end: real Kafka, real Triton (SmolLM2 on CPU), worker and API processes
with the embedded ClickHouse engine; LLM-written posts are found through the API.

The run is the golden run of seed 1 (``tests/golden/``): its posts must be the ones
recorded from main before the architecture change, text for text.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.processes import Procs, read_settled, read_until, start_run, wait_http
from tests.golden.record import path_for, run_id_for
from topics import DLQ, POSTS, RENDER_REQUESTS, TICKS
from worldfeed.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def free_api_port() -> int:
    from tests.fixtures.kafka import free_port

    return free_port()


# the posts may take up to 1500 s (below) on a busy 2-core machine: the suite's 600 s
# timeout cut the test while it was still waiting for them (a clean-clone run under load)
@pytest.mark.timeout(2100)
async def test_day1_posts_reach_the_feed(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str
) -> None:
    settings = settings_factory(
        triton_grpc_url=triton_url, api_port=free_api_port(), world_partitions=2
    )
    procs.worker("worker", settings, "clock,world,impact,render")
    procs.start("api", settings, "api")
    api = f"http://127.0.0.1:{settings.api_port}"
    wait_http(f"{api}/health", 90, procs)

    seed = 1
    run_id = run_id_for(seed)
    await start_run(settings, run_id, seed=seed)
    ticks = await read_until(settings, TICKS, lambda m: any(t.last for t in m), 180)
    assert len(ticks) == 96
    requests = await read_settled(settings, RENDER_REQUESTS)
    assert len(requests) >= 10, "Day 1 should make at least 10 render requests"
    # each post may take three LLM calls (grounding retries): ~10 min on 2 CPU cores
    posts = await read_until(settings, POSTS, lambda m: len(m) >= len(requests), 1500)
    procs.assert_alive()
    assert {p.request_id for p in posts} == {r.request_id for r in requests}

    # the API serves them from ClickHouse (the sink batches, so poll briefly)
    import time

    deadline = time.monotonic() + 60
    while True:
        feed = get(f"{api}/feed?run_id={run_id}&limit=200")
        if len(feed["items"]) >= len([p for p in posts if p.moderation != "blocked"]):
            break
        assert time.monotonic() < deadline, f"API shows {len(feed['items'])} of {len(posts)}"
        time.sleep(1)
    # the run's feed comes from the post index (the embedded sink fed it as it stored
    # the posts) and holds exactly what the engine holds, newest first
    with urllib.request.urlopen(f"{api}/feed?run_id={run_id}&limit=200", timeout=30) as r:  # noqa: S310 - loopback
        assert r.headers["X-Cache"] == "index"
        from_memory = [p["post_id"] for p in json.loads(r.read())["items"]]
    stored = get(f"{api}/posts?run_id={run_id}&limit=500")["items"]  # read from the engine
    assert from_memory == [p["post_id"] for p in reversed(stored)]
    llm_posts = [p for p in feed["items"] if p["source"] == "llm"]
    assert llm_posts, "no LLM-written post in the feed"
    assert all(p["body"].strip() for p in feed["items"])
    channels = {p["channel"] for p in feed["items"]}
    assert {"feed", "chat", "news"} <= channels
    news = get(f"{api}/feed?run_id={run_id}&channel=news")
    assert news["items"] and all(p["title"] for p in news["items"])
    one = get(f"{api}/posts/{llm_posts[0]['post_id']}")
    assert one["body"] == llm_posts[0]["body"]
    golden = json.loads(path_for(seed).read_text())["posts"]
    mine = sorted((p.request_id, p.channel, p.author, p.source, p.title, p.body) for p in posts)
    want = [
        (g["request_id"], g["channel"], g["author"], g["source"], g["title"], g["body"])
        for g in golden
    ]
    assert mine == want, "posts differ from the golden posts recorded before the refactor"
    # every LLM-written post passes every grounding rule, judged again without the prompt's
    # words; every template post fell back with its reason on the dead-letter topic
    from posts.grounding import names_of, problems
    from posts.service import subject_of
    from sim.world import load_world

    index = load_world("town")
    asked = {r.request_id: r for r in requests}
    for p in posts:
        if p.source == "llm":
            fields = {"body": p.body, **({"title": p.title} if p.title else {})}
            subject = subject_of(index, asked[p.request_id])
            assert problems(fields, subject, names_of(index)) == [], (p.title, p.body)
    fell_back = {p.request_id for p in posts if p.source == "template"}
    letters = await read_settled(settings, DLQ)
    reasons = {
        rid: letter.reason
        for letter in letters
        for rid in fell_back
        if rid in letter.value and letter.reason.startswith("fell back to template: ")
    }
    assert set(reasons) == fell_back, (fell_back, [x.reason[:80] for x in letters])
    health = get(f"{api}/health")
    assert health["checks"]["clickhouse"] == "ok" and health["checks"]["kafka"] == "ok"
    events = get(f"{api}/events?run_id={run_id}&limit=500")
    assert len(events["items"]) == sum(t.events for t in ticks)
