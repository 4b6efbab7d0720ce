"""``worldfeed top``: a terminal view of the pipeline, from the processes' ``/metrics``.

Scrapes every target (the API's ``/metrics`` and each worker's), adds their series up,
and prints a compact table: ticks/s and tick times, messages/s per stage, consumer lag,
LLM latency, tokens and cache hit rate, the dead letters, the sink and the API's
latency. Rates and means are over the last interval (two scrapes ``--interval`` apart),
so ``--once`` scrapes twice. The same numbers as the Grafana dashboard, without Docker.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from worldfeed.settings import Settings

UP_WORKER_METRICS_PORT = 9464  # the worker's /metrics port that `worldfeed up` picks first
CLEAR = "\x1b[H\x1b[2J"

Labels = tuple[tuple[str, str], ...]
Series = dict[tuple[str, Labels], float]  # (sample name, sorted labels) -> value
MAXED = ("worldfeed_last_completed_tick",)  # gauges not added up over targets


@dataclass
class Scrape:
    """The series of every target, added up, at one time; ``down`` lists failed targets."""

    at: float
    series: Series = field(default_factory=dict)
    down: list[str] = field(default_factory=list)

    def total(self, name: str, **match: str) -> float:
        """Sum of the samples ``name`` whose labels include ``match``."""
        return sum(v for (n, labels), v in self.series.items() if n == name and _has(labels, match))

    def by(self, name: str, *keys: str, **match: str) -> dict[tuple[str, ...], float]:
        """Sums of ``name`` grouped by the values of the labels ``keys``."""
        out: dict[tuple[str, ...], float] = defaultdict(float)
        for (n, labels), v in self.series.items():
            if n == name and _has(labels, match):
                d = dict(labels)
                out[tuple(d.get(k, "") for k in keys)] += v
        return dict(out)


def _has(labels: Labels, match: Mapping[str, str]) -> bool:
    d = dict(labels)
    return all(d.get(k) == v for k, v in match.items())


def parse(text: str) -> Series:
    """The samples of a Prometheus text page (worldfeed's series only)."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("worldfeed_"):
            continue
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def merge(pages: Iterable[Series]) -> Series:
    """Targets' series added up (the workers of one role share series names)."""
    out: Series = {}
    for page in pages:
        for key, value in page.items():
            if key[0] in MAXED:
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0.0) + value
    return out


def fetch(url: str, timeout_s: float = 2.0) -> str:
    """One target's page."""
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - the user's URL
        body: bytes = resp.read()
    return body.decode("utf-8", "replace")


def scrape(targets: list[str], get: Callable[[str], str] = fetch) -> Scrape:
    """Every target's series, added up; the ones that did not answer are listed as down."""
    pages, down = [], []
    for url in targets:
        try:
            pages.append(parse(get(url)))
        except (OSError, ValueError):
            down.append(url)
    return Scrape(time.monotonic(), merge(pages), down)


def _rate(a: Scrape, b: Scrape, name: str, **match: str) -> float:
    dt = b.at - a.at
    return max(0.0, b.total(name, **match) - a.total(name, **match)) / dt if dt > 0 else 0.0


def _mean(a: Scrape, b: Scrape, hist: str, **match: str) -> float | None:
    """Mean of a histogram's observations between the two scrapes (None: none)."""
    n = b.total(f"{hist}_count", **match) - a.total(f"{hist}_count", **match)
    if n <= 0:
        return None
    return (b.total(f"{hist}_sum", **match) - a.total(f"{hist}_sum", **match)) / n


def quantile(a: Scrape, b: Scrape, hist: str, q: float, **match: str) -> float | None:
    """The ``q`` quantile of a histogram's observations between the scrapes (the upper
    bound of the bucket it falls in, as Prometheus' histogram_quantile without the
    interpolation); None when nothing was observed."""
    after = b.by(f"{hist}_bucket", "le", **match)
    before = a.by(f"{hist}_bucket", "le", **match)
    buckets = sorted(
        ((float(le[0]), after[le] - before.get(le, 0.0)) for le in after),
        key=lambda x: x[0],
    )
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= rank:
            return bound
    return math.inf


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return ">max"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def table(a: Scrape, b: Scrape) -> list[str]:
    """The view: one line per subject, rates and means over the interval from a to b."""
    lines = []
    last = b.series.get(("worldfeed_last_completed_tick", ()))
    lines.append(
        f"ticks      {_rate(a, b, 'worldfeed_ticks_completed_total'):6.2f}/s  "
        f"last {'-' if last is None else int(last)}  "
        f"shard tick mean {_ms(_mean(a, b, 'worldfeed_tick_duration_seconds'))}  "
        f"barrier wait mean {_ms(_mean(a, b, 'worldfeed_barrier_wait_seconds'))}"
    )
    stages = sorted(k[0] for k in b.by("worldfeed_stage_messages_total", "stage"))
    rates = "  ".join(
        f"{s} {_rate(a, b, 'worldfeed_stage_messages_total', stage=s):.0f}" for s in stages
    )
    lines.append(f"messages/s {rates or '-'}")
    lag = b.by("worldfeed_consumer_lag_messages", "group", "topic")
    if lag:
        worst = sorted(((k, n) for k, n in lag.items() if n > 0), key=lambda kv: -kv[1])[:4]
        text = "  ".join(f"{topic} ({group}) {n:.0f}" for (group, topic), n in worst)
        lines.append(f"lag        total {sum(lag.values()):.0f}  {text}".rstrip())
    else:
        lines.append("lag        -")
    for stage in sorted(k[0] for k in b.by("worldfeed_llm_calls_total", "stage")):
        hits = b.total("worldfeed_llm_cache_lookups_total", stage=stage, result="hit")
        lookups = b.total("worldfeed_llm_cache_lookups_total", stage=stage)
        tokens = _rate(a, b, "worldfeed_llm_tokens_total", stage=stage)
        lat = "worldfeed_llm_latency_seconds"
        lines.append(
            f"llm {stage:<10} {_rate(a, b, 'worldfeed_llm_calls_total', stage=stage):5.1f} "
            f"calls/s  mean {_ms(_mean(a, b, lat, stage=stage))}  "
            f"p99 {_ms(quantile(a, b, lat, 0.99, stage=stage))}  {tokens:.0f} tokens/s  "
            f"cache hits {100 * hits / lookups if lookups else 0:.0f}%  "
            f"queue {b.total('worldfeed_llm_budget_queue', stage=stage):.0f}  "
            f"errors {b.total('worldfeed_llm_errors_total', stage=stage):.0f}"
        )
    dlq = b.by("worldfeed_dead_letters_total", "stage", "reason")
    text = "  ".join(f"{s}/{r} {n:.0f}" for (s, r), n in sorted(dlq.items()) if n)
    lines.append(f"dead       {text or 'none'}")
    rows = _rate(a, b, "worldfeed_sink_rows_total")
    lines.append(
        f"sink       {rows:.0f} rows/s  batch mean "
        f"{_mean(a, b, 'worldfeed_sink_batch_messages') or 0:.0f} msgs  insert mean "
        f"{_ms(_mean(a, b, 'worldfeed_sink_insert_seconds'))}"
    )
    api = "worldfeed_api_request_duration_seconds"
    lines.append(
        f"api        {_rate(a, b, f'{api}_count'):.1f} req/s  mean {_ms(_mean(a, b, api))}  "
        f"p99 {_ms(quantile(a, b, api, 0.99))}  /feed p99 "
        f"{_ms(quantile(a, b, api, 0.99, route='/feed'))}"
    )
    if b.down:
        lines.append(f"down       {', '.join(b.down)}")
    return lines


def default_targets(settings: Settings) -> list[str]:
    """The API's /metrics and the worker's (its port, or the one `worldfeed up` picks)."""
    worker_port = settings.metrics_port or UP_WORKER_METRICS_PORT
    return [
        f"http://{settings.api_host}:{settings.api_port}/metrics",
        f"http://{settings.metrics_host}:{worker_port}/metrics",
    ]


def cmd_top(settings: Settings, targets: list[str] | None, interval_s: float, once: bool) -> int:
    """Print the table once (``once``) or refresh it every ``interval_s`` until Ctrl-C."""
    targets = targets or default_targets(settings)
    interval_s = max(0.2, interval_s)
    before = scrape(targets)
    try:
        while True:
            time.sleep(interval_s)
            now = scrape(targets)
            lines = table(before, now)
            if once:
                print("\n".join(lines))
                return 0 if len(now.down) < len(targets) else 1
            print(CLEAR + f"worldfeed top  {time.strftime('%H:%M:%S')}  {len(targets)} targets")
            print("\n".join(lines), flush=True)
            before = now
    except KeyboardInterrupt:
        return 0
