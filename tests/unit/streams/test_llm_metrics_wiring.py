"""The stages that ask the LLM export their loop's counts and budget under their name."""

from __future__ import annotations

from types import SimpleNamespace

from streams.render import triton_completer
from worldfeed.metrics import REGISTRY
from worldfeed.settings import Settings


def test_a_stages_completer_counts_into_its_series() -> None:
    streams = SimpleNamespace(settings=Settings(llm_concurrency=3))
    completer = triton_completer(streams, "wired-stage", None, 1.0, 1.0)  # type: ignore[arg-type]
    labels = {"stage": "wired-stage"}
    before = REGISTRY.get_sample_value("worldfeed_llm_calls_total", labels) or 0
    completer.stats.add("llm_calls")
    completer.stats.timed("latency_s", 0.2)
    assert REGISTRY.get_sample_value("worldfeed_llm_calls_total", labels) == before + 1
    assert REGISTRY.get_sample_value("worldfeed_llm_latency_seconds_count", labels)
    assert completer.stats.counts["llm_calls"] == 1  # the stage's own counters still count
    assert REGISTRY.get_sample_value("worldfeed_llm_budget_queue", labels) == 0
    assert REGISTRY.get_sample_value("worldfeed_llm_in_flight", labels) == 0
