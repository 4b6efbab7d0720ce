"""Render logic without services: retries, fallback, cache, ledger, outage wait, budget, quotas."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from posts.output import parse_output, quality_problems
from posts.prompt import build_prompt, voiced_summary
from sim.world import WorldIndex, load_world
from streams.llm import Completion, LLMError, LLMUnavailable
from streams.render import (
    LLMGate,
    OverBudget,
    Renderer,
    apply_rate_limit,
    cache_key,
    sampling_for,
)
from topics.models import EventHappened, ImpactScore, LLMCalled, RenderRequested

FEED = {"properties": {"body": {"type": "string", "minLength": 1, "maxLength": 500}}}


@pytest.fixture(scope="module")
def index() -> WorldIndex:
    return load_world("town")


def request(index: WorldIndex, channel: str = "feed", n: int = 0, author: str | None = None) -> Any:
    actor = index.npc_ids[0]
    author = author or (index.journalists[0] if channel == "news" else actor)
    ev = EventHappened(
        event_id=f"ev{n}",
        run_id="r1",
        tick=40,
        sim_minute=600,
        type="argue",
        actor=actor,
        place=next(iter(index.catalog.places)),
        summary=f"{index.npc(actor).display_name} argued with the baker",
        impact=ImpactScore(novelty=0.5, conflict=0.5, status=0.5, cascade=0, total=0.7),
    )
    template = {"feed": "feed_post", "chat": "chat_message", "news": "news_article"}[channel]
    return RenderRequested(
        request_id=f"rq{channel}{n}",
        run_id="r1",
        channel=channel,
        author=author,
        template=template,
        score=0.7,
        event=ev,
    )


class FakeLLM:
    """Answers from a script: strings, or exceptions to raise."""

    model = "fake"

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    async def generate(self, prompt: str, sampling: dict[str, Any]) -> Completion:
        self.calls.append(dict(sampling))
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return Completion(item, 100, 20, 5.0, "fake")


async def _render(index: WorldIndex, llm: Any, req: Any, **kw: Any) -> tuple[Any, list[LLMCalled]]:
    calls: list[LLMCalled] = []

    async def ledger(c: LLMCalled) -> None:
        calls.append(c)

    async def nosleep(_s: float) -> None:
        return None

    r = Renderer(llm, ledger=ledger, sleep=nosleep, **kw)
    prompt = build_prompt(index, req, index.catalog.templates[req.template])
    out = await r.render(index, req, prompt)
    return out, calls, r


async def test_valid_first_time(index: WorldIndex) -> None:
    out, calls, r = await _render(
        index, FakeLLM(["What a morning at the bakery, honestly!"]), request(index)
    )
    assert out.source == "llm" and out.attempts == 1 and not out.failure
    assert [c.outcome for c in calls] == ["valid"]
    assert calls[0].tokens_in == 100 and calls[0].prompt_hash
    assert r.stats.counts["valid_first"] == 1


async def test_invalid_output_is_retried_with_other_sampling(index: WorldIndex) -> None:
    llm = FakeLLM(["", "ok", "A proper post about the argument today!"])
    out, calls, r = await _render(index, llm, request(index))
    assert out.source == "llm" and out.attempts == 3
    assert [c.outcome for c in calls] == ["invalid", "invalid", "valid"]
    assert llm.calls[0]["temperature"] != llm.calls[1]["temperature"]
    assert r.stats.summary()["share_retried"] == 1.0


async def test_fallback_after_all_attempts(index: WorldIndex) -> None:
    out, calls, r = await _render(index, FakeLLM([""]), request(index))
    assert out.source == "template" and out.failure and "invalid" in out.failure
    assert out.fields["body"]
    assert r.stats.counts["fell_back"] == 1 and len(calls) == 3


async def test_news_has_headline_and_body(index: WorldIndex) -> None:
    req = request(index, "news")
    text = "Baker Row Erupts\n\nThe argument went on for an hour. Nobody was hurt."
    out, _calls, _r = await _render(index, FakeLLM([text]), req)
    assert out.fields["title"] == "Baker Row Erupts"
    assert out.fields["body"].startswith("The argument")


async def test_model_errors_count_as_failed_attempts(index: WorldIndex) -> None:
    llm = FakeLLM([LLMError("bad"), "A proper post about the argument today!"])
    out, calls, _r = await _render(index, llm, request(index))
    assert out.source == "llm" and out.attempts == 2
    assert [c.outcome for c in calls] == ["error", "valid"]


async def test_unavailable_waits_then_renders(index: WorldIndex) -> None:
    llm = FakeLLM([LLMUnavailable("down")] * 3 + ["Back online and posting!"])
    out, calls, r = await _render(index, llm, request(index), outage_s=60)
    assert out.source == "llm" and out.attempts == 1
    assert [c.outcome for c in calls] == ["unavailable"] * 3 + ["valid"]
    assert len({c.call_id for c in calls}) == 4
    assert r.stats.counts["outage_waits"] == 3


async def test_unavailable_too_long_falls_back(index: WorldIndex) -> None:
    out, _calls, r = await _render(
        index, FakeLLM([LLMUnavailable("down")]), request(index), outage_s=0
    )
    assert out.source == "template" and "unavailable" in (out.failure or "")


async def test_cache_answers_repeated_prompts(index: WorldIndex) -> None:
    cache: dict[bytes, bytes] = {}
    llm = FakeLLM(["What a morning at the bakery, honestly!"])
    a, _c1, _r = await _render(index, llm, request(index, n=1), cache=cache)
    # another request (other id) with the same prompt: same seed, same key -> cache
    b, calls, r = await _render(
        index, llm, request(index, n=1).model_copy(update={"request_id": "x"}), cache=cache
    )
    assert len(llm.calls) == 1 and a.fields == b.fields
    assert [(c.outcome, c.cache_hit) for c in calls] == [("cached", True)]
    assert r.stats.summary()["cache_hit_rate"] == 1.0


def test_seed_and_cache_key_depend_on_prompt_not_request(index: WorldIndex) -> None:
    t = index.catalog.templates["feed_post"]
    p1 = build_prompt(index, request(index, n=1), t)
    p2 = build_prompt(index, request(index, n=2), t)
    assert sampling_for(p1, 1) == sampling_for(p2, 1)  # same text, different requests
    assert sampling_for(p1, 1)["seed"] != sampling_for(p1, 2)["seed"]
    assert cache_key("m", p1, sampling_for(p1, 1)) != cache_key("m", p1, sampling_for(p1, 2))


async def test_gate_serves_highest_priority_first() -> None:
    gate = LLMGate(concurrency=1)
    await gate.acquire(0.0, 1, 5)  # hold the only slot
    order: list[float] = []

    async def want(p: float) -> None:
        await gate.acquire(p, 1, 5)
        order.append(p)
        await gate.release()

    tasks = [asyncio.create_task(want(p)) for p in (0.2, 0.9, 0.5)]
    await asyncio.sleep(0.01)
    await gate.release()
    await asyncio.gather(*tasks)
    assert order == [0.9, 0.5, 0.2]


async def test_gate_token_budget_and_over_budget() -> None:
    gate = LLMGate(concurrency=4, tokens_per_s=100, burst_s=1)
    await gate.acquire(1.0, 100, 1)  # the whole burst
    await gate.release()
    with pytest.raises(OverBudget):
        await gate.acquire(1.0, 100, 0.2)  # refills 20 tokens in 0.2 s: not enough
    await gate.acquire(1.0, 50, 2)  # ~0.5 s of refill
    await gate.release()
    assert gate.in_use == 0 and not gate._heap


def test_daily_quota_per_author_and_channel(index: WorldIndex) -> None:
    quota: dict[bytes, bytes] = {}
    limit = index.catalog.channels["feed"].rate_limit_per_day
    results = [apply_rate_limit(index, request(index, "feed", n), quota) for n in range(limit + 1)]
    assert all(r is not None for r, _ in results[:limit])
    over, reason = results[-1]
    assert over is None and reason and "rate limited" in reason
    # a redelivered request is not charged twice
    again, _ = apply_rate_limit(index, request(index, "feed", 0), quota)
    assert again is not None


def test_news_over_quota_goes_to_another_journalist(index: WorldIndex) -> None:
    quota: dict[bytes, bytes] = {}
    limit = index.catalog.channels["news"].rate_limit_per_day
    first = index.journalists[0]
    authors = [
        apply_rate_limit(index, request(index, "news", n, author=first), quota)[0]
        for n in range(limit * len(index.journalists) + 1)
    ]
    assert [a.author for a in authors[:limit]] == [first] * limit
    assert {a.author for a in authors[limit:-1]} == set(index.journalists) - {first}
    assert authors[-1] is None


def test_voiced_summary_speaks_to_the_author(index: WorldIndex) -> None:
    req = request(index)
    text = voiced_summary(index, req)
    assert text.startswith("You argued with the baker")
    assert voiced_summary(index, req, first_person=False).startswith(
        index.npc(req.author).display_name
    )


def test_echo_and_salutations_are_cut() -> None:
    prompt = (
        "Write your social media post about what happened:\nYou argued with the baker at the cafe."
    )
    raw = (
        "Dear Sarah,\nYou argued with the baker at the cafe.\n"
        "I hope this message finds you well. Bread war! More soon"
    )
    parsed = parse_output("feed", raw, FEED, prompt)
    assert parsed.fields["body"] == "Bread war!" and parsed.repaired
    assert quality_problems({"body": "ok"}) and not quality_problems(
        {"body": "A fine post, really."}
    )
