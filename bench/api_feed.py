"""Feed API latency at 200 requests/s over >= 1M stored posts (``make bench-api``).

1. A loader subprocess inserts the posts into an embedded chDB database and measures the
   baseline: the same feed queries called in-process through the storage client.
2. The API runs in a uvicorn subprocess on loopback over that database (chDB allows one
   engine per process, so the loader has exited by then).
3. This process fires requests at ``/feed`` open-loop (a request every 1/rate s, whatever
   the previous ones are doing; latency counts from the planned send time), with varied
   filters, bounded by count and time; then prints p50/p90/p99/max, errors, and the
   ratio to the baseline.

    .venv/bin/python -m bench.api_feed [--posts 1000000] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench"
RUNS = ("run_a", "run_b")
AUTHORS = 2000
TARGET_P99_MS = 50.0


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


def filters(rng: random.Random, max_tick: int) -> dict[str, Any]:
    """One request's filters: a mix of what readers of the feed ask for."""
    kind = rng.random()
    params: dict[str, Any] = {"limit": 50}
    if kind < 0.35:
        params.update(run_id=rng.choice(RUNS), channel=rng.choice(("feed", "chat", "news")))
    elif kind < 0.55:
        params.update(run_id=rng.choice(RUNS))
    elif kind < 0.70:
        params.update(run_id=rng.choice(RUNS), author=f"npc_{rng.randrange(AUTHORS):05d}")
    elif kind < 0.85:
        lo = rng.randrange(max_tick)
        params.update(run_id=rng.choice(RUNS), tick_from=lo, tick_to=lo + rng.randrange(1, 200))
    else:
        params.update(channel=rng.choice(("feed", "chat", "news")))
    return params


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
    rng = random.Random(7)  # noqa: S311 - load mix, not crypto
    lat: list[float] = []
    for _ in range(300):
        params = filters(rng, max_tick)
        params.pop("limit")
        t = time.perf_counter()
        queries.feed(client, DATABASE, limit=50, **params)
        lat.append((time.perf_counter() - t) * 1000)
    print(
        json.dumps(
            {"posts": total, "load_s": load_s, "max_tick": max_tick, "baseline": _summary(lat)}
        )
    )


# ---- load generator ------------------------------------------------------------------------


async def fire(base: str, rate: float, seconds: float, max_tick: int) -> dict[str, Any]:
    """Open-loop requests at ``rate``/s for ``seconds``; latency from the planned send time."""
    import httpx

    rng = random.Random(11)  # noqa: S311 - load mix, not crypto
    n = int(rate * seconds)
    lat: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=limits) as client:
        # warm the connection pool and the engine
        for _ in range(20):
            await client.get("/feed", params=filters(rng, max_tick))

        async def one(planned: float, params: dict[str, Any]) -> None:
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                resp = await client.get("/feed", params=params)
                if resp.status_code != 200:
                    errors[str(resp.status_code)] = errors.get(str(resp.status_code), 0) + 1
                    return
                resp.json()
            except Exception as exc:  # noqa: BLE001 - count every failure kind
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            lat.append((time.perf_counter() - planned) * 1000)

        start = time.perf_counter() + 0.2
        tasks = [
            asyncio.create_task(one(start + i / rate, filters(rng, max_tick))) for i in range(n)
        ]
        _, pending = await asyncio.wait(tasks, timeout=seconds + 30)
        elapsed = time.perf_counter() - start
        for task in pending:  # still queued or in flight at the end: counted as errors
            task.cancel()
        if pending:
            errors["unfinished"] = len(pending)
    return {"sent": n, "ok": len(lat), "errors": errors, "elapsed_s": elapsed, "lat": lat}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load", nargs=2, metavar=("PATH", "POSTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], int(args.load[1]))
        return 0

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

        port = _free_port()
        env = dict(os.environ)
        env.update(
            WORLDFEED_ENV="test",
            WORLDFEED_CLICKHOUSE_DSN=f"chdb://{path}?database={DATABASE}",
            WORLDFEED_KAFKA_BOOTSTRAP="127.0.0.1:1",
        )
        log = open(Path(tmp) / "api.log", "wb")  # noqa: SIM115 - closed below
        api = subprocess.Popen(  # noqa: S603 - our own app
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app_from_env",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
            print(
                f"firing {args.rate:g} req/s for {args.seconds:g} s at {base}/feed ...", flush=True
            )
            result = asyncio.run(fire(base, args.rate, args.seconds, loaded["max_tick"]))
        finally:
            api.terminate()
            api.wait(20)
            log.close()

    base_s = loaded["baseline"]
    print(f"\nbaseline (storage.queries.feed in-process, sequential, {base_s['n']} calls):")
    print(
        "  p50 {p50:.1f} ms  p90 {p90:.1f} ms  p99 {p99:.1f} ms  max {max:.1f} ms".format(**base_s)
    )
    if not result["lat"]:
        print(f"no successful request; errors {result['errors']}")
        return 1
    api_s = _summary(result["lat"])
    achieved = result["ok"] / result["elapsed_s"]
    print(
        f"API /feed, open loop {args.rate:g} req/s ({achieved:.0f} ok/s achieved), "
        f"{result['sent']} sent, {result['ok']} ok, errors {sum(result['errors'].values())} "
        f"{result['errors'] or ''}:"
    )
    print(
        "  p50 {p50:.1f} ms  p90 {p90:.1f} ms  p99 {p99:.1f} ms  max {max:.1f} ms".format(**api_s)
    )
    print(
        f"ratio API/baseline: p50 {api_s['p50'] / base_s['p50']:.2f}x, "
        f"p99 {api_s['p99'] / base_s['p99']:.2f}x"
    )
    verdict = "meets" if api_s["p99"] <= TARGET_P99_MS else "misses"
    print(f"target p99 <= {TARGET_P99_MS:g} ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
