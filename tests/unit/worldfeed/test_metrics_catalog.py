"""The metrics catalog: what each helper records, with bounded labels (no services)."""

from __future__ import annotations

import pytest

from worldfeed import metrics
from worldfeed.metrics import REGISTRY


def value(name: str, **labels: str) -> float:
    """A sample's value now (0 when it has none yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("shard-inbox: not JSON: expected value", "decode"),
        ("wf.t1.events: invalid message: tick: field required", "decode"),
        ("posts: empty message (no value)", "decode"),
        ("not storable: bad date", "not_storable"),
        ("message for shard 3 on partition 1", "wrong_shard"),
        ("event has no base impact", "no_impact"),
        ("world 'atlantis': no such catalog", "unknown_world"),
        ("fell back to template: invalid: move: not one of", "llm_fallback"),
        ("dropped: LLM budget: not admitted within 60s (4/4 in flight)", "over_budget"),
        ("rate limited: npc-1 already has 3 feed posts on day 2", "rate_limited"),
        ("KeyError: unknown author 'npc-x'", "unknown_name"),
        ("ValueError: tick 3 before 5", "exception"),
        ("RuntimeError: boom", "exception"),
        ("something nobody foresaw", "other"),
    ],
)
def test_reason_class_of_every_reason_the_stages_write(reason: str, expected: str) -> None:
    assert metrics.reason_class(reason) == expected
    assert expected in metrics.REASON_CLASSES


def test_dead_letters_are_counted_by_stage_and_reason_class_not_text() -> None:
    before = value("worldfeed_dead_letters_total", stage="impact", reason="unknown_world")
    metrics.dead_lettered("impact", "world 'a': gone")
    metrics.dead_lettered("impact", "world 'b': gone too")
    after = value("worldfeed_dead_letters_total", stage="impact", reason="unknown_world")
    assert after - before == 2
    page = metrics.exposition().decode()
    assert "gone" not in page  # the free text never becomes a label


def test_tick_timer_observes_duration_and_barrier_wait_once_per_tick() -> None:
    timer = metrics.TickTimer()
    n0 = value("worldfeed_tick_duration_seconds_count", shard="7")
    s0 = value("worldfeed_tick_duration_seconds_sum", shard="7")
    w0 = value("worldfeed_barrier_wait_seconds_sum", shard="7")
    timer.started("r", 7, 0, now=10.0)
    timer.started("r", 7, 0, now=11.0)  # a re-sent tick: the first start counts
    timer.sent("r", 7, 0, now=10.5)
    timer.sent("r", 7, 0, now=10.9)
    timer.done("r", 7, 0, barrier_at=12.0, now=12.25)
    assert value("worldfeed_tick_duration_seconds_count", shard="7") - n0 == 1
    assert value("worldfeed_tick_duration_seconds_sum", shard="7") - s0 == pytest.approx(2.25)
    assert value("worldfeed_barrier_wait_seconds_sum", shard="7") - w0 == pytest.approx(1.5)
    assert len(timer) == 0
    timer.done("r", 7, 0, barrier_at=13.0, now=13.0)  # reported again: nothing to time
    assert value("worldfeed_tick_duration_seconds_count", shard="7") - n0 == 1


def test_tick_timer_forgets_older_ticks_and_ignores_unstarted_ones() -> None:
    timer = metrics.TickTimer()
    timer.sent("r", 8, 4, now=1.0)  # never started here (restored, re-sent): not timed
    timer.started("r", 8, 5, now=1.0)
    timer.started("r", 8, 6, now=2.0)
    timer.started("other", 8, 5, now=2.0)
    timer.done("r", 8, 6, barrier_at=3.0, now=3.0)
    assert len(timer) == 1  # r's tick 5 went with 6; the other run's stays
    timer.forget()
    assert len(timer) == 0


def test_llm_observer_maps_the_loop_counts_to_series() -> None:
    observe = metrics.llm_observer("unit-stage")
    base = {
        "calls": value("worldfeed_llm_calls_total", stage="unit-stage"),
        "in": value("worldfeed_llm_tokens_total", stage="unit-stage", direction="prompt"),
        "hit": value("worldfeed_llm_cache_lookups_total", stage="unit-stage", result="hit"),
        "lat": value("worldfeed_llm_latency_seconds_count", stage="unit-stage"),
    }
    observe("llm_calls", 1)
    observe("tokens_in", 120)
    observe("cache_hits", 1)
    observe("latency_s", 0.3)
    observe("moderation_ok", 1)  # the render service's own counts are not LLM series
    assert value("worldfeed_llm_calls_total", stage="unit-stage") - base["calls"] == 1
    prompt = value("worldfeed_llm_tokens_total", stage="unit-stage", direction="prompt")
    assert prompt - base["in"] == 120
    hits = value("worldfeed_llm_cache_lookups_total", stage="unit-stage", result="hit")
    assert hits - base["hit"] == 1
    assert value("worldfeed_llm_latency_seconds_count", stage="unit-stage") - base["lat"] == 1
    assert "moderation" not in metrics.exposition().decode()


def test_gate_queue_and_in_flight_are_read_at_scrape_time() -> None:
    class Gate:
        waiting = 3
        in_use = 2

    gate = Gate()
    metrics.watch_llm_gate("gate-stage", gate)
    assert value("worldfeed_llm_budget_queue", stage="gate-stage") == 3
    gate.waiting = 0
    assert value("worldfeed_llm_budget_queue", stage="gate-stage") == 0
    assert value("worldfeed_llm_in_flight", stage="gate-stage") == 2


def test_current_lag_and_last_tick_read_back_the_gauges() -> None:
    metrics.CONSUMER_LAG.labels("wf.events", "unit-group").set(12)
    try:
        assert metrics.current_lag()["unit-group"] == {"wf.events": 12}
    finally:
        metrics.CONSUMER_LAG.remove("wf.events", "unit-group")
    assert "unit-group" not in metrics.current_lag()
    metrics.TICKS_COMPLETED.inc()
    metrics.LAST_TICK.set(41)
    assert metrics.last_completed_tick() == 41


def test_status_class() -> None:
    assert [metrics.status_class(s) for s in (200, 304, 404, 503)] == ["2xx", "3xx", "4xx", "5xx"]


def test_every_series_follows_the_naming_conventions() -> None:
    names = [m.name for m in REGISTRY.collect() if m.name.startswith("worldfeed_")]
    assert names, "no worldfeed series registered"
    for family in REGISTRY.collect():
        if not family.name.startswith("worldfeed_"):
            continue
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_messages")), family.name
        if family.type == "counter":  # the client adds _total to the samples
            assert all(s.name.endswith("_total") for s in family.samples)
