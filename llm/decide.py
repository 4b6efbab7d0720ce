"""Answering a decision request (sim.deliberate) with the LLM: the deliberate stage's work.

The request carries the rendered prompt and the JSON Schema an answer must meet
(narrowed to the actions, event types and targets allowed now). The ask goes through
:class:`~llm.complete.Completer` (cache, budget gate, ledger), constrained to that
schema where the backend can (``guided_decoding`` in the sampling parameters: a
llama.cpp grammar on the CPU model, vLLM guided decoding on a GPU), then parsed,
repaired and validated; an invalid answer is retried with other sampling. A wall-clock
deadline turns a slow ask into a recorded ``timeout``: the shard then lets the rules
decide, and an answer that comes later is never used. Whether the engine accepts the
answer is not decided here but at the engine boundary (``sim.deliberate.check``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm.base import LLM, Completion
from llm.chat import DEFAULT, ChatTemplate
from llm.complete import Answer, Ask, Completer, Expect
from topics.models import DecisionMade, DecisionRequested, DecisionStatus

DECIDE_PRIORITY = 0.8  # at the budget gate: above feed posts, below news
MAX_REASON = 200


@dataclass(frozen=True)
class DecidePrompt:
    """The prompt of a decision request, as the LLM loop sees it."""

    system: str
    user: str
    max_tokens: int
    chat: ChatTemplate = DEFAULT

    @property
    def text(self) -> str:
        """The text the model sees: the system part and the question, in the chat template."""
        return self.chat.render(self.system, self.user)

    @property
    def stop(self) -> tuple[str, ...]:
        """The chat template's end-of-turn markers."""
        return self.chat.stop


@dataclass
class Guided:
    """An LLM whose every call is constrained to one JSON Schema (``guided_decoding``).

    The sampling parameter is vLLM's (``{"json": schema}``); the CPU model turns it into a
    llama.cpp grammar. ``enabled=False`` sends plain calls (a backend without it)."""

    llm: LLM
    schema: Mapping[str, Any]
    enabled: bool = True

    @property
    def model(self) -> str:
        """The wrapped model's name."""
        return str(self.llm.model)

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        """One completion, constrained to the schema when enabled."""
        if self.enabled:
            sampling = {**sampling, "guided_decoding": {"json": dict(self.schema)}}
        return await self.llm.generate(prompt, sampling)


def _status(answer: Answer) -> DecisionStatus:
    if answer.fields is None:
        return "error" if answer.failure and "invalid" not in answer.failure else "invalid"
    if answer.attempts > 1:
        return "retried"
    return "repaired" if answer.repaired else "ok"


async def answer_request(
    completer: Completer,
    req: DecisionRequested,
    timeout_s: float,
    guided: bool = True,
    chat: ChatTemplate = DEFAULT,
) -> DecisionMade:
    """The decision for one request: the LLM's answer (with how it was obtained), or a
    recorded ``timeout`` / ``invalid`` / ``error``. Never raises for a bad answer.
    ``chat`` is the served model's chat template."""
    started = time.perf_counter()
    loop = Completer(
        Guided(completer.llm, req.answer_schema, guided),
        completer.cache,
        completer.gate,
        completer.ledger,
        completer.stats,
        completer.outage_s,
        completer.budget_wait_s,
        completer.sleep,
    )
    prompt = DecidePrompt(req.system, req.prompt, req.max_tokens, chat)
    ask = Ask(req.request_id, req.run_id, DECIDE_PRIORITY)
    status: DecisionStatus
    fields: dict[str, Any] | None = None
    attempts = 0
    try:
        got = await asyncio.wait_for(
            loop.complete(ask, prompt, Expect(req.answer_schema)), timeout_s
        )
        status, fields, attempts = _status(got), got.fields, got.attempts
    except TimeoutError:
        status = "timeout"
    except Exception:  # noqa: BLE001 - the gate's OverBudget, a client bug: a recorded error
        status = "error"
    reason = fields.get("reason") if fields else None
    return req.decided(
        status,
        answer=fields,
        reason=str(reason)[:MAX_REASON] if reason is not None else None,
        attempts=attempts,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
