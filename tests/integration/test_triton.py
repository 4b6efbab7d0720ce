"""The Triton LLM model and the async client, against a real tritonserver."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from llm.chat import DEFAULT
from llm.client import Completion, LLMError, LLMUnavailable, TritonLLM
from tests.fixtures.triton import _free_ports

pytestmark = pytest.mark.integration

# the chat template rendered by the client, as every caller sends it (the model completes
# raw text, like vLLM's backend)
PROMPT = DEFAULT.render(
    "You are a helpful assistant.",
    "Write a short social media post about a rainy market day in a small town.",
)


async def test_generation_returns_text_and_token_counts(triton_url: str) -> None:
    async with TritonLLM(triton_url) as llm:
        assert await llm.ready()
        c = await llm.generate(PROMPT, {"max_tokens": 40, "temperature": 0.7, "seed": 1})
    assert isinstance(c, Completion)
    assert c.text.strip()
    assert c.tokens_in > 10
    assert 0 < c.tokens_out <= 40
    assert c.latency_ms > 0
    assert c.model == "llm"


async def test_max_tokens_is_honoured(triton_url: str) -> None:
    async with TritonLLM(triton_url) as llm:
        short = await llm.generate(PROMPT, {"max_tokens": 5, "temperature": 0.0})
        longer = await llm.generate(PROMPT, {"max_tokens": 30, "temperature": 0.0})
    assert 0 < short.tokens_out <= 5
    assert short.tokens_out < longer.tokens_out <= 30


async def test_seed_makes_generation_repeatable(triton_url: str) -> None:
    sampling = {"max_tokens": 20, "temperature": 0.9, "seed": 42}
    async with TritonLLM(triton_url) as llm:
        a = await llm.generate(PROMPT, sampling)
        b = await llm.generate(PROMPT, sampling)
    assert a.text == b.text


async def test_concurrent_requests_are_bounded_and_all_succeed(triton_url: str) -> None:
    async with TritonLLM(triton_url, concurrency=2) as llm:
        results = await asyncio.gather(
            *(
                llm.generate(
                    DEFAULT.render("", f"Write a post about the number {i}."), {"max_tokens": 12}
                )
                for i in range(6)
            )
        )
    assert len(results) == 6
    assert all(r.text.strip() and r.tokens_out > 0 for r in results)
    assert llm.max_in_flight == 2


async def test_unreachable_server_raises_unavailable_after_retries() -> None:
    (port,) = _free_ports(1)
    llm = TritonLLM(f"127.0.0.1:{port}", retries=2, backoff_s=0.05, timeout_s=2.0)
    started = time.perf_counter()
    async with llm:
        assert not await llm.ready()
        with pytest.raises(LLMUnavailable, match="after 3 attempt"):
            await llm.generate(PROMPT, {"max_tokens": 5})
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "sampling",
    [{"max_tokens": "many"}, {"temperature": -1}, {"max_tokens": 10**6}, {"no_such_param": 1}],
)
async def test_bad_sampling_is_a_model_error_and_server_keeps_serving(
    triton_url: str, sampling: dict
) -> None:
    async with TritonLLM(triton_url, retries=3) as llm:
        with pytest.raises(LLMError, match="sampling|max_tokens|temperature"):
            await llm.generate(PROMPT, sampling)
        ok = await llm.generate(PROMPT, {"max_tokens": 5})
    assert ok.text


def test_malformed_sampling_json_is_an_error_response(triton_url: str) -> None:
    """Raw invalid JSON (the wrapper always sends valid JSON) gets an error, no crash."""
    text = grpcclient.InferInput("text_input", [1], "BYTES")
    text.set_data_from_numpy(np.array([PROMPT.encode()], dtype=np.object_))
    bad = grpcclient.InferInput("sampling_parameters", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"{not json"], dtype=np.object_))
    with grpcclient.InferenceServerClient(triton_url) as client:
        with pytest.raises(Exception, match="not valid JSON"):
            client.infer("llm", [text, bad])
        good = grpcclient.InferInput("sampling_parameters", [1], "BYTES")
        good.set_data_from_numpy(np.array([b'{"max_tokens": 4}'], dtype=np.object_))
        result = client.infer("llm", [text, good])
        assert result.as_numpy("text_output")[0]
        assert client.is_model_ready("llm")


async def test_a_chat_prompt_ending_in_a_prefill_is_continued(triton_url: str) -> None:
    """The client renders the chat template (as vLLM needs); the model completes the raw
    text, so an answer's given start is continued, and the end-of-turn marker stops it."""
    prompt = DEFAULT.render(
        "You are Otto, a grumpy market vendor.", "Post about the rain today.", "Rain again, and"
    )
    sampling = {"max_tokens": 40, "temperature": 0.2, "seed": 3, "stop": list(DEFAULT.stop)}
    async with TritonLLM(triton_url) as llm:
        c = await llm.generate(prompt, sampling)
    assert c.text.strip() and "<|im_" not in c.text
    assert c.tokens_in > 20


async def test_a_grammar_constrains_the_answer(triton_url: str) -> None:
    """vLLM's guided_decoding {"grammar": GBNF}: the news form, headline + two paragraphs."""
    import re

    from bench.eval_posts import day1
    from posts.prompt import news_grammar
    from sim.world import load_world

    req = next(r for r in day1(1) if r.channel == "news")
    grammar = news_grammar(load_world("town"), req)
    prompt = DEFAULT.render("You are a town reporter.", "Report on the market fire today.")
    sampling = {"max_tokens": 200, "temperature": 0.3, "seed": 5}
    async with TritonLLM(triton_url) as llm:
        free = await llm.generate(prompt, sampling)
        ruled = await llm.generate(prompt, {**sampling, "guided_decoding": {"grammar": grammar}})
    form = re.compile(r"[A-Z][^\n.!?:]{8,70}\n\n[^\n]{30,330}[.!?\"]\n\n[^\n]{0,330}")
    assert form.match(ruled.text), ruled.text
    assert free.text != ruled.text


async def test_the_headline_grammar_keeps_to_the_events_words(triton_url: str) -> None:
    """A news headline written alone is decoded under a grammar of the event's own words
    (posts.prompt.title_rules): the actor leads, then a verb of the summary, then some of
    its phrases (a name, the place), each at most once and in the summary's order."""
    import re

    from bench.eval_posts import day1
    from posts.prompt import build_prompt, headline_prompt
    from sim.world import load_world

    index = load_world("town")
    req = next(r for r in day1(1) if r.channel == "news" and r.event.target)
    prompt = headline_prompt(
        index, req, build_prompt(index, req, index.catalog.templates[req.template])
    )
    assert prompt.grammar is not None
    rules = dict(line.split(" ::= ", 1) for line in prompt.grammar.strip().splitlines())
    verbs = re.findall(r'"([^"]+)"', rules["verb"])
    # p<i> ::= " " "At "? "Market Square": a phrase, optionally after its joining word
    phrases = [re.findall(r'"([^"]+)"', rules[k])[1:] for k in rules if re.fullmatch(r"p\d+", k)]
    actor = index.npc(req.event.actor).display_name
    sampling = {"max_tokens": 32, "temperature": 0.7, "seed": 11, "stop": list(DEFAULT.stop)}
    async with TritonLLM(triton_url) as llm:
        got = await llm.generate(
            prompt.text, {**sampling, "guided_decoding": {"grammar": prompt.grammar}}
        )
    text = got.text.strip()
    assert text.startswith(f"{actor} "), text
    rest = text[len(actor) + 1 :]
    verb = next((v for v in verbs if rest.startswith(v + " ")), None)
    assert verb, text
    rest = rest[len(verb) :]
    parts = [
        rf"(?: (?:{re.escape(p[0])})?{re.escape(p[-1])})?"
        if len(p) == 2
        else rf"(?: {re.escape(p[0])})?"
        for p in phrases
    ]
    assert rest.strip() and re.fullmatch("".join(parts), rest), (text, phrases)


async def test_a_bad_grammar_is_a_model_error_and_server_keeps_serving(triton_url: str) -> None:
    async with TritonLLM(triton_url, retries=1) as llm:
        with pytest.raises(LLMError, match="grammar"):
            await llm.generate(
                PROMPT, {"max_tokens": 5, "guided_decoding": {"grammar": "root ::= ("}}
            )
        with pytest.raises(LLMError, match="guided_decoding"):
            await llm.generate(PROMPT, {"max_tokens": 5, "guided_decoding": {"grammar": 3}})
        ok = await llm.generate(PROMPT, {"max_tokens": 5})
    assert ok.text
