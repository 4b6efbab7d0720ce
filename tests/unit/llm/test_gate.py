"""The LLM budget: priority order, token bucket, over budget."""

from __future__ import annotations

import asyncio

import pytest

from llm.gate import LLMGate, OverBudget


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
    assert gate.waiting == 3  # the budget queue the metrics report
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


def test_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        LLMGate(concurrency=0)
