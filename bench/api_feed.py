"""Feed API latency at 200 requests/s over 10M stored posts while 5,000 posts/s arrive
(``make bench-api``).

1. A loader subprocess inserts the posts into an embedded chDB database and measures the
   baseline: the same feed queries called in-process through the storage client.
2. The API runs in a uvicorn subprocess on loopback over that database, as ``worldfeed
   api`` runs it: with the embedded sink, which stores what arrives on the posts topic
   and feeds the in-memory timelines (api/timeline.py). chDB allows one engine per
   process, so the loader has exited by then. A broker is started unless
   ``WORLDFEED_KAFKA_BOOTSTRAP`` names one.
3. An ingest subprocess produces new posts to the posts topic at ``--ingest`` posts/s
   (newest ticks of both runs, as a live run writes them) while
4. this process fires requests at ``/feed`` open-loop (a request every 1/rate s, whatever
   the previous ones are doing; latency counts from the planned send time), with varied
   filters, bounded by count and time; then prints p50/p90/p99/max, errors, how pages
   were served, the ratio to the baseline, and whether the sink kept up.

    .venv/bin/python -m bench.api_feed [--posts 10000000] [--rate 200] [--seconds 20]
        [--ingest 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from bench.world import broker, memory_mib

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench"
RUNS = ("run_a", "run_b")
AUTHORS = 2000
TARGET_P99_MS = 50.0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(lat_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(lat_ms),
        "p50": _pct(lat_ms, 0.50),
        "p90": _pct(lat_ms, 0.90),
        "p99": _pct(lat_ms, 0.99),
        "max": max(lat_ms),
        "mean": statistics.fmean(lat_ms),
    }


TABS = (None, "feed", "chat", "news")  # the UI's tabs: all channels, then one each
SCROLL_PAGES = 5  # tab pages 2..SCROLL_PAGES reached by following next_cursor


def deep_cursor(rng: random.Random, max_tick: int) -> tuple[str, str]:
    """A cursor at a random real post: a reader far down a run's feed (a cache miss)."""
    from storage.queries import encode_cursor

    r = rng.randrange(len(RUNS))
    tick = rng.randrange(1, max_tick)
    i = tick * 50 + rng.randrange(50)  # the loader's post i is at tick i // 50
    return RUNS[r], encode_cursor("feed", tick, f"po_{r}_{i:012x}")


def filters(
    rng: random.Random, max_tick: int, scroll: dict[str, list[str]]
) -> tuple[str, dict[str, Any]]:
    """One request's (kind, filters): a mix of what readers of the feed ask for.

    - 40 % ``tab``: the first page of a run's tab (all, feed, chat, news): 8 pages that
      every reader opens, the case a cache helps most;
    - 10 % ``scroll``: pages 2-5 of such a tab (the cursors readers get by scrolling);
    - 10 % ``deep``: a page behind a random cursor far down a run's feed;
    - 15 % ``author``: an NPC's posts in a run (2 x 2000 authors);
    - 15 % ``ticks``: a random tick range of a run;
    - 10 % ``channel``: a channel across runs.

    The last four rarely repeat within a second: about half the requests need a query.
    """
    x = rng.random()
    params: dict[str, Any] = {"limit": 50}
    run_id = rng.choice(RUNS)
    if x < 0.40:
        kind = "tab"
        params["run_id"] = run_id
        tab = rng.choice(TABS)
        if tab:
            params["channel"] = tab
    elif x < 0.50:
        kind = "scroll"
        tab = rng.choice(TABS)
        params["run_id"] = run_id
        if tab:
            params["channel"] = tab
        params["cursor"] = rng.choice(scroll[f"{run_id}/{tab or ''}"])
    elif x < 0.60:
        kind = "deep"
        params["run_id"], params["cursor"] = deep_cursor(rng, max_tick)
    elif x < 0.75:
        kind = "author"
        params.update(run_id=run_id, author=f"npc_{rng.randrange(AUTHORS):05d}")
    elif x < 0.90:
        kind = "ticks"
        lo = rng.randrange(max_tick)
        params.update(run_id=run_id, tick_from=lo, tick_to=lo + rng.randrange(1, 200))
    else:
        kind = "channel"
        params.update(channel=rng.choice(("feed", "chat", "news")))
    return kind, params


# ---- loader subprocess -------------------------------------------------------------------


def load(path: str, n_posts: int) -> None:
    """Insert ``n_posts`` posts, then time the feed queries in-process; print JSON."""
    from storage import ClickHouseWriter, connect, migrate, queries

    client = connect(f"chdb://{path}")
    migrate(client, DATABASE)
    writer = ClickHouseWriter(client, DATABASE, batch_size=100_000)
    per_run = n_posts // len(RUNS)
    max_tick = per_run // 50  # ~50 posts per tick
    t0 = time.perf_counter()
    for r, run_id in enumerate(RUNS):
        for start in range(0, per_run, 100_000):
            rows = [
                {
                    "post_id": f"po_{r}_{i:012x}",
                    "request_id": f"rq_{r}_{i:012x}",
                    "run_id": run_id,
                    "event_id": f"ev_{r}_{i // 3:012x}",
                    "channel": ("feed", "chat", "news")[i % 3],
                    "author": f"npc_{(i * 7919) % AUTHORS:05d}",
                    "tick": i // 50,
                    "sim_minute": i // 50 * 15,
                    "title": f"Headline {i}" if i % 3 == 2 else None,
                    "body": f"Post number {i} of {run_id}: something happened at the market.",
                    "source": "llm",
                    "moderation": "published",
                    "moderation_reason": None,
                    "score": 0.5,
                    "model": "smollm2",
                    "tokens_in": 200,
                    "tokens_out": 30,
                    "latency_ms": 400.0,
                }
                for i in range(start, min(per_run, start + 100_000))
            ]
            writer.write("posts", rows)
    load_s = time.perf_counter() - t0
    total = int(client.command(f"SELECT count() FROM {DATABASE}.posts"))  # noqa: S608 - constant name
    scroll: dict[str, list[str]] = {}
    for run_id in RUNS:
        for tab in TABS:
            cursors, cursor = [], None
            for _ in range(SCROLL_PAGES - 1):
                page = queries.feed(client, DATABASE, run_id=run_id, channel=tab, cursor=cursor)
                cursor = page.next_cursor
                cursors.append(cursor)
            scroll[f"{run_id}/{tab or ''}"] = cursors
    rng = random.Random(7)
    lat: dict[str, list[float]] = {}
    for _ in range(400):
        kind, params = filters(rng, max_tick, scroll)
        t = time.perf_counter()
        queries.feed(client, DATABASE, **params)
        lat.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
    everything = [x for values in lat.values() for x in values]
    print(
        json.dumps(
            {
                "posts": total,
                "load_s": load_s,
                "max_tick": max_tick,
                "scroll": scroll,
                "baseline": _summary(everything),
                "baseline_kinds": {k: _summary(v) for k, v in sorted(lat.items())},
            }
        )
    )


def bench_settings(path: str, bootstrap: str, tag: str) -> Any:
    from worldfeed.settings import Settings

    return Settings(
        env="test",
        clickhouse_dsn=f"chdb://{path}?database={DATABASE}",
        kafka_bootstrap=bootstrap,
        topic_prefix=f"benchapi{tag}.",
        app_id=f"benchapi-{tag}",
    )


def serve(path: str, port: int, cache_s: float, bootstrap: str, tag: str) -> None:
    """The API over the loaded database with its embedded sink, in uvicorn on loopback
    (the server under test), as ``worldfeed api`` runs it."""
    import uvicorn

    from cli.main import api_app

    app = api_app(bench_settings(path, bootstrap, tag), with_sink=True, feed_cache_s=cache_s)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def ingest(bootstrap: str, tag: str, rate: float, seconds: float, first_tick: int) -> None:
    """Produce ``rate`` new posts/s for ``seconds`` to the posts topic (both runs, newest
    ticks: 50 posts a tick per run); print JSON: posts sent, achieved rate, last ticks."""
    from aiokafka import AIOKafkaProducer

    from topics import POSTS
    from topics.codec import encode
    from topics.models import PostPublished

    settings = bench_settings("unused", bootstrap, tag)

    async def run() -> dict[str, Any]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        await producer.start()
        sent, t0 = 0, time.perf_counter()
        topic = settings.topic(POSTS.name)
        try:
            while (elapsed := time.perf_counter() - t0) < seconds:
                due = int(elapsed * rate) + 1
                while sent < due:
                    r = sent % len(RUNS)
                    i = first_tick * 50 + sent // len(RUNS)
                    post = PostPublished(
                        post_id=f"po_{r}_{i:012x}",
                        request_id=f"rq_{r}_{i:012x}",
                        run_id=RUNS[r],
                        event_id=f"ev_{r}_{i // 3:012x}",
                        channel=("feed", "chat", "news")[i % 3],
                        author=f"npc_{(i * 7919) % AUTHORS:05d}",
                        tick=i // 50,
                        sim_minute=i // 50 * 15,
                        title=f"Headline {i}" if i % 3 == 2 else None,
                        body=f"Live post {i} of {RUNS[r]}: something just happened.",
                        source="llm",
                        score=0.5,
                        model="smollm2",
                        tokens_in=200,
                        tokens_out=30,
                        latency_ms=400.0,
                    )
                    await producer.send(topic, encode(post), key=post.run_id.encode())
                    sent += 1
                await asyncio.sleep(0.01)
            await producer.flush()
        finally:
            await producer.stop()
        last = first_tick * 50 + (sent - 1) // len(RUNS)
        return {"sent": sent, "rate": sent / (time.perf_counter() - t0), "last_tick": last // 50}

    print(json.dumps(asyncio.run(run())), flush=True)


# ---- load generator ------------------------------------------------------------------------


async def fire(
    base: str, rate: float, seconds: float, max_tick: int, scroll: dict[str, list[str]]
) -> dict[str, Any]:
    """Open-loop requests at ``rate``/s for ``seconds``; latency from the planned send time.

    Request i is planned at ``start + i / rate`` whatever the earlier ones are doing, so
    a slow server's queue shows in the latencies (no coordinated omission). aiohttp, not
    httpx: the load generator shares the machine's two cores with the server, and
    aiohttp costs a fraction of httpx's CPU per request.
    """
    import aiohttp

    rng = random.Random(11)
    n = int(rate * seconds)
    lat: dict[str, list[float]] = {}
    outcomes: dict[str, int] = {}
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:
        # warm the connection pool and the engine (and, for a fair start, the cache)
        for _ in range(20):
            async with client.get("/feed", params=filters(rng, max_tick, scroll)[1]) as resp:
                await resp.read()

        async def one(planned: float, kind: str, params: dict[str, Any]) -> None:
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with client.get("/feed", params=params) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                        return
                    json.loads(body)
                    outcome = resp.headers.get("X-Cache", "none")
            except Exception as exc:  # noqa: BLE001 - count every failure kind
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            lat.setdefault(kind, []).append((time.perf_counter() - planned) * 1000)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        start = time.perf_counter() + 0.2
        plan = [filters(rng, max_tick, scroll) for _ in range(n)]
        tasks = [
            asyncio.create_task(one(start + i / rate, kind, params))
            for i, (kind, params) in enumerate(plan)
        ]
        _, pending = await asyncio.wait(tasks, timeout=seconds + 30)
        elapsed = time.perf_counter() - start
        for task in pending:  # still queued or in flight at the end: counted as errors
            task.cancel()
        if pending:
            errors["unfinished"] = len(pending)
    kinds: dict[str, int] = {}
    for kind, _ in plan:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "sent": n,
        "ok": sum(len(v) for v in lat.values()),
        "errors": errors,
        "elapsed_s": elapsed,
        "lat": lat,
        "outcomes": outcomes,
        "kinds": kinds,
    }


def _line(s: dict[str, float]) -> str:
    return "p50 {p50:6.1f} ms  p90 {p90:6.1f} ms  p99 {p99:6.1f} ms  max {max:6.1f} ms".format(**s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000_000)
    parser.add_argument(
        "--ingest", type=float, default=5000.0, help="new posts/s on the posts topic meanwhile"
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--cache-s", type=float, default=1.0, help="the API's feed cache TTL (0: off)"
    )
    parser.add_argument("--load", nargs=2, metavar=("PATH", "POSTS"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--ingest-run", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], int(args.load[1]))
        return 0
    if args.serve:
        path, port, cache_s, bootstrap, tag = args.serve
        serve(path, int(port), float(cache_s), bootstrap, tag)
        return 0
    if args.ingest_run:
        bootstrap, tag, rate, seconds, first = args.ingest_run
        ingest(bootstrap, tag, float(rate), float(seconds), int(first))
        return 0
    signal.signal(signal.SIGTERM, _interrupt)  # teardown (stop the API, the broker) runs

    with tempfile.TemporaryDirectory(prefix="wf-bench-api-") as tmp:
        path = str(Path(tmp) / "chdb")
        print(f"loading {args.posts:,} posts into chDB at {path} ...", flush=True)
        out = subprocess.run(  # noqa: S603 - our own module
            [sys.executable, "-m", "bench.api_feed", "--load", path, str(args.posts)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {loaded['posts']:,} posts in {loaded['load_s']:.1f} s", flush=True)

        with broker() as bootstrap:
            result, fed = _serve_and_fire(args, path, tmp, loaded, bootstrap)
    return _report(args, loaded, result, fed)


def _serve_and_fire(
    args: argparse.Namespace, path: str, tmp: str, loaded: dict[str, Any], bootstrap: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start the API (with its sink) and the ingest; fire the requests; stop both."""
    tag = uuid.uuid4().hex[:8]
    port = _free_port()
    log = open(Path(tmp) / "api.log", "wb")
    api = subprocess.Popen(  # noqa: S603 - our own app
        [sys.executable, "-m", "bench.api_feed", "--serve", path, str(port)]
        + [str(args.cache_s), bootstrap, tag],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    feeder = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/feed?limit=1", timeout=2):  # noqa: S310 - loopback
                    break
            except OSError:
                if api.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((Path(tmp) / "api.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        loaded["index"] = _index_filled(base, api, 1800)
        feeder = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "bench.api_feed", "--ingest-run", bootstrap, tag]
            + [str(args.ingest), str(args.seconds + 1), str(loaded["max_tick"] + 1)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # the ingest is under way when the requests start
        print(
            f"firing {args.rate:g} req/s for {args.seconds:g} s at {base}/feed while "
            f"{args.ingest:g} posts/s arrive on the posts topic ...",
            flush=True,
        )
        result = asyncio.run(
            fire(base, args.rate, args.seconds, loaded["max_tick"], loaded["scroll"])
        )
        result["api_memory_mib"] = memory_mib(api.pid, ("VmHWM", "RssAnon", "RssFile"))
        out, _ = feeder.communicate(timeout=120)
        fed = json.loads(out.strip().splitlines()[-1])
        # (with --ingest 0 there is nothing to catch up with)
        fed["caught_up_s"] = _caught_up(base, fed["last_tick"], 120) if args.ingest else 0.0
        return result, fed
    finally:
        if feeder is not None and feeder.poll() is None:
            feeder.terminate()
            feeder.wait(20)
        api.terminate()
        api.wait(20)
        log.close()


def _index_filled(base: str, api: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    """Wait until the API's post index is filled (``/health``); its report, with how long
    the wait took."""
    t0 = time.monotonic()
    print("waiting for the API's post index to fill ...", flush=True)
    report: dict[str, Any] = {}
    while time.monotonic() - t0 < timeout_s and api.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=10) as r:  # noqa: S310 - loopback
                report = json.loads(r.read()).get("feed_index") or {}
        except urllib.error.HTTPError as exc:  # 503: a check failed; the body still says
            report = json.loads(exc.read()).get("feed_index") or {}
        except OSError:
            report = {}
        if report.get("state") in ("ready", "off"):
            break
        time.sleep(1.0)
    report["waited_s"] = time.monotonic() - t0
    print(f"  post index: {report}", flush=True)
    return report


def _caught_up(base: str, last_tick: int, timeout_s: float) -> float | None:
    """Seconds after the ingest ended until both runs' feeds show its last tick (the sink
    stored everything and the timelines have it), or None if not within ``timeout_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        ticks = []
        for run in RUNS:
            try:
                with urllib.request.urlopen(f"{base}/feed?run_id={run}&limit=1", timeout=10) as r:  # noqa: S310 - loopback
                    items = json.loads(r.read())["items"]
            except OSError:  # a server still busy with the backlog: ask again
                items = []
            ticks.append(items[0]["tick"] if items else -1)
        if min(ticks) >= last_tick:
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def _report(
    args: argparse.Namespace, loaded: dict[str, Any], result: dict[str, Any], fed: dict[str, Any]
) -> int:
    base_s = loaded["baseline"]
    print("\nbaseline: storage.queries.feed in-process, sequential, no cache, same mix:")
    print(f"  all      n {base_s['n']:5d}  {_line(base_s)}")
    for kind, s in loaded["baseline_kinds"].items():
        print(f"  {kind:8s} n {s['n']:5d}  {_line(s)}")
    if not result["ok"]:
        print(f"no successful request; errors {result['errors']}")
        return 1
    everything = [x for values in result["lat"].values() for x in values]
    api_s = _summary(everything)
    achieved = result["ok"] / result["elapsed_s"]
    n_errors = sum(result["errors"].values())
    print(
        f"\nAPI /feed over HTTP, open loop {args.rate:g} req/s for {args.seconds:g} s, "
        f"feed cache {args.cache_s:g} s: {result['sent']} sent, {result['ok']} ok "
        f"({achieved:.0f}/s achieved), errors {n_errors} {result['errors'] or ''}"
    )
    print(f"  all      n {api_s['n']:5d}  {_line(api_s)}")
    for kind, lat in sorted(result["lat"].items()):
        print(f"  {kind:8s} n {len(lat):5d}  {_line(_summary(lat))}")
    served = result["outcomes"]
    total = sum(served.values())
    print(
        "  served: "
        + ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in sorted(served.items()))
        + " (index: from the post index; memory: from the in-memory timelines; hit: cached "
        "page; shared: joined an "
        "identical query in flight; miss: queried)"
    )
    caught = fed["caught_up_s"]
    print(
        f"ingest: {fed['sent']:,} posts at {fed['rate']:.0f}/s on the posts topic; the feed "
        + (
            f"showed the last of them {caught:.1f} s after the ingest ended"
            if caught is not None
            else "did not show the last of them within 120 s (the sink fell behind)"
        )
    )
    print(
        f"ratio API/baseline: p50 {api_s['p50'] / base_s['p50']:.2f}x, "
        f"p99 {api_s['p99'] / base_s['p99']:.2f}x"
    )
    ok = api_s["p99"] <= TARGET_P99_MS and not n_errors and caught is not None
    verdict = "meets" if ok else "misses"
    print(f"target p99 <= {TARGET_P99_MS:g} ms, no errors, the sink keeps up: {verdict}")
    index = loaded.get("index", {})
    print(
        f"post index: {index.get('state')}, {index.get('posts', 0):,} posts filled in "
        f"{index.get('fill_s') or 0:.1f} s; API memory (MiB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in result.get("api_memory_mib", {}).items())
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores; other work counts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
