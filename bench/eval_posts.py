"""Post quality: are Day 1's posts about their event, true to the world, in their voice?

    python -m bench.eval_posts [--url HOST:GRPC_PORT] [--seeds 1,7,3] [--out FILE]

For each seed, Day 1 of the starter world is simulated in process and its render
requests (after the daily quotas) are rendered by the real render service
(:class:`posts.service.PostRenderer`: prompts, the LLM loop with its retries, the
grounding validator, the template fallback, moderation) against a real Triton server;
without ``--url`` one is started on free ports (and stopped on exit, Ctrl-C or SIGTERM).

Every post is then judged again by the grounding rules (:mod:`posts.grounding`), and per
channel the evaluator prints: the share grounded (actor or author, target, place),
naming an invented person or place, contradicting a fact (role, kin, place), with a
tone that does not fit the event; news headlines equal to the summary and paragraphs
per article; author attribution accuracy against chance; LLM-written (and at which
attempt: free, with the reasons, with the first sentence given) vs template fallback;
mean attempts and tokens per post; and three sample posts per channel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.llm import SCRIPT, _start_server

SEEDS = (1, 7, 3)
TICKS = 96
CONTRADICTIONS = ("role", "kin", "wrong_place")


def golden(seed: int) -> list[dict]:
    """The golden posts of a seed (``tests/golden``: played for real by ``worldfeed up``)
    with their render requests rebuilt in process, to judge without rendering again."""
    from tests.golden.record import path_for, run_id_for
    from topics.models import PostPublished

    reqs = {r.request_id: r for r in day1(seed, run_id_for(seed))}
    out = []
    for g in json.loads(path_for(seed).read_text())["posts"]:
        req = reqs[g["request_id"]]
        post = PostPublished(
            post_id=g["request_id"], request_id=g["request_id"], run_id=req.run_id,
            event_id=req.event.event_id, channel=g["channel"], author=g["author"],
            tick=req.event.tick, sim_minute=req.event.sim_minute, title=g["title"],
            body=g["body"], source=g["source"], score=req.score,
        )  # fmt: skip
        out.append({"req": req, "post": post, "attempt": 0, "calls": 0, "tokens": 0, "why": None})
        out[-1]["errors"] = []
    return out


def day1(seed: int, run_id: str | None = None) -> list[Any]:
    """Day 1's render requests of a seed, after the daily quotas (in process)."""
    from posts.quota import apply_rate_limit
    from sim.impact import book_of
    from sim.local import LocalRun
    from sim.world import load_world

    index = load_world("town")
    run = LocalRun(index, run_id or f"eval-{seed}", seed)
    for _ in range(TICKS):
        run.step()
    _, requests = book_of(index, run.events)
    quota: dict[bytes, bytes] = {}
    out = []
    for req in requests:
        limited, _ = apply_rate_limit(index, req, quota)
        if limited is not None:
            out.append(limited)
    return out


async def render_all(url: str, reqs: list[Any], concurrency: int) -> tuple[list[dict], Any]:
    """Render every request through the render service; each post with how it was made."""
    from llm.complete import CallCounts, Completer
    from llm.gate import LLMGate
    from llm.pool import connect
    from posts.service import PostRenderer
    from topics.models import LLMCalled

    stats = CallCounts()
    calls: dict[str, list[LLMCalled]] = defaultdict(list)

    async def ledger(c: LLMCalled) -> None:
        calls[c.request_id].append(c)

    sem = asyncio.Semaphore(concurrency)
    out: list[dict] = []
    async with connect(url, concurrency=concurrency, timeout_s=300) as llm:
        renderer = PostRenderer(Completer(llm, None, LLMGate(concurrency), ledger, stats))

        async def one(req: Any) -> None:
            async with sem:
                got = await renderer.handle(req)
            if got.post is None:
                return
            mine = calls.get(req.request_id, [])
            headline = calls.get(f"{req.request_id}/headline", [])  # news that fell back
            out.append(
                {
                    "req": req,
                    "post": got.post,
                    "attempt": max((c.attempt for c in mine if c.outcome != "invalid"), default=0)
                    if got.post.source == "llm"
                    else 0,
                    "calls": len(mine) + len(headline),
                    "tokens": sum(c.tokens_in + c.tokens_out for c in mine + headline),
                    "why": got.dead_letter,
                    "errors": [c.error for c in mine if c.error],
                }
            )

        await asyncio.gather(*(one(r) for r in reqs))
    return out, stats


def judge(rendered: list[dict]) -> dict[str, Any]:
    """Per-channel figures over the rendered posts."""
    from posts.attribution import attribute
    from posts.grounding import names_of, problems, rule_of
    from posts.service import subject_of
    from sim.world import load_world

    index = load_world("town")
    names = names_of(index)
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rendered:
        by[r["post"].channel].append(r)
    report: dict[str, Any] = {}
    for channel, items in sorted(by.items()):
        n = len(items)
        c: Counter[str] = Counter()
        paragraphs = []
        for r in items:
            post, req = r["post"], r["req"]
            fields = {"body": post.body, **({"title": post.title} if post.title else {})}
            rules = {rule_of(p) for p in problems(fields, subject_of(index, req), names)}
            c["grounded"] += not rules & {"actor", "target", "place", "about"}
            c["invented"] += "invented" in rules
            c["contradiction"] += bool(rules & set(CONTRADICTIONS))
            c["tone_mismatch"] += "tone" in rules
            c["letter_or_third_person"] += bool(rules & {"letter", "third_person"})
            c["passes_every_rule"] += not rules
            c[f"source_{post.source}"] += 1
            c[f"attempt_{r['attempt']}"] += 1
            if channel == "news":
                summary = req.event.summary.strip().rstrip(".").lower()
                title = (post.title or "").strip().rstrip(".").lower()
                c["headline_is_summary"] += title == summary
                c["headline_by_llm"] += title != summary  # the summary is the template's
                paragraphs.append(len([p for p in post.body.split("\n\n") if p.strip()]))
        llm_posts = [r for r in items if r["post"].source == "llm"]
        attribution = attribute([(r["post"].author, r["post"].body) for r in llm_posts])
        report[channel] = {
            "posts": n,
            **{f"share_{k}": round(v / n, 3) for k, v in sorted(c.items())},
            "mean_attempts": round(sum(r["calls"] for r in items) / n, 2),
            "mean_tokens": round(sum(r["tokens"] for r in items) / n, 1),
            "news_paragraphs_mean": round(sum(paragraphs) / len(paragraphs), 2)
            if paragraphs
            else None,
            "attribution": {
                k: getattr(attribution, k)
                for k in ("accuracy", "chance", "majority", "n_posts", "n_authors")
            },
        }
    every = [r for items in by.values() for r in items]
    report["all"] = {
        "posts": len(every),
        "share_llm": round(sum(r["post"].source == "llm" for r in every) / max(1, len(every)), 3),
    }
    return report


def samples(rendered: list[dict], k: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The first ``k`` posts of each channel (by request id: stable across runs)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rendered, key=lambda r: r["post"].request_id):
        post = r["post"]
        if len(out[post.channel]) < k:
            out[post.channel].append(
                {
                    "event": r["req"].event.summary,
                    "author": post.author,
                    "source": post.source,
                    "attempt": r["attempt"],
                    "title": post.title,
                    "body": post.body,
                }
            )
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Render Day 1 of every seed and judge the posts."""
    rendered: list[dict] = []
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    for seed in args.seeds:
        if args.golden:
            rendered += golden(seed)
            continue
        reqs = day1(seed)
        got, stats = await render_all(args.url, reqs, args.concurrency)
        rendered += got
        counts.update(stats.counts)
        print(f"seed {seed}: {len(got)} posts of {len(reqs)} requests", file=sys.stderr)
    report = judge(rendered)
    report["failed_rules_at_any_attempt"] = {
        k.removeprefix("grounding_"): v
        for k, v in sorted(counts.items())
        if k.startswith("grounding_")
    }
    report["pruned_sentences"] = {
        k.removeprefix("pruned_"): v for k, v in sorted(counts.items()) if k.startswith("pruned_")
    }
    report["headlines_for_fallbacks"] = {
        k: counts[k] for k in ("headline_llm", "headline_template")
    }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["samples"] = samples(rendered)
    if args.posts:
        with args.posts.open("w") as f:
            for r in sorted(rendered, key=lambda r: r["post"].request_id):
                post = r["post"]
                line = {"event": r["req"].event.summary, "attempt": r["attempt"], "why": r["why"]}
                line |= post.model_dump(include={"channel", "author", "source", "title", "body"})
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
    invented: Counter[str] = Counter()
    for r in rendered:
        for err in r["errors"]:
            for part in err.split("; "):
                if part.startswith("invented: names "):
                    names = part.removeprefix("invented: names ").split(", who")[0]
                    invented.update(n.strip() for n in names.split(","))
    report["invented_names_rejected"] = dict(invented.most_common(25))
    report["fallback_reasons"] = [r["why"][:400] for r in rendered if r["why"]][: args.reasons]
    return report


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cli() -> None:
    """Parse arguments, start a server if needed, run, print the report as JSON."""
    signal.signal(signal.SIGTERM, _interrupt)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url", help="Triton gRPC host:port, or several comma-separated (default: start one)"
    )
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--reasons", type=int, default=12, help="fallback reasons to print")
    p.add_argument("--out", type=Path, help="also write the report here (JSON)")
    p.add_argument(
        "--golden", action="store_true", help="judge the golden posts (seeds 1, 7), no rendering"
    )
    p.add_argument("--posts", type=Path, help="also write every post here (JSON lines), to read")
    args = p.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    stop: list[str] | None = None
    try:
        if not args.url and not args.golden:
            args.url, stop = _start_server()
        report = asyncio.run(main(args))
    finally:
        if stop:
            subprocess.run([str(SCRIPT), "stop", *stop], check=False, timeout=60)  # noqa: S603
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    cli()
