"""The render service without Kafka or Triton: outcomes, fallback, cache, quotas, dead letters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llm.base import Completion, LLMError, LLMUnavailable
from llm.complete import Completer
from llm.gate import LLMGate
from posts.moderation import Moderator
from posts.prompt import build_prompt
from posts.service import PostRenderer, Rendered, stats_summary
from sim.world import WorldIndex
from topics.models import LLMCalled, RenderRequested

MakeRequest = Callable[..., RenderRequested]
# grounded in make_request's event: its actor (Agnes Pike) writes in the first person and
# names the place (Brookfield School), which the feed needs; news names both
GOOD = "What a morning at Brookfield School, I tell you, honestly!"
NEWS = (
    "Pike Clashes Over Baker In School Row\n\n"
    "Agnes Pike argued with the baker at Brookfield School this morning.\n\n"
    "Nobody was hurt, the school said."
)


class FakeLLM:
    """Answers from a script: strings, or exceptions to raise (the last item repeats)."""

    model = "fake"

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        self.calls.append(dict(sampling))
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return Completion(item, 100, 20, 5.0, "fake")


def service(llm: Any, calls: list[LLMCalled] | None = None, **kw: Any) -> PostRenderer:
    async def ledger(c: LLMCalled) -> None:
        if calls is not None:
            calls.append(c)

    async def nosleep(_s: float) -> None:
        return None

    quota = kw.pop("quota", {})
    return PostRenderer(Completer(llm, ledger=ledger, sleep=nosleep, **kw), quota)


async def _render(
    index: WorldIndex, llm: Any, req: RenderRequested, **kw: Any
) -> tuple[Rendered, list[LLMCalled], PostRenderer]:
    calls: list[LLMCalled] = []
    r = service(llm, calls, **kw)
    prompt = build_prompt(index, req, index.catalog.templates[req.template])
    out = await r.render(index, req, prompt)
    return out, calls, r


async def test_valid_first_time(index: WorldIndex, make_request: MakeRequest) -> None:
    out, calls, r = await _render(index, FakeLLM([GOOD]), make_request())
    assert out.source == "llm" and out.attempts == 1 and not out.failure
    assert [c.outcome for c in calls] == ["valid"]
    assert calls[0].tokens_in == 100 and calls[0].prompt_hash
    assert r.stats.counts["valid_first"] == 1


async def test_invalid_output_is_retried_with_other_sampling(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    llm = FakeLLM(["", "ok", "I had a proper argument at Brookfield School today!"])
    out, calls, r = await _render(index, llm, make_request())
    assert out.source == "llm" and out.attempts == 3
    assert [c.outcome for c in calls] == ["invalid", "invalid", "valid"]
    assert llm.calls[0]["temperature"] != llm.calls[1]["temperature"]
    assert stats_summary(r.stats)["share_retried"] == 1.0


async def test_fallback_after_all_attempts(index: WorldIndex, make_request: MakeRequest) -> None:
    out, calls, r = await _render(index, FakeLLM([""]), make_request())
    assert out.source == "template" and out.failure and "invalid" in out.failure
    assert out.fields["body"]
    assert r.stats.counts["fell_back"] == 1 and len(calls) == 3


async def test_news_has_headline_and_paragraphs(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    out, _calls, _r = await _render(index, FakeLLM([NEWS]), make_request("news"))
    assert out.fields["title"] == "Pike Clashes Over Baker In School Row"
    assert out.fields["body"] == (
        "Agnes Pike argued with the baker at Brookfield School this morning.\n\n"
        "Nobody was hurt, the school said."
    )


async def test_ungrounded_answer_is_retried_with_the_reasons_and_given_its_start(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    class Recording(FakeLLM):
        prompts: list[str] = []

        async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
            self.prompts.append(prompt)
            return await super().generate(prompt, sampling)

    llm = Recording(
        [
            "I love the weather in Manchester today!",
            "Nice day.",
            "It got loud, the whole class heard.",
        ]
    )
    out, calls, r = await _render(index, llm, make_request())
    assert [c.outcome for c in calls] == ["invalid", "invalid", "valid"]
    assert "Manchester" in (calls[0].error or "") and "Brookfield School" in (calls[0].error or "")
    # a retry says why and starts the answer with the event ("Nice day." adds too little)
    assert "rejected (does not name Brookfield School" in llm.prompts[1]
    assert llm.prompts[1].endswith("I argued with the baker at Brookfield School. ")
    assert llm.prompts[2].endswith("I argued with the baker at Brookfield School. ")
    assert "/body: too short" in (calls[1].error or "")
    assert out.source == "llm" and out.fields["body"] == (
        "I argued with the baker at Brookfield School. It got loud, the whole class heard."
    )
    assert r.stats.counts["grounding_invented"] == 1 and r.stats.counts["attempt_3"] == 1


async def test_model_errors_count_as_failed_attempts(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    llm = FakeLLM([LLMError("bad"), "I had a proper argument at Brookfield School today!"])
    out, calls, _r = await _render(index, llm, make_request())
    assert out.source == "llm" and out.attempts == 2
    assert [c.outcome for c in calls] == ["error", "valid"]


async def test_unavailable_waits_then_renders(index: WorldIndex, make_request: MakeRequest) -> None:
    llm = FakeLLM([LLMUnavailable("down")] * 3 + ["I'm back online at Brookfield School!"])
    out, calls, r = await _render(index, llm, make_request(), outage_s=60)
    assert out.source == "llm" and out.attempts == 1
    assert [c.outcome for c in calls] == ["unavailable"] * 3 + ["valid"]
    assert len({c.call_id for c in calls}) == 4
    assert r.stats.counts["outage_waits"] == 3


async def test_unavailable_too_long_falls_back(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    out, _calls, _r = await _render(
        index, FakeLLM([LLMUnavailable("down")]), make_request(), outage_s=0
    )
    assert out.source == "template" and "unavailable" in (out.failure or "")


async def test_cache_answers_repeated_prompts(index: WorldIndex, make_request: MakeRequest) -> None:
    cache: dict[bytes, bytes] = {}
    llm = FakeLLM([GOOD])
    a, _c1, _r = await _render(index, llm, make_request(n=1), cache=cache)
    # another request (other id) with the same prompt: same seed, same key -> cache
    b, calls, r = await _render(
        index, llm, make_request(n=1).model_copy(update={"request_id": "x"}), cache=cache
    )
    assert len(llm.calls) == 1 and a.fields == b.fields
    assert [(c.outcome, c.cache_hit) for c in calls] == [("cached", True)]
    assert stats_summary(r.stats)["cache_hit_rate"] == 1.0


async def test_handle_publishes_a_moderated_post(make_request: MakeRequest) -> None:
    r = service(FakeLLM([GOOD]))
    req = make_request()
    out = await r.handle(req)
    assert out.dead_letter is None and out.post is not None
    post = out.post
    assert (post.request_id, post.author, post.channel, post.source) == (
        req.request_id,
        req.author,
        "feed",
        "llm",
    )
    assert post.body == GOOD and post.moderation == "published" and post.model == "fake"
    assert (post.tokens_in, post.tokens_out, post.score) == (100, 20, 0.7)
    assert r.stats.counts["moderation_published"] == 1


async def test_handle_fallback_publishes_and_dead_letters_why(make_request: MakeRequest) -> None:
    out = await service(FakeLLM([""])).handle(make_request())
    assert out.post is not None and out.post.source == "template"
    assert out.dead_letter and out.dead_letter.startswith("fell back to template: invalid")


async def test_handle_dead_letters_bad_input(make_request: MakeRequest) -> None:
    r = service(FakeLLM([GOOD]))
    unknown = make_request().model_copy(update={"author": "nobody"})
    out = await r.handle(unknown)
    assert out.post is None and out.dead_letter == "KeyError: \"unknown author 'nobody'\""
    out = await r.handle(make_request().model_copy(update={"template": "nope"}))
    assert out.post is None and (out.dead_letter or "").startswith("KeyError")


async def test_handle_rate_limits_before_asking(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    llm = FakeLLM([GOOD])
    r = service(llm)
    limit = index.catalog.channels["feed"].rate_limit_per_day
    outs = [await r.handle(make_request("feed", n)) for n in range(limit + 1)]
    assert all(o.post for o in outs[:limit])
    assert outs[-1].post is None and "rate limited" in (outs[-1].dead_letter or "")
    assert len(llm.calls) == limit and r.stats.counts["rate_limited"] == 1


async def test_handle_over_budget_is_dropped_and_counted(make_request: MakeRequest) -> None:
    gate = LLMGate(concurrency=1)
    await gate.acquire(1.0, 1, 1)  # hold the only slot
    r = service(FakeLLM([GOOD]), gate=gate, budget_wait_s=0.05)
    out = await r.handle(make_request())
    assert out.post is None and (out.dead_letter or "").startswith("dropped: LLM budget")
    assert r.stats.counts["over_budget"] == 1 and r.stats.counts["posts"] == 0


async def test_handle_moderation_verdict(make_request: MakeRequest) -> None:
    r = service(FakeLLM(["What an idiot that baker was today at Brookfield School, I say!"]))
    r.moderator = Moderator()
    out = await r.handle(make_request())
    assert out.post is not None and out.post.moderation == "flagged"
    assert out.post.moderation_reason == "rude word: 'idiot'"


async def test_a_sentence_that_breaks_a_rule_is_pruned_and_the_rest_published(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    llm = FakeLLM([GOOD + " We drove over from Manchester."])
    out, calls, r = await _render(index, llm, make_request())
    assert out.source == "llm" and out.attempts == 1 and out.fields["body"] == GOOD
    assert [c.outcome for c in calls] == ["repaired"]
    assert r.stats.counts["pruned_invented"] == 1 and r.stats.counts["repaired"] == 1


async def test_news_fallback_names_the_place_in_two_paragraphs_under_an_llm_headline(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    req = make_request("news")
    actor = index.npc(req.event.actor).display_name
    place = index.place_name(req.event.place)
    headline = f"{actor.split()[-1]} Clashes With Baker"
    llm = FakeLLM(["", "", "", headline])
    out, calls, r = await _render(index, llm, req)
    assert out.source == "template" and out.fields["title"] == headline
    first, second = out.fields["body"].split("\n\n")
    assert place in first and actor in first and "Reported by" in second
    assert [c.request_id for c in calls] == ["rqnews0"] * 3 + ["rqnews0/headline"]
    assert r.stats.counts["headline_llm"] == 1


async def test_news_fallback_keeps_the_summary_when_no_headline_passes(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    req = make_request("news")
    llm = FakeLLM(["", "", "", "Clash Rocks Brookville Council"])  # names nobody, invents
    out, calls, r = await _render(index, llm, req)
    assert out.fields["title"] == req.event.summary
    assert len(calls) == 6 and r.stats.counts["headline_template"] == 1
    assert "invented" in (calls[-1].error or "") and "actor" in (calls[-1].error or "")


async def test_an_article_with_a_bad_headline_keeps_its_body_and_gets_one_written(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    req = make_request("news")
    surname = index.npc(req.event.actor).display_name.split()[-1]
    body = NEWS.split("\n\n", 1)[1]
    llm = FakeLLM([f"Words Fly At The School, And\n\n{body}", f"{surname} Clashes With Baker"])
    out, calls, r = await _render(index, llm, req)
    assert out.source == "llm" and out.attempts == 1
    assert out.fields["title"] == f"{surname} Clashes With Baker"
    assert out.fields["body"] == body
    assert [c.request_id for c in calls] == ["rqnews0", "rqnews0/headline"]
    assert r.stats.counts["headline_llm"] == 1


async def test_a_chat_message_retelling_the_event_is_no_echo(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    req = make_request("chat", author="jay_okafor")
    told = f"{req.event.summary} at {index.place_name(req.event.place)}, I saw it."
    out, calls, _r = await _render(index, FakeLLM([told]), req)
    assert out.source == "llm" and [c.outcome for c in calls] == ["valid"]


async def test_an_article_without_a_headline_line_keeps_its_body_and_gets_one_written(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    req = make_request("news")
    surname = index.npc(req.event.actor).display_name.split()[-1]
    body = (
        "Agnes Pike argued with the baker at Brookfield School this morning, in front of every"
        " parent waiting at the gate for the bell.\n\nNobody was hurt, the school said."
    )
    llm = FakeLLM([body, f"{surname} Clashes With Baker"])  # paragraphs, no headline line
    out, calls, _r = await _render(index, llm, req)
    assert out.source == "llm" and out.attempts == 1 and out.fields["body"] == body
    assert out.fields["title"] == f"{surname} Clashes With Baker"
    assert [c.request_id for c in calls] == ["rqnews0", "rqnews0/headline"]
