"""Deliberation benchmark (issue 12): what LLM decisions cost the simulation and the LLM.

    python -m bench.decide [--url HOST:GRPC_PORT] [--no-llm] [--requests 12]
                           [--concurrency 1,2,4] [--npcs 1000,10000] [--out FILE]

Without the LLM (always): sim ticks/s of the in-process run (sim.local) with deliberation
off and on (budget 5, 20, 100 per tick, an instant fake decider: the engine's own cost
of focal selection, situations, prompts, validation); and LLM calls per 1,000 NPC-ticks
at each ``--npcs`` size (synthetic worlds, budget 5% of the NPCs) with and without
cohorts. With the LLM (unless ``--no-llm``; starts its own Triton unless ``--url``):
decisions/s and p50/p99 latency at each concurrency on real requests of a Day-1 town
run, the first-try schema-valid / repaired / retried / invalid / timeout shares, and a
town run whose focal NPCs ask Triton: accepted / rejected-by-reason / fallback shares.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.llm import SCRIPT, _start_server, pct
from topics.models import DecisionMade, DecisionRequested


def eager(req: DecisionRequested) -> DecisionMade:
    """An instant fake LLM: the first allowed action with a type (and its first target)."""
    allowed: dict[str, Any] = req.situation["allowed"]
    answer: dict[str, Any] = {"action": "wait", "reason": "bench"}
    if len(req.npcs) > 1:
        choices = [
            {"action": k, "event_type": v["event_types"][0], "weight": 1.0}
            for k, v in allowed.items()
            if v["event_types"]
        ]
        answer = {"choices": choices or [{"action": "wait", "weight": 1.0}]}
    else:
        for kind, v in allowed.items():
            if v["event_types"] and (v["targets"] or kind == "speak_out"):
                answer = {"action": kind, "event_type": v["event_types"][0], "reason": "bench"}
                if v["targets"]:
                    answer["target"] = v["targets"][0]
                break
    return req.decided("ok", answer=answer, attempts=1)


def _play(index: Any, ticks: int, budget: int, decider: Any = None, **kw: Any) -> Any:
    from sim.local import LocalRun

    run = LocalRun(index, "bench", 7, 1, decide_budget=budget, decider=decider, **kw)
    t0 = time.perf_counter()
    for _ in range(ticks):
        run.step()
    run.wall_s = time.perf_counter() - t0
    return run


def ticks_per_s(n_npcs: int, ticks: int) -> list[dict[str, Any]]:
    """Ticks/s of a synthetic world with deliberation off and at budgets 5, 20, 100."""
    from catalog.generate import generate_world
    from sim.world import WorldIndex

    index = WorldIndex.build(generate_world(n_npcs, seed=5))
    rows = []
    for budget in (0, 5, 20, 100):
        run = _play(index, ticks, budget, eager if budget else None)
        rows.append(
            {
                "npcs": n_npcs,
                "budget": budget,
                "ticks": ticks,
                "ticks_per_s": round(ticks / run.wall_s, 2),
                "requests": len(run.requests),
                "accepted": sum(o.outcome == "accepted" for o in run.outcomes),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def calls_per_1000(n_npcs: int, ticks: int) -> dict[str, Any]:
    """LLM calls per 1,000 NPC-ticks with a budget of 5% of the NPCs, without and with
    cohorts (cohort_min 2)."""
    from catalog.generate import generate_world
    from sim.world import WorldIndex

    index = WorldIndex.build(generate_world(n_npcs, seed=5))
    budget = max(1, n_npcs // 20)
    out: dict[str, Any] = {"npcs": n_npcs, "budget": budget, "ticks": ticks}
    base = index.catalog.decide
    for label, cohort_min in (("solo", 0), ("cohorts", 2)):
        object.__setattr__(
            index.catalog, "decide", base.model_copy(update={"cohort_min": cohort_min})
        )
        run = _play(index, ticks, budget, eager)
        npc_ticks = n_npcs * ticks
        out[label] = {
            "llm_calls": len(run.requests),
            "npcs_decided": sum(len(r.npcs) for r in run.requests),
            "calls_per_1000_npc_ticks": round(1000 * len(run.requests) / npc_ticks, 3),
            "ticks_per_s": round(ticks / run.wall_s, 2),
        }
    object.__setattr__(index.catalog, "decide", base)
    solo, grouped = out["solo"]["llm_calls"], out["cohorts"]["llm_calls"]
    out["fewer_calls_x"] = round(solo / grouped, 2) if grouped else None
    print(json.dumps(out), flush=True)
    return out


def town_requests(n: int) -> list[DecisionRequested]:
    """Decision requests of a Day-1 town run (budget 4), the first ``n``."""
    from sim.world import load_world

    run = _play(load_world("town"), 96, 4, eager)
    reqs: list[DecisionRequested] = run.requests
    return reqs[:n]


async def llm_pass(url: str, reqs: list[DecisionRequested], conc: int, timeout_s: float) -> dict:
    """Answer every request with ``conc`` in flight (no cache): rate, latency, statuses."""
    from llm.complete import CallCounts, Completer
    from llm.decide import answer_request
    from llm.pool import connect

    stats = CallCounts()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    sem = asyncio.Semaphore(conc)
    async with connect(url, concurrency=conc, timeout_s=300) as llm:
        completer = Completer(llm, None, None, None, stats)

        async def one(req: DecisionRequested) -> None:
            async with sem:
                made = await answer_request(completer, req, timeout_s)
                latencies.append(made.latency_ms)
                statuses[made.status] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(r) for r in reqs))
        wall = time.perf_counter() - t0
    n = len(reqs)
    return {
        "concurrency": conc,
        "decisions": n,
        "wall_s": round(wall, 2),
        "decisions_per_s": round(n / wall, 3),
        "latency_ms_p50": round(pct(latencies, 0.5), 1),
        "latency_ms_p99": round(pct(latencies, 0.99), 1),
        "llm_calls": stats.counts["llm_calls"],
        "status_pct": {k: round(100 * v / n, 1) for k, v in sorted(statuses.items())},
    }


def llm_town_run(url: str, ticks: int, budget: int, timeout_s: float) -> dict[str, Any]:
    """A town run whose focal NPCs ask Triton (one at a time, through a loop thread):
    what the engine made of the answers."""
    from llm.complete import Completer
    from llm.decide import answer_request
    from llm.pool import connect
    from sim.world import load_world

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    llm = connect(url, concurrency=1, timeout_s=300)
    completer = Completer(llm)

    def ask(req: DecisionRequested) -> DecisionMade:
        fut = asyncio.run_coroutine_threadsafe(answer_request(completer, req, timeout_s), loop)
        return fut.result()

    decider: Callable[[DecisionRequested], DecisionMade] = ask
    try:
        run = _play(load_world("town"), ticks, budget, decider)
    finally:
        asyncio.run_coroutine_threadsafe(llm.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    n = len(run.outcomes) or 1
    outcomes = Counter(o.outcome for o in run.outcomes)
    reasons = Counter(o.reason_code for o in run.outcomes if o.outcome == "rejected")
    causes = Counter(o.reason_code for o in run.outcomes if o.outcome == "fallback")
    status = Counter(d.status for d in run.decisions)
    m = len(run.decisions) or 1
    out = {
        "ticks": ticks,
        "budget": budget,
        "decisions": len(run.outcomes),
        "wall_s": round(run.wall_s, 1),
        "ticks_per_s": round(ticks / run.wall_s, 3),
        "status_pct": {k: round(100 * v / m, 1) for k, v in sorted(status.items())},
        "accepted_pct": round(100 * outcomes["accepted"] / n, 1),
        "rejected_pct_by_reason": {
            str(k): round(100 * v / n, 1) for k, v in sorted(reasons.items(), key=str)
        },
        "fallback_pct_by_cause": {
            str(k): round(100 * v / n, 1) for k, v in sorted(causes.items(), key=str)
        },
        "llm_events": sum(e.source == "llm" for e in run.events),
    }
    print(json.dumps(out), flush=True)
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the report."""
    report: dict[str, Any] = {"ticks_per_s": [], "calls_per_1000_npc_ticks": []}
    report["ticks_per_s"] = ticks_per_s(args.sim_npcs, args.sim_ticks)
    for n in args.npcs:
        report["calls_per_1000_npc_ticks"].append(calls_per_1000(n, args.cohort_ticks))
    if args.llm:
        reqs = town_requests(args.requests)
        report["llm"] = []
        for conc in args.concurrency:
            row = asyncio.run(llm_pass(args.url, reqs, conc, args.timeout_s))
            report["llm"].append(row)
            print(json.dumps(row), flush=True)
        report["llm_town_run"] = llm_town_run(args.url, args.town_ticks, 2, args.timeout_s)
    return report


def cli() -> None:
    """Parse arguments, start Triton if needed, run, print the report as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url", help="Triton gRPC host:port, or several comma-separated (default: start one)"
    )
    p.add_argument("--no-llm", dest="llm", action="store_false", help="sim figures only")
    p.add_argument("--requests", type=int, default=12)
    p.add_argument("--concurrency", default="1,2,4")
    p.add_argument("--timeout-s", type=float, default=60.0)
    p.add_argument("--town-ticks", type=int, default=48)
    p.add_argument("--sim-npcs", type=int, default=1000)
    p.add_argument("--sim-ticks", type=int, default=48)
    p.add_argument("--npcs", default="1000,10000", help="sizes for calls per 1,000 NPC-ticks")
    p.add_argument("--cohort-ticks", type=int, default=24)
    p.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.npcs = [int(n) for n in args.npcs.split(",")]
    stop: list[str] | None = None
    if args.llm and not args.url:
        args.url, stop = _start_server()
    try:
        report = main(args)
    finally:
        if stop:
            subprocess.run([str(SCRIPT), "stop", *stop], check=False, timeout=60)  # noqa: S603
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    cli()
