"""``worldfeed snapshot | replay | branch | diff``: runs as a log, from the command line.

worldfeed snapshot RUN                    write a full-world snapshot after RUN's next tick
worldfeed replay RUN [--json]             re-derive RUN from its log; report the first difference
worldfeed branch RUN --at-tick T [--seed S] [--inject FILE] [--days D] [--run-id ID]
                                          start a run that continues RUN's world after tick T
worldfeed diff RUN_A RUN_B [--json]       where two runs part
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from worldfeed.settings import Settings

MAX_INJECT_FILE_BYTES = 1024 * 1024
MAX_INJECTED = 100


def add_parsers(sub: Any) -> None:
    """Register the subcommands on the main parser's subparsers."""
    s = sub.add_parser("snapshot", help="write a full-world snapshot of a run after its next tick")
    s.add_argument("run_id")
    r = sub.add_parser("replay", help="re-derive a run from its log and compare it, tick by tick")
    r.add_argument("run_id")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    b = sub.add_parser("branch", help="start a run that continues another's world after a tick")
    b.add_argument("run_id", help="the parent run")
    b.add_argument("--at-tick", type=int, required=True, help="the parent's tick to continue after")
    b.add_argument("--seed", type=int, default=None, help="another seed (default: the parent's)")
    b.add_argument("--inject", type=Path, default=None, help="JSON file: a list of events")
    b.add_argument("--days", type=float, default=None, help="days to play (default: the rest)")
    b.add_argument("--run-id", dest="new_run_id", default=None, help="the branch's id")
    b.add_argument(
        "--allow-catalog-change",
        action="store_true",
        help="branch even though the catalog changed since the parent ran (a what-if on it)",
    )
    d = sub.add_parser("diff", help="where two runs part")
    d.add_argument("run_a")
    d.add_argument("run_b")
    d.add_argument("--json", action="store_true", help="print the comparison as JSON")


def load_injections(path: Path) -> list[Any]:
    """The events of an ``--inject`` file (a JSON list of InjectedEvent), validated."""
    from topics.models import InjectedEvent

    if path.stat().st_size > MAX_INJECT_FILE_BYTES:
        raise SystemExit(f"worldfeed: {path}: larger than {MAX_INJECT_FILE_BYTES} bytes")
    try:
        events = TypeAdapter(list[InjectedEvent]).validate_json(path.read_bytes())
    except ValidationError as exc:
        raise SystemExit(f"worldfeed: {path}: not a list of events: {exc}") from exc
    if len(events) > MAX_INJECTED:
        raise SystemExit(f"worldfeed: {path}: {len(events)} events, at most {MAX_INJECTED}")
    return events


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Carry out one of the subcommands; returns the exit status."""
    try:
        return asyncio.run(_run(settings, args))
    except SystemExit:
        raise
    except LookupError as exc:
        print(f"worldfeed: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bus.commands import send_command
    from bus.runlog import make_branch, read_run, send_branch
    from sim.replay import BranchError, compare, replay
    from sim.world import load_world
    from topics.models import RunCommanded

    if args.cmd == "snapshot":
        await send_command(settings, RunCommanded(command="snapshot", run_id=args.run_id))
        print(f"snapshot asked: run {args.run_id} writes one after its next tick")
        return 0
    if args.cmd == "replay":
        log = await read_run(settings, args.run_id)
        report = await asyncio.to_thread(replay, load_world(log.start.world), log)
        _print(dataclasses.asdict(report) | {"speedup": report.speedup}, args.json, _replay_text)
        return 0 if report.identical else 1
    if args.cmd == "branch":
        parent = await read_run(settings, args.run_id)
        injected = load_injections(args.inject) if args.inject else []
        try:
            plan = await asyncio.to_thread(
                lambda: make_branch(
                    load_world(parent.start.world),
                    parent,
                    args.at_tick,
                    n_shards=settings.world_partitions,
                    run_id=args.new_run_id,
                    seed=args.seed,
                    injected=injected,
                    days=args.days,
                    allow_catalog_change=args.allow_catalog_change,
                )
            )
        except BranchError as exc:
            print(f"worldfeed: cannot branch: {exc}", file=sys.stderr)
            return 1
        await send_branch(settings, plan)
        for note in plan.notes:
            print(f"note: {note}")
        where = (
            "its start" if plan.restored_from < 0 else f"its snapshot at tick {plan.restored_from}"
        )
        print(
            f"branch {plan.run_id} of {args.run_id} after tick {args.at_tick} started "
            f"(restored from {where}, {plan.replayed} logged ticks re-derived)"
        )
        return 0
    if args.cmd == "diff":
        a = await read_run(settings, args.run_a, posts=True)
        b = await read_run(settings, args.run_b, posts=True)
        result = await asyncio.to_thread(compare, a, b, lambda: load_world(a.start.world))
        _print(dataclasses.asdict(result), args.json, _diff_text)
        return 0
    return 2


def _print(data: dict[str, Any], as_json: bool, text: Any) -> None:
    print(json.dumps(data, indent=2) if as_json else text(data))


def _replay_text(r: dict[str, Any]) -> str:
    lines = [
        f"run {r['run_id']}: {r['ticks']} ticks re-derived from tick {r['from_tick']} in "
        f"{r['seconds']:.2f}s (the run took {r['original_seconds']:.2f}s: {r['speedup']}x)",
    ]
    first = r["first_difference"]
    if first is None:
        lines.append("identical: every state hash and every event")
    else:
        lines.append(f"DIFFERS at tick {first['tick']}: {first['what']}: {first['detail']}")
        for side in ("only_in_log", "only_in_replay"):
            if first[side]:
                lines.append(f"  {side.replace('_', ' ')}: {', '.join(first[side])}")
    for tick, verdict in r["snapshots"].items():
        lines.append(f"snapshot at tick {tick}: {verdict}")
    return "\n".join(lines)


def _diff_text(d: dict[str, Any]) -> str:
    first = d["first_divergent_tick"]
    lines = [
        f"{d['run_a']} vs {d['run_b']}: {d['common_ticks']} common ticks; "
        + ("identical over them" if first is None else f"first divergent tick {first}"),
        f"events only in {d['run_a']}: {d['events_only_in_a']}; only in {d['run_b']}: "
        f"{d['events_only_in_b']}",
        f"posts per channel: {d['run_a']} {d['posts_a']}; {d['run_b']} {d['posts_b']}",
    ]
    for row in d["relationships_moved"]:
        lines.append(f"  {row['npc']} -> {row['other']}: {row['a']} vs {row['b']}")
    return "\n".join(lines)
