"""The LLM loop without services: validation, retries, cache, ledger, outage wait, budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from llm.base import Completion, LLMError, LLMUnavailable
from llm.complete import Answer, Ask, CallCounts, Completer, Expect
from llm.gate import LLMGate, OverBudget
from topics.models import LLMCalled

MOVE = {
    "type": "object",
    "required": ["move"],
    "additionalProperties": False,
    "properties": {"move": {"enum": ["stay", "go"]}},
}
ASK = Ask(request_id="rq1", run_id="r1", priority=0.5)


@dataclass(frozen=True)
class P:
    text: str = "Stay or go? Answer as JSON."
    max_tokens: int = 20


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


async def ask(
    llm: FakeLLM, expect: Expect | None = None, **kw: Any
) -> tuple[Answer, list[LLMCalled], Completer, list[float]]:
    calls: list[LLMCalled] = []
    slept: list[float] = []

    async def ledger(c: LLMCalled) -> None:
        calls.append(c)

    async def sleep(s: float) -> None:
        slept.append(s)

    completer = Completer(llm, ledger=ledger, sleep=sleep, **kw)
    answer = await completer.complete(ASK, P(), expect or Expect(MOVE))
    return answer, calls, completer, slept


async def test_valid_json_first_time() -> None:
    answer, calls, c, _ = await ask(FakeLLM(['{"move": "go"}']))
    assert answer.fields == {"move": "go"} and answer.attempts == 1 and not answer.repaired
    assert (answer.tokens_in, answer.tokens_out, answer.model) == (100, 20, "fake")
    assert [x.outcome for x in calls] == ["valid"]
    assert calls[0].request_id == "rq1" and calls[0].run_id == "r1" and calls[0].prompt_hash
    assert c.stats.counts["llm_calls"] == 1 and c.stats.counts["tokens_out"] == 20


async def test_broken_json_is_repaired() -> None:
    answer, calls, _c, _ = await ask(FakeLLM(['Sure! ```json\n{"move": "stay",}\n```']))
    assert answer.fields == {"move": "stay"} and answer.repaired
    assert [x.outcome for x in calls] == ["repaired"]


async def test_schema_invalid_answers_are_retried_with_other_sampling() -> None:
    llm = FakeLLM(['{"move": "fly"}', "no idea", '{"move": "go"}'])
    answer, calls, _c, _ = await ask(llm)
    assert answer.fields == {"move": "go"} and answer.attempts == 3
    assert [x.outcome for x in calls] == ["invalid", "invalid", "valid"]
    assert calls[0].error and calls[0].error.startswith("/move")
    assert len({s["temperature"] for s in llm.calls}) == 3
    assert len({s["seed"] for s in llm.calls}) == 3
    assert answer.tokens_out == 60  # every call's tokens are counted


async def test_callers_checks_also_make_an_answer_invalid() -> None:
    expect = Expect(MOVE, check=lambda f: ["/move: not now"] if f["move"] == "go" else [])
    answer, calls, _c, _ = await ask(FakeLLM(['{"move": "go"}', '{"move": "stay"}']), expect)
    assert answer.fields == {"move": "stay"}
    assert [x.outcome for x in calls] == ["invalid", "valid"]


async def test_no_valid_answer_gives_the_failure() -> None:
    answer, calls, _c, _ = await ask(FakeLLM(['{"move": "fly"}']))
    assert answer.fields is None and answer.attempts == 3 and answer.model is None
    assert answer.failure and answer.failure.startswith("invalid: /move")
    assert len(calls) == 3


async def test_model_errors_count_as_failed_attempts() -> None:
    answer, calls, c, _ = await ask(FakeLLM([LLMError("bad"), '{"move": "go"}']))
    assert answer.fields == {"move": "go"} and answer.attempts == 2
    assert [x.outcome for x in calls] == ["error", "valid"]
    assert c.stats.counts["llm_errors"] == 1


async def test_unavailable_waits_with_backoff_then_answers() -> None:
    llm = FakeLLM([LLMUnavailable("down")] * 3 + ['{"move": "go"}'])
    answer, calls, c, slept = await ask(llm, outage_s=60)
    assert answer.fields == {"move": "go"} and answer.attempts == 1
    assert [x.outcome for x in calls] == ["unavailable"] * 3 + ["valid"]
    assert len({x.call_id for x in calls}) == 4
    assert c.stats.counts["outage_waits"] == 3 and slept == [1.0, 2.0, 4.0]


async def test_unavailable_too_long_gives_up_without_other_sampling() -> None:
    llm = FakeLLM([LLMUnavailable("down")])
    answer, calls, _c, _ = await ask(llm, outage_s=0)
    assert answer.fields is None and "unavailable" in (answer.failure or "")
    assert len(llm.calls) == 1 and [x.outcome for x in calls] == ["unavailable"]


async def test_cache_answers_the_same_prompt_and_sampling() -> None:
    cache: dict[bytes, bytes] = {}
    llm = FakeLLM(['{"move": "go"}'])
    first, _calls, _c, _ = await ask(llm, cache=cache)
    again, calls, c, _ = await ask(llm, cache=cache)
    assert len(llm.calls) == 1 and first.fields == again.fields
    assert [(x.outcome, x.cache_hit) for x in calls] == [("cached", True)]
    assert again.cache_hits == 1 and again.tokens_in == 0 and again.model == "fake"
    assert c.stats.counts["cache_hits"] == 1


async def test_over_budget_propagates_and_the_gate_is_released_after_errors() -> None:
    gate = LLMGate(concurrency=1)
    _a, _calls, _c, _ = await ask(FakeLLM([LLMError("bad"), '{"move": "go"}']), gate=gate)
    assert gate.in_use == 0 and gate.admitted == [0.5, 0.5]
    await gate.acquire(1.0, 1, 1)  # hold the only slot
    with pytest.raises(OverBudget):
        await ask(FakeLLM(['{"move": "go"}']), gate=gate, budget_wait_s=0.05)


async def test_counts_and_the_latency_of_each_call_reach_the_observer() -> None:
    seen: list[tuple[str, float]] = []
    stats = CallCounts(observe=lambda name, v: seen.append((name, v)))
    cache: dict[bytes, bytes] = {}
    await ask(FakeLLM([LLMError("bad")]), stats=stats)  # three failed attempts
    llm = FakeLLM(['{"move": "go"}'])
    await ask(llm, cache=cache, stats=stats)
    await ask(llm, cache=cache, stats=stats)  # answered from the cache: no call, no latency
    assert ("latency_s", 0.005) in seen  # the completion's 5 ms
    assert [n for n, _ in seen].count("latency_s") == 1
    totals: dict[str, float] = {}
    for name, v in seen:
        if name != "latency_s":
            totals[name] = totals.get(name, 0) + v
    assert totals == dict(stats.counts)  # everything counted was observed, nothing else
    assert totals["llm_errors"] == 3 and totals["tokens_in"] == 100
    assert totals["cache_hits"] == 1
