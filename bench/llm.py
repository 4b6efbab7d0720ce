"""LLM benchmark: posts/s, tokens/s and latency percentiles of the render path against a
running Triton server, at several concurrencies, plus the raw tritonclient call without
our wrapper as a baseline, the prompt-token distribution, the render outcome shares and
the cache hit rate of a second pass over the same requests.

    python -m bench.llm [--url HOST:GRPC_PORT] [--requests 24] [--concurrency 1,2,4]

Without ``--url`` it starts its own server with deploy/local/triton.sh on free ports.
Requests are real: a Day-1 LocalRun of the starter world, through impact's
``render_requests`` and posts/prompt.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "local" / "triton.sh"


def day1_requests(seed: int, n: int) -> list[Any]:
    """Render requests of a simulated Day 1 (in process, no Kafka)."""
    from sim.local import LocalRun
    from sim.world import load_world
    from streams.impact import Story, render_requests

    index = load_world("town")
    run = LocalRun(index, f"bench-{seed}", seed=seed)
    out: list[Any] = []
    for _ in range(96):
        for ev in run.step():
            out.extend(render_requests(index, Story(ev)))
    while len(out) < n:  # another day's worth with another seed
        seed += 1
        out += day1_requests(seed, n - len(out))
    return out[:n]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1), nearest rank."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def render_pass(url: str, reqs: list[Any], conc: int, cache: dict[bytes, bytes]) -> dict:
    """Render every request with ``conc`` in flight; returns figures and stats."""
    from llm.complete import CallCounts, Completer
    from llm.gate import LLMGate
    from llm.pool import connect
    from posts.prompt import build_prompt
    from posts.service import PostRenderer, stats_summary
    from sim.world import load_world
    from topics.models import LLMCalled

    index = load_world("town")
    stats = CallCounts()
    calls: list[LLMCalled] = []

    async def ledger(c: LLMCalled) -> None:
        calls.append(c)

    latencies: list[float] = []
    sem = asyncio.Semaphore(conc)
    async with connect(url, concurrency=conc, timeout_s=300) as llm:
        renderer = PostRenderer(Completer(llm, cache, LLMGate(conc), ledger, stats))

        async def one(req: Any) -> None:
            async with sem:
                prompt = build_prompt(index, req, index.catalog.templates[req.template])
                t0 = time.perf_counter()
                await renderer.render(index, req, prompt)
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(r) for r in reqs))
        wall = time.perf_counter() - t0
    tokens_out = sum(c.tokens_out for c in calls)
    return {
        "concurrency": conc,
        "posts": len(reqs),
        "wall_s": round(wall, 2),
        "posts_per_s": round(len(reqs) / wall, 3),
        "tokens_out_per_s": round(tokens_out / wall, 1),
        "latency_ms_p50": round(pct(latencies, 0.5), 1),
        "latency_ms_p90": round(pct(latencies, 0.9), 1),
        "latency_ms_p99": round(pct(latencies, 0.99), 1),
        "tokens_in": sorted(c.tokens_in for c in calls if c.tokens_in),
        "llm_calls": sum(1 for c in calls if not c.cache_hit),
        "stats": stats_summary(stats),
    }


async def raw_pass(url: str, reqs: list[Any], conc: int) -> dict:
    """Baseline: the same prompts (first-attempt sampling) straight through tritonclient."""
    import tritonclient.grpc.aio as grpcaio

    from llm.cache import sampling_for
    from llm.client import build_inputs, parse_result
    from posts.prompt import build_prompt
    from sim.world import load_world

    index = load_world("town")
    client = grpcaio.InferenceServerClient(url.split(",")[0])  # the baseline: one instance
    latencies: list[float] = []
    tokens = 0
    sem = asyncio.Semaphore(conc)

    async def one(req: Any) -> None:
        nonlocal tokens
        prompt = build_prompt(index, req, index.catalog.templates[req.template])
        inputs = build_inputs(prompt.text, sampling_for(prompt, 1))

        async def it() -> Any:
            yield {"model_name": "llm", "inputs": inputs}

        async with sem:
            t0 = time.perf_counter()
            stream = client.stream_infer(it(), stream_timeout=300)
            async for result, error in stream:
                if error is not None:
                    raise RuntimeError(error)
                _t, _i, out = parse_result(
                    result.as_numpy("text_output"),
                    result.as_numpy("num_input_tokens"),
                    result.as_numpy("num_output_tokens"),
                )
                tokens += out
                break
            stream.cancel()
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in reqs))
    wall = time.perf_counter() - t0
    await client.close()
    return {
        "concurrency": conc,
        "calls": len(reqs),
        "calls_per_s": round(len(reqs) / wall, 3),
        "tokens_out_per_s": round(tokens / wall, 1),
        "latency_ms_p50": round(pct(latencies, 0.5), 1),
        "latency_ms_p99": round(pct(latencies, 0.99), 1),
    }


def _start_server() -> tuple[str, list[str]]:
    from tests.fixtures.triton import _free_ports

    http, grpc_port, metrics = (str(p) for p in _free_ports(3))
    subprocess.run([str(SCRIPT), "start", http, grpc_port, metrics], check=True, timeout=300)  # noqa: S603
    return f"127.0.0.1:{grpc_port}", [http, grpc_port]


async def main(args: argparse.Namespace) -> dict:
    """Run every pass and return the report."""
    reqs = day1_requests(args.seed, args.requests)
    report: dict[str, Any] = {"url": args.url, "requests": len(reqs), "runs": []}
    for conc in args.concurrency:
        run = await render_pass(args.url, reqs, conc, {})
        tin = run.pop("tokens_in")
        run["prompt_tokens"] = {
            "min": min(tin, default=0),
            "p50": pct(tin, 0.5),
            "p90": pct(tin, 0.9),
            "max": max(tin, default=0),
        }
        report["runs"].append(run)
        print(json.dumps(run), flush=True)
    cache: dict[bytes, bytes] = {}
    await render_pass(args.url, reqs, max(args.concurrency), cache)
    again = await render_pass(args.url, reqs, max(args.concurrency), cache)
    report["cache_second_pass"] = {
        "hit_rate": again["stats"]["cache_hit_rate"],
        "llm_calls": again["llm_calls"],
        "posts_per_s": again["posts_per_s"],
    }
    print(json.dumps(report["cache_second_pass"]), flush=True)
    if args.baseline:
        base = await raw_pass(args.url, reqs, 1)
        ours = (
            next(r for r in report["runs"] if r["concurrency"] == 1)
            if 1 in args.concurrency
            else None
        )
        report["raw_tritonclient_c1"] = base
        if ours:
            calls_per_s = ours["llm_calls"] / ours["wall_s"]
            report["wrapper_vs_raw_calls_per_s"] = round(calls_per_s / base["calls_per_s"], 3)
        print(json.dumps(base), flush=True)
    return report


def cli() -> None:
    """Parse arguments, start a server if needed, run, print the report as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url", help="Triton gRPC host:port, or several comma-separated (default: start one)"
    )
    p.add_argument("--requests", type=int, default=24)
    p.add_argument("--concurrency", default="1,2,4")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--no-baseline", dest="baseline", action="store_false")
    p.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    stop: list[str] | None = None
    if not args.url:
        args.url, stop = _start_server()
    try:
        report = asyncio.run(main(args))
    finally:
        if stop:
            subprocess.run([str(SCRIPT), "stop", *stop], check=False, timeout=60)  # noqa: S603
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    cli()
