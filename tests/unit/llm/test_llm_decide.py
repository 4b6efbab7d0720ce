"""Answering decision requests (llm.decide) with a scripted LLM: constrained to the answer
schema, repaired, retried, and recorded as invalid, error or timeout; never raising."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from llm.base import Completion, LLMError
from llm.complete import Completer
from llm.decide import answer_request
from topics.models import DecisionRequested

SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "action": {"const": "socialize"},
                "event_type": {"enum": ["greeting"]},
                "target": {"enum": ["bea_summers"]},
                "reason": {"type": "string"},
            },
            "required": ["action", "event_type", "target"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"action": {"const": "wait"}, "reason": {"type": "string"}},
            "required": ["action"],
            "additionalProperties": False,
        },
    ]
}
REQ = DecisionRequested(
    request_id="dq_1",
    run_id="r",
    tick=3,
    due_tick=4,
    shard=0,
    n_shards=1,
    npcs=["eleanor_hart"],
    situation={},
    system="You decide.",
    prompt="What now?",
    answer_schema=SCHEMA,
    prompt_hash="abc",
)
GOOD = '{"action": "socialize", "event_type": "greeting", "target": "bea_summers", "reason": "hi"}'


class Scripted:
    model = "fake"

    def __init__(self, *script: Any, delay: float = 0.0) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []
        self.delay = delay

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        self.calls.append(dict(sampling))
        if self.delay:
            await asyncio.sleep(self.delay)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return Completion(item, 50, 20, 3.0, "fake")


async def test_a_valid_answer_first_try_is_ok_and_constrained_to_the_schema() -> None:
    llm = Scripted(GOOD)
    made = await answer_request(Completer(llm), REQ, 5.0)
    assert made.status == "ok" and made.attempts == 1
    assert made.answer == {
        "action": "socialize",
        "event_type": "greeting",
        "target": "bea_summers",
        "reason": "hi",
    }
    assert made.reason == "hi"
    assert llm.calls[0]["guided_decoding"] == {"json": SCHEMA}


async def test_unguided_backends_get_plain_sampling() -> None:
    llm = Scripted(GOOD)
    await answer_request(Completer(llm), REQ, 5.0, guided=False)
    assert "guided_decoding" not in llm.calls[0]


async def test_a_repaired_answer_is_marked_repaired() -> None:
    made = await answer_request(Completer(Scripted("Sure! " + GOOD[:-1] + ",}")), REQ, 5.0)
    assert made.status == "repaired"


async def test_an_invalid_answer_is_retried_with_other_sampling() -> None:
    llm = Scripted('{"action": "fly"}', GOOD)
    made = await answer_request(Completer(llm), REQ, 5.0)
    assert made.status == "retried" and made.attempts == 2
    assert llm.calls[0]["temperature"] != llm.calls[1]["temperature"]


@pytest.mark.parametrize(
    ("script", "status"),
    [(["not json at all"], "invalid"), (['{"action": "socialize"}'], "invalid")],
)
async def test_never_valid_is_recorded_invalid(script: list[str], status: str) -> None:
    made = await answer_request(Completer(Scripted(*script)), REQ, 5.0)
    assert made.status == status and made.answer is None


async def test_a_model_error_is_recorded_as_error() -> None:
    made = await answer_request(Completer(Scripted(LLMError("boom"))), REQ, 5.0)
    assert made.status == "error" and made.answer is None


async def test_a_slow_answer_becomes_a_recorded_timeout() -> None:
    made = await answer_request(Completer(Scripted(GOOD, delay=1.0)), REQ, 0.05)
    assert made.status == "timeout" and made.answer is None
    assert made.request_id == REQ.request_id and made.due_tick == 4
