"""The metrics endpoints of a real worker and the API while a run plays on a real broker.

A worker (clock, world, impact; two shards) serves /metrics on its own port, the API
(with the embedded sink) on its own routes. After a short run the tick, barrier and
stage counters have advanced on the worker, the sink's on the API, the consumer lag
of both processes' groups is reported, and ``worldfeed top --once`` reads both.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest

from cli.top import parse
from streams.worker import app_id_for
from tests.fixtures.kafka import free_port
from tests.fixtures.processes import EXE, Procs, env_for, read_until, start_run, wait_http
from topics import TICKS
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_TICKS = 12
NAMED = (  # the series the issue names, on every process's page
    "worldfeed_tick_duration_seconds",
    "worldfeed_barrier_wait_seconds",
    "worldfeed_stage_messages_total",
    "worldfeed_consumer_lag_messages",
    "worldfeed_llm_latency_seconds",
    "worldfeed_llm_tokens_total",
    "worldfeed_llm_cache_lookups_total",
    "worldfeed_llm_budget_queue",
    "worldfeed_dead_letters_total",
    "worldfeed_sink_batch_messages",
    "worldfeed_sink_insert_seconds",
    "worldfeed_api_request_duration_seconds",
)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        body: bytes = resp.read()
    return body.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in parse(text).items() if n == name and want <= set(ls))


def wait_for(url: str, check: Callable[[str], bool], timeout_s: float, procs: Procs) -> str:
    """Scrape ``url`` until ``check(page)``; returns that page."""
    deadline = time.monotonic() + timeout_s
    while True:
        procs.assert_alive()
        text = page(url)
        if check(text):
            return text
        assert time.monotonic() < deadline, f"{url} never passed the check:\n{text[-3000:]}"
        time.sleep(0.5)


async def test_worker_and_api_metrics_advance_during_a_run(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    settings = settings_factory(world_partitions=2, metrics_port=free_port(), api_port=free_port())
    roles = "clock,world,impact"
    procs.worker("worker", settings, roles)
    procs.start("api", settings, "api")
    worker = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    api = f"http://127.0.0.1:{settings.api_port}"
    wait_http(worker, 90, procs)
    wait_http(f"{api}/health", 90, procs)

    before = page(worker)
    for name in NAMED:
        assert f"# TYPE {name} " in before, name
    assert sample(before, "worldfeed_ticks_completed_total") == 0

    days = N_TICKS * settings.step_minutes / 1440
    await start_run(settings, "metrics-run", seed=3, days=days, start_minute=7 * 60)  # busy hours
    await read_until(settings, TICKS, lambda m: any(t.last for t in m), 180)

    group = app_id_for(settings, roles.split(","))
    after = wait_for(
        worker,  # the lag is measured every 2 s, once the consumer holds its partitions
        lambda t: f'group="{group}"' in t,
        30,
        procs,
    )
    # each shard made its NPCs' seed states once its assignment had held
    wait_for(
        worker,
        lambda t: [sample(t, "worldfeed_shard_seeds_ready", shard=s) for s in "01"] == [1, 1],
        30,
        procs,
    )
    assert sample(after, "worldfeed_ticks_completed_total") >= N_TICKS
    assert sample(after, "worldfeed_last_completed_tick") == N_TICKS - 1
    for shard in ("0", "1"):
        done = sample(after, "worldfeed_tick_duration_seconds_count", shard=shard)
        assert done >= N_TICKS, f"shard {shard} timed {done} ticks"
        assert sample(after, "worldfeed_barrier_wait_seconds_count", shard=shard) >= N_TICKS
        assert sample(after, "worldfeed_tick_duration_seconds_sum", shard=shard) > 0
    for stage in ("clock", "world", "impact"):
        handled = sample(after, "worldfeed_stage_messages_total", stage=stage)
        assert handled > sample(before, "worldfeed_stage_messages_total", stage=stage), stage
    assert sample(after, "worldfeed_stage_messages_total", stage="clock") >= 2 * N_TICKS
    assert "process_resident_memory_bytes" in after

    # the API's page: its embedded sink stored the run, and its own requests are timed
    sink_group = f"{app_id_for(settings, ['sink'])}-sink"
    stored = wait_for(
        f"{api}/metrics",
        lambda t: (
            sample(t, "worldfeed_sink_rows_total", table="ticks") >= N_TICKS
            and f'group="{sink_group}"' in t
        ),
        60,
        procs,
    )
    assert sample(stored, "worldfeed_stage_messages_total", stage="sink") >= N_TICKS
    assert sample(stored, "worldfeed_sink_insert_seconds_count") >= 1
    assert sample(stored, "worldfeed_sink_batch_messages_sum") >= N_TICKS
    assert page(f"{api}/feed?channel=feed&run_id=metrics-run")
    timed = page(f"{api}/metrics")
    assert sample(timed, "worldfeed_api_request_duration_seconds_count", route="/feed") >= 1
    for name in NAMED:
        assert f"# TYPE {name} " in timed, name
    health = wait_for(f"{api}/health", lambda t: f'"last_tick":{N_TICKS - 1}' in t, 30, procs)
    assert sink_group in health, health

    top = subprocess.run(
        [
            EXE,
            "top",
            "--once",
            "--interval",
            "0.5",
            "--target",
            worker,
            "--target",
            f"{api}/metrics",
        ],
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert top.returncode == 0, top.stdout + top.stderr
    print(f"\nworldfeed top --once after the run:\n{top.stdout}")
    assert f"last {N_TICKS - 1}" in top.stdout and "down" not in top.stdout, top.stdout


async def test_a_render_worker_exports_its_llm_series(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str
) -> None:
    settings = settings_factory(triton_grpc_url=triton_url, metrics_port=free_port())
    procs.worker("worker", settings, "clock,world,impact,render")
    worker = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    wait_http(worker, 90, procs)
    days = 4 * settings.step_minutes / 1440
    await start_run(settings, "llm-metrics", seed=5, days=days, start_minute=7 * 60)

    def answered(text: str) -> bool:
        return sample(text, "worldfeed_llm_latency_seconds_count", stage="render") >= 1

    text = wait_for(worker, answered, 240, procs)  # the first post from the model
    assert sample(text, "worldfeed_stage_messages_total", stage="render") >= 1
    assert sample(text, "worldfeed_llm_calls_total", stage="render") >= 1
    assert sample(text, "worldfeed_llm_latency_seconds_sum", stage="render") > 0
    assert sample(text, "worldfeed_llm_tokens_total", stage="render", direction="prompt") > 0
    assert sample(text, "worldfeed_llm_tokens_total", stage="render", direction="output") > 0
    assert sample(text, "worldfeed_llm_cache_lookups_total", stage="render", result="miss") >= 1
    assert 'worldfeed_llm_budget_queue{stage="render"}' in text
