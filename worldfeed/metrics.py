"""The Prometheus series of every worldfeed process, on one registry per process.

Each process (a worker of some roles, the API) exposes :data:`REGISTRY` at ``/metrics``:
a worker on its own port (:func:`serve`, ``WORLDFEED_METRICS_PORT``), the API on its
own routes. A dedicated registry rather than ``prometheus_client``'s global one: what a
library registers there does not leak into the page, and the page holds this catalog
plus the process's CPU, memory and GC.

Label values are bounded: stage names, shard numbers (at most the partitions), topic
and consumer group names, route templates, and dead-letter *reason classes*
(:func:`reason_class`), never the free text of a reason or a raw path. Rates (events/s,
ticks/s) are ``rate()`` over the ``*_total`` counters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: a shorter page
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STAGES = ("clock", "world", "impact", "render", "deliberate", "sink")
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FAST_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# the tick barrier, per world shard (streams/world.py)
TICK_SECONDS = Histogram(
    "worldfeed_tick_duration_seconds",
    "Wall time of a shard's tick: from its TickStarted to its report to the clock.",
    ["shard"],
    buckets=SECONDS,
    registry=REGISTRY,
)
BARRIER_WAIT_SECONDS = Histogram(
    "worldfeed_barrier_wait_seconds",
    "Time a shard waited at the tick barrier: from sending its effect batches to holding "
    "every shard's batches.",
    ["shard"],
    buckets=SECONDS,
    registry=REGISTRY,
)
SHARD_SEEDS_READY = Gauge(
    "worldfeed_shard_seeds_ready",
    "1 once a world shard assigned to this worker has made its NPCs' seed states (a run's "
    "first tick then copies them), 0 while it makes them.",
    ["shard"],
    registry=REGISTRY,
)
# the clock (streams/clock.py)
TICKS_COMPLETED = Counter(
    "worldfeed_ticks_completed_total",
    "Ticks the clock completed (every shard reported), over all runs.",
    registry=REGISTRY,
)
LAST_TICK = Gauge(
    "worldfeed_last_completed_tick",
    "The last tick the clock completed (of the run that completed one last).",
    registry=REGISTRY,
)
# every stage
STAGE_MESSAGES = Counter(
    "worldfeed_stage_messages_total",
    "Messages a stage took from its input topics (rate() = events/s per stage).",
    ["stage"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "worldfeed_dead_letters_total",
    "Messages a stage sent to the DLQ, by reason class (reason_class()).",
    ["stage", "reason"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "worldfeed_consumer_lag_messages",
    "Messages not yet fetched by this process's consumer (highwater - position), summed "
    "over the partitions it holds.",
    ["topic", "group"],
    registry=REGISTRY,
)
# the LLM (llm/complete.py counts; streams/render.py wires a stage's counts here)
LLM_LATENCY = Histogram(
    "worldfeed_llm_latency_seconds",
    "Latency of one LLM completion (cache hits excluded).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0),
    registry=REGISTRY,
)
LLM_CALLS = Counter(
    "worldfeed_llm_calls_total", "LLM completions asked for.", ["stage"], registry=REGISTRY
)
LLM_ERRORS = Counter(
    "worldfeed_llm_errors_total", "LLM completions that failed.", ["stage"], registry=REGISTRY
)
LLM_TOKENS = Counter(
    "worldfeed_llm_tokens_total",
    "Tokens of LLM completions (direction: prompt or output).",
    ["stage", "direction"],
    registry=REGISTRY,
)
LLM_CACHE = Counter(
    "worldfeed_llm_cache_lookups_total",
    "Completion cache lookups (result: hit or miss); hit rate = hit / all.",
    ["stage", "result"],
    registry=REGISTRY,
)
LLM_BUDGET_QUEUE = Gauge(
    "worldfeed_llm_budget_queue",
    "Requests waiting for the LLM budget (llm/gate.py).",
    ["stage"],
    registry=REGISTRY,
)
LLM_IN_FLIGHT = Gauge(
    "worldfeed_llm_in_flight", "LLM calls admitted by the budget.", ["stage"], registry=REGISTRY
)
# the sink (streams/sink.py)
SINK_BATCH_MESSAGES = Histogram(
    "worldfeed_sink_batch_messages",
    "Messages in one sink batch (one insert per table).",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000),
    registry=REGISTRY,
)
SINK_INSERT_SECONDS = Histogram(
    "worldfeed_sink_insert_seconds",
    "Time to insert one sink batch into ClickHouse (the successful try).",
    buckets=FAST_SECONDS + (10.0, 30.0),
    registry=REGISTRY,
)
SINK_ROWS = Counter(
    "worldfeed_sink_rows_total", "Rows the sink stored, by table.", ["table"], registry=REGISTRY
)
SINK_LAST_TICK = Gauge(
    "worldfeed_sink_last_tick",
    "The tick of the last completed tick the sink stored (of the run it stored one of last).",
    registry=REGISTRY,
)
# the API (api/metrics.py)
API_REQUEST_SECONDS = Histogram(
    "worldfeed_api_request_duration_seconds",
    "API request latency by route template (not the raw path), method and status class.",
    ["route", "method", "status"],
    buckets=FAST_SECONDS,
    registry=REGISTRY,
)

# CallCounts names (llm/complete.py) -> what they count here
_LLM_COUNTS: dict[str, Callable[[str, float], None]] = {
    "llm_calls": lambda stage, n: LLM_CALLS.labels(stage).inc(n),
    "llm_errors": lambda stage, n: LLM_ERRORS.labels(stage).inc(n),
    "tokens_in": lambda stage, n: LLM_TOKENS.labels(stage, "prompt").inc(n),
    "tokens_out": lambda stage, n: LLM_TOKENS.labels(stage, "output").inc(n),
    "cache_hits": lambda stage, n: LLM_CACHE.labels(stage, "hit").inc(n),
    "cache_misses": lambda stage, n: LLM_CACHE.labels(stage, "miss").inc(n),
    "latency_s": lambda stage, s: LLM_LATENCY.labels(stage).observe(s),
}


def llm_observer(stage: str) -> Callable[[str, float], None]:
    """An observer for :class:`llm.complete.CallCounts`: what a stage's LLM loop counts
    (calls, errors, tokens, cache hits and misses, latency) becomes its series here;
    the other counts (the render service's) are ignored."""

    def observe(name: str, value: float) -> None:
        record = _LLM_COUNTS.get(name)
        if record is not None:
            record(stage, value)

    return observe


def watch_llm_gate(stage: str, gate: Any) -> None:
    """Report a stage's :class:`llm.gate.LLMGate` queue and in-flight calls at each scrape."""
    LLM_BUDGET_QUEUE.labels(stage).set_function(lambda: gate.waiting)
    LLM_IN_FLIGHT.labels(stage).set_function(lambda: gate.in_use)


# dead-letter reasons (free text) -> a bounded class; first match wins
_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("decode", re.compile(r"^[\w.-]+: (empty message|not JSON|invalid message)")),
    ("not_storable", re.compile(r"^not storable")),
    ("wrong_shard", re.compile(r"^message for shard \d+ on partition")),
    ("no_impact", re.compile(r"^event has no base impact")),
    ("unknown_world", re.compile(r"^world '")),
    ("llm_fallback", re.compile(r"^fell back to template")),
    ("over_budget", re.compile(r"^dropped: LLM budget")),
    ("rate_limited", re.compile(r"^rate limited")),
    ("unknown_name", re.compile(r"^KeyError: ")),
    ("exception", re.compile(r"^[A-Z]\w*(Error|Exception|Failure|Timeout)\w*: ")),
)
REASON_CLASSES = (*(name for name, _ in _REASONS), "other")


def reason_class(reason: str) -> str:
    """The class of a dead letter's reason, one of :data:`REASON_CLASSES`."""
    for name, pattern in _REASONS:
        if pattern.match(reason):
            return name
    return "other"


def dead_lettered(stage: str, reason: str) -> None:
    """Count one dead letter of ``stage``."""
    DEAD_LETTERS.labels(stage, reason_class(reason)).inc()


def status_class(status: int) -> str:
    """``200`` -> ``2xx``: the status label of the API's latency."""
    return f"{status // 100}xx"


def current_lag() -> dict[str, dict[str, int]]:
    """What :data:`CONSUMER_LAG` holds in this process: group -> topic -> messages."""
    out: dict[str, dict[str, int]] = {}
    for family in CONSUMER_LAG.collect():
        for sample in family.samples:
            group = out.setdefault(sample.labels["group"], {})
            group[sample.labels["topic"]] = int(sample.value)
    return out


def last_completed_tick() -> int | None:
    """The last completed tick this process knows: its clock's, else the one its sink
    stored last; None if neither (``/health`` reports it)."""
    if REGISTRY.get_sample_value("worldfeed_ticks_completed_total"):
        return int(REGISTRY.get_sample_value("worldfeed_last_completed_tick") or 0)
    if REGISTRY.get_sample_value("worldfeed_sink_rows_total", {"table": "ticks"}):
        return int(REGISTRY.get_sample_value("worldfeed_sink_last_tick") or 0)
    return None


def exposition() -> bytes:
    """The registry in the Prometheus text format (the body of ``GET /metrics``)."""
    return generate_latest(REGISTRY)


def serve(host: str, port: int) -> Any:
    """Serve ``/metrics`` of this process on ``host:port`` in a daemon thread; returns the
    server (``shutdown()`` stops it). ``port`` 0 would pick any: callers pass theirs."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server


class TickTimer:
    """Times the ticks of world shards for :data:`TICK_SECONDS` and
    :data:`BARRIER_WAIT_SECONDS` (no I/O: the shell passes the clock's readings).

    Per run, shard and tick: :meth:`started` when the shard gets the tick, :meth:`sent`
    once it has sent its effect batches, :meth:`done` when the barrier let it finish the
    tick (``barrier_at``: when the message that completed the barrier came in). Only
    the first reading of each counts (a tick re-sent by the clock's watchdog changes
    nothing), and a finished tick drops every older one of its shard.
    """

    def __init__(self) -> None:
        self._started: dict[tuple[str, int, int], float] = {}
        self._sent: dict[tuple[str, int, int], float] = {}

    def __len__(self) -> int:
        return len(self._started)

    def started(self, run_id: str, shard: int, tick: int, now: float) -> None:
        """The shard got the tick."""
        self._started.setdefault((run_id, shard, tick), now)

    def sent(self, run_id: str, shard: int, tick: int, now: float) -> None:
        """The shard decided the tick and sent its batches (ignored if it was not started)."""
        key = (run_id, shard, tick)
        if key in self._started:
            self._sent.setdefault(key, now)

    def done(self, run_id: str, shard: int, tick: int, barrier_at: float, now: float) -> None:
        """The shard finished the tick: observe its duration and barrier wait."""
        key = (run_id, shard, tick)
        start = self._started.get(key)
        sent = self._sent.get(key)
        if start is not None:
            TICK_SECONDS.labels(str(shard)).observe(max(0.0, now - start))
        if sent is not None:
            BARRIER_WAIT_SECONDS.labels(str(shard)).observe(max(0.0, barrier_at - sent))
        for timings in (self._started, self._sent):
            for old in [k for k in timings if k[:2] == key[:2] and k[2] <= tick]:
                del timings[old]

    def forget(self) -> None:
        """Drop every timing (the shards were revoked)."""
        self._started.clear()
        self._sent.clear()
