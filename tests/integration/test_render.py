"""The render worker on a real broker and a real Triton: Triton stopped for a while
mid-run loses no request, the completion cache survives a worker restart, and a reply
renders with its thread."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from llm.cache import ATTEMPTS, prompt_hash
from llm.chat import template_named
from posts.prompt import build_prompt
from sim.impact import Story, book_of, render_requests
from sim.local import LocalRun
from sim.world import load_world
from tests.fixtures.processes import Procs, produce, read_settled, read_until
from tests.fixtures.triton import SCRIPT, _free_ports
from tests.unit.sim.catalog_edit import with_feed
from topics import LLM_CALLS, POSTS, RENDER_REQUESTS
from topics.codec import encode
from topics.models import RenderRequested
from worldfeed.ids import derive_id
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OUTAGE_S = 60


def requests_of_day1(run_id: str, n: int) -> list[RenderRequested]:
    index = load_world("town")
    run = LocalRun(index, run_id, seed=11)
    out: list[RenderRequested] = []
    while len(out) < n:
        for ev in run.step():
            out.extend(render_requests(index, Story(ev)))
    return [r for r in out if r.channel != "news"][:n]  # short posts: quick on CPU


async def send_all(settings: Settings, reqs: list[RenderRequested]) -> None:
    for r in reqs:
        await produce(settings, RENDER_REQUESTS, r.request_id.encode(), encode(r))


class OwnTriton:
    """A Triton server of this test only, so it can be stopped and started."""

    def __init__(self) -> None:
        self.http, self.grpc, self.metrics = (str(p) for p in _free_ports(3))
        self.url = f"127.0.0.1:{self.grpc}"

    def start(self) -> None:
        proc = subprocess.run(
            [str(SCRIPT), "start", self.http, self.grpc, self.metrics],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop", self.http, self.grpc], timeout=60, check=False)


@pytest.fixture
def own_triton() -> Iterator[OwnTriton]:
    server = OwnTriton()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_triton_down_for_a_minute_loses_no_request(
    settings_factory: Callable[..., Settings], procs: Procs, own_triton: OwnTriton
) -> None:
    settings = settings_factory(
        triton_grpc_url=own_triton.url, llm_retries=1, llm_timeout_s=120, llm_outage_s=900
    )
    reqs = requests_of_day1("outage", 8)
    procs.worker("render", settings, "render")
    await send_all(settings, reqs[:2])
    await read_until(settings, POSTS, lambda m: len(m) >= 2, 180)
    own_triton.stop()
    down_at = time.monotonic()
    await send_all(settings, reqs[2:])
    await asyncio.sleep(OUTAGE_S)
    procs.assert_alive()
    own_triton.start()
    posts = await read_until(settings, POSTS, lambda m: len(m) >= len(reqs), 600)
    assert time.monotonic() - down_at >= OUTAGE_S
    assert {p.request_id for p in posts} == {r.request_id for r in reqs}
    calls = await read_settled(settings, LLM_CALLS, settle_s=2)
    # requests waited for Triton: a post falls back to the template only after every
    # attempt was answered and rejected by the checks (grounding), never for the outage
    answered = Counter(c.request_id for c in calls if c.outcome in ("valid", "repaired", "invalid"))
    fell_back = [p.request_id for p in posts if p.source == "template"]
    assert all(answered[r] == len(ATTEMPTS) for r in fell_back), (fell_back, answered)
    assert any(p.source == "llm" for p in posts)
    assert any(c.outcome == "unavailable" for c in calls)
    assert {c.request_id for c in calls} >= {r.request_id for r in reqs}
    procs.assert_alive()


async def test_cache_survives_a_worker_restart(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str
) -> None:
    settings = settings_factory(triton_grpc_url=triton_url)
    reqs = requests_of_day1("cache", 3)
    procs.worker("render", settings, "render")
    await send_all(settings, reqs)
    await read_until(settings, POSTS, lambda m: len(m) >= len(reqs), 300)
    procs.kill("render")
    # the same prompts again under new request ids, to a fresh worker process
    again = [r.model_copy(update={"request_id": r.request_id + "-again"}) for r in reqs]
    procs.worker("render2", settings, "render")
    await send_all(settings, again)
    posts = await read_until(settings, POSTS, lambda m: len(m) >= 2 * len(reqs), 300)
    calls = await read_settled(settings, LLM_CALLS, settle_s=2)
    second = [c for c in calls if c.request_id.endswith("-again")]
    assert second and all(c.cache_hit and c.outcome == "cached" for c in second)
    by_id = {p.request_id: p for p in posts}
    for r in reqs:
        assert by_id[r.request_id + "-again"].body == by_id[r.request_id].body


async def test_a_reply_renders_with_its_thread(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str
) -> None:
    """A reply (from a day with the feed loop on) and the post it answers, through the
    render worker: the reply is written by the LLM from a prompt holding the parent post,
    and the stored reply names its parent, which is a post of the same run."""
    index = with_feed(load_world("town").catalog)
    run = LocalRun(index, "thread", seed=3)
    for _ in range(96):
        run.step()
    requests = book_of(index, run.events)[1]
    reply = next(r for r in requests if r.parent is not None and r.parent.relation == "reply")
    assert reply.parent is not None
    parent = next(r for r in requests if derive_id("post", r.request_id) == reply.parent.post_id)
    settings = settings_factory(triton_grpc_url=triton_url)
    procs.worker("render", settings, "render")
    await send_all(settings, [parent, reply])
    posts = await read_until(settings, POSTS, lambda m: len(m) >= 2, 300)
    by_request = {p.request_id: p for p in posts}
    first, answer = by_request[parent.request_id], by_request[reply.request_id]
    assert answer.reply_to == first.post_id == reply.parent.post_id
    assert answer.repost_of is None and first.reply_to is None
    calls = await read_settled(settings, LLM_CALLS, settle_s=2)
    asked = {c.prompt_hash for c in calls if c.request_id == reply.request_id}
    template = index.catalog.templates[reply.template]
    chat = template_named(settings.llm_chat_template)
    prompt = build_prompt(index, reply, template, settings.llm_max_tokens, chat)
    assert reply.parent.text.rstrip(".") in prompt.text  # the parent post is in the prompt
    assert prompt_hash(prompt) in asked  # and that prompt is what the LLM was asked
    procs.assert_alive()
