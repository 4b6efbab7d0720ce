"""``worldfeed top``'s arithmetic: parse, add targets up, rates and means over an interval."""

from __future__ import annotations

import math

from cli.top import Scrape, default_targets, merge, parse, quantile, scrape, table
from worldfeed.settings import Settings

PAGE_A = """
# TYPE worldfeed_ticks_completed_total counter
worldfeed_ticks_completed_total 10
# TYPE worldfeed_last_completed_tick gauge
worldfeed_last_completed_tick 9
# TYPE worldfeed_stage_messages_total counter
worldfeed_stage_messages_total{stage="world"} 100
worldfeed_stage_messages_total{stage="impact"} 1000
# TYPE worldfeed_consumer_lag_messages gauge
worldfeed_consumer_lag_messages{group="g",topic="wf.events"} 5
# TYPE worldfeed_tick_duration_seconds histogram
worldfeed_tick_duration_seconds_bucket{shard="0",le="0.1"} 5
worldfeed_tick_duration_seconds_bucket{shard="0",le="1.0"} 10
worldfeed_tick_duration_seconds_bucket{shard="0",le="+Inf"} 10
worldfeed_tick_duration_seconds_count{shard="0"} 10
worldfeed_tick_duration_seconds_sum{shard="0"} 2.0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 3
"""

PAGE_B = """
# TYPE worldfeed_ticks_completed_total counter
worldfeed_ticks_completed_total 30
# TYPE worldfeed_last_completed_tick gauge
worldfeed_last_completed_tick 29
# TYPE worldfeed_stage_messages_total counter
worldfeed_stage_messages_total{stage="world"} 300
worldfeed_stage_messages_total{stage="impact"} 5000
# TYPE worldfeed_consumer_lag_messages gauge
worldfeed_consumer_lag_messages{group="g",topic="wf.events"} 40
worldfeed_consumer_lag_messages{group="g",topic="wf.ticks"} 0
# TYPE worldfeed_tick_duration_seconds histogram
worldfeed_tick_duration_seconds_bucket{shard="0",le="0.1"} 5
worldfeed_tick_duration_seconds_bucket{shard="0",le="1.0"} 30
worldfeed_tick_duration_seconds_bucket{shard="0",le="+Inf"} 30
worldfeed_tick_duration_seconds_count{shard="0"} 30
worldfeed_tick_duration_seconds_sum{shard="0"} 12.0
# TYPE worldfeed_dead_letters_total counter
worldfeed_dead_letters_total{stage="impact",reason="decode"} 2
"""


def test_parse_keeps_worldfeed_series_only() -> None:
    series = parse(PAGE_A)
    assert series[("worldfeed_ticks_completed_total", ())] == 10
    assert series[("worldfeed_stage_messages_total", (("stage", "world"),))] == 100
    assert not any(name.startswith("process_") for name, _ in series)


def test_merge_adds_targets_up_but_takes_the_latest_tick() -> None:
    merged = merge([parse(PAGE_A), parse(PAGE_B)])
    assert merged[("worldfeed_ticks_completed_total", ())] == 40
    assert merged[("worldfeed_last_completed_tick", ())] == 29


def test_table_rates_and_means_over_the_interval() -> None:
    a = Scrape(0.0, parse(PAGE_A))
    b = Scrape(2.0, parse(PAGE_B), down=["http://x/metrics"])
    text = "\n".join(table(a, b))
    assert "10.00/s  last 29" in text  # (30 - 10) ticks / 2 s
    assert "shard tick mean 500 ms" in text  # (12 - 2) s / (30 - 10) ticks
    assert "world 100" in text and "impact 2000" in text
    assert "lag        total 40  wf.events (g) 40\n" in text  # topics behind only
    assert "impact/decode 2" in text
    assert "down       http://x/metrics" in text


def test_quantile_is_the_bucket_bound_of_the_rank() -> None:
    a = Scrape(0.0, parse(PAGE_A))
    b = Scrape(2.0, parse(PAGE_B))
    assert quantile(a, b, "worldfeed_tick_duration_seconds", 0.99) == 1.0
    assert quantile(a, a, "worldfeed_tick_duration_seconds", 0.99) is None
    page = PAGE_B.replace('le="1.0"} 30', 'le="1.0"} 5')
    assert quantile(a, Scrape(2.0, parse(page)), "worldfeed_tick_duration_seconds", 0.99) == (
        math.inf
    )


def test_scrape_lists_targets_that_do_not_answer() -> None:
    def get(url: str) -> str:
        if "down" in url:
            raise OSError("connection refused")
        return PAGE_A

    got = scrape(["http://up/metrics", "http://down/metrics"], get)
    assert got.down == ["http://down/metrics"]
    assert got.series[("worldfeed_ticks_completed_total", ())] == 10


def test_default_targets_are_the_api_and_the_worker_of_the_settings() -> None:
    settings = Settings(api_port=8100, metrics_port=9500)
    assert default_targets(settings) == [
        "http://127.0.0.1:8100/metrics",
        "http://127.0.0.1:9500/metrics",
    ]
    assert default_targets(Settings())[1].endswith(":9464/metrics")
