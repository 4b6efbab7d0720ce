"""Sampling seeds and cache keys depend on the prompt and attempt, never on who asks."""

from __future__ import annotations

from dataclasses import dataclass

from llm.cache import ATTEMPTS, cache_key, prompt_hash, sampling_for


@dataclass(frozen=True)
class P:
    text: str
    max_tokens: int = 40


def test_each_attempt_samples_differently_within_the_prompt_budget() -> None:
    p = P("Say something.")
    samplings = [sampling_for(p, a) for a in range(1, len(ATTEMPTS) + 1)]
    assert len({s["temperature"] for s in samplings}) == len(ATTEMPTS)
    assert all(s["max_tokens"] == 40 and 0 <= s["seed"] < 2**31 for s in samplings)
    assert sampling_for(P("Say something."), 1) == samplings[0]  # deterministic


def test_cache_key_covers_model_prompt_and_sampling() -> None:
    p, s = P("Say something."), sampling_for(P("Say something."), 1)
    key = cache_key("m", p, s)
    assert key == cache_key("m", P("Say something."), dict(s))
    assert key != cache_key("other", p, s)
    assert key != cache_key("m", P("Say something else."), s)
    assert key != cache_key("m", p, dict(s, max_tokens=41))
    assert len(prompt_hash(p)) == 16 and prompt_hash(p) != prompt_hash(P("x"))
