"""Runs as a log, measured: snapshot cost, branch -> first tick, replay speed.

    python -m bench.branch                     # all three; 10k and 100k NPCs
    python -m bench.branch --sizes 10000 --skip-branch --replay-days 1

1. **Snapshot write** (in process, what a shard does after a snapshot tick): the time to
   cut every NPC's state into parts and encode them, their size, and that cost amortised
   over the default interval (once per simulated day: 96 ticks of 15 minutes) as a share
   of the in-process time per tick (the compute-only baseline: the streamed tick is
   slower, so the real share is lower).
2. **Branch -> first completed tick** on a real broker with warm workers (clock and
   world): a parent run with a snapshot, then ``worldfeed branch``'s work (read the log,
   restore, plan, send) and the wait for the branch's first completed tick.
3. **Replay of a multi-day town run**: the run through the broker (clock and world
   workers, as fast as possible) against its replay from the log in process.

Starts a broker (deploy/local/kafka.sh) unless WORLDFEED_KAFKA_BOOTSTRAP answers; stops
every process it started, also on Ctrl-C or SIGTERM. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from types import FrameType
from typing import Any

from bench.world import (
    START_MINUTE,
    broker,
    out,
    read_ticks,
    send_start,
    settings_for,
    start_workers,
    stop_workers,
    world_dir,
)
from bus.admin import ensure_topics
from bus.log import read_log
from bus.runlog import make_branch, read_run, send_branch
from sim.local import LocalRun
from sim.replay import replay
from sim.snapshot import shard_parts
from sim.world import WorldIndex, forget_worlds, load_world
from topics import TICKS
from topics.codec import encode
from worldfeed.settings import ROOT

DAY_TICKS = 96


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def snapshot_cost(n: int, ticks: int = 3) -> dict[str, float]:
    """Snapshot parts of a world of n NPCs after a few daytime ticks (one shard)."""
    index = WorldIndex.build(load_world(str(world_dir(n))).catalog)
    run = LocalRun(index, "snap", 1, start_minute=START_MINUTE)
    run.step()
    t = time.perf_counter()
    for _ in range(ticks):
        run.step()
    per_tick = (time.perf_counter() - t) / ticks
    shard = run.shards[0]
    t = time.perf_counter()
    parts = shard_parts("snap", run.clock.current, 0, 1, shard.states)
    size = sum(len(encode(p)) for p in parts)
    write_s = time.perf_counter() - t
    return {
        "npcs": n,
        "parts": len(parts),
        "mib": size / 2**20,
        "write_s": write_s,
        "tick_s": per_tick,
        "amortised": write_s / (DAY_TICKS * per_tick),
    }


async def branch_latency(bootstrap: str, n: int, parent_ticks: int) -> dict[str, float]:
    """A parent of ``parent_ticks`` ticks with a snapshot after its last-but-one tick, then a
    branch after its last tick: command to first completed tick."""
    world = world_dir(n)
    settings = settings_for(bootstrap, world, 1, world_snapshot_every_ticks=parent_ticks - 1)
    await ensure_topics(settings)
    logdir = ROOT / ".local" / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    procs = start_workers(settings, 1, "clock,world", logdir, name="branch-worker")
    try:
        await send_start(settings, "parent", parent_ticks)
        await read_ticks(settings, parent_ticks, 900, procs)
        forget_worlds()  # as a fresh `worldfeed branch` process: the world loads too
        t0 = time.perf_counter()
        parent = await read_run(settings, "parent")
        t_read = time.perf_counter() - t0
        index = load_world(str(world))
        t_index = time.perf_counter() - t0 - t_read
        plan = await asyncio.to_thread(
            make_branch, index, parent, parent_ticks - 1, n_shards=1, run_id="child", days=0.05
        )
        t_plan = time.perf_counter() - t0 - t_read - t_index
        await send_branch(settings, plan)
        t_sent = time.perf_counter() - t0
        first = await _first_tick(settings, "child", parent_ticks, procs)
        total = time.perf_counter() - t0
    finally:
        stop_workers(procs)
    return {
        "npcs": n,
        "read_s": t_read,
        "index_s": t_index,
        "plan_s": t_plan,
        "sent_s": t_sent,
        "first_tick_s": total,
        "tick_wall_s": first,
        "restored_from": plan.restored_from,
        "replayed": plan.replayed,
    }


async def _first_tick(settings: Any, run_id: str, tick: int, procs: list[Any]) -> float:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited (see .local/bench/branch-worker*.log)")
        got = [t for t in await read_log(settings, TICKS) if t.run_id == run_id]
        if any(t.tick == tick for t in got):
            return next(t.wall_ms for t in got if t.tick == tick) / 1000
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{run_id}: no tick {tick}")


async def replay_speed(bootstrap: str, days: float) -> dict[str, float]:
    """A town run of ``days`` through the broker, and its replay from the log."""
    from sim.world import resolve_world

    world = resolve_world("town")
    ticks = round(days * DAY_TICKS)
    settings = settings_for(bootstrap, world, 2, world_snapshot_every_ticks=DAY_TICKS)
    await ensure_topics(settings)
    logdir = ROOT / ".local" / "bench"
    procs = start_workers(settings, 1, "clock,world", logdir, name="replay-worker")
    try:
        t0 = time.perf_counter()
        await send_start(settings, "week", ticks)
        done = await read_ticks(settings, ticks, 1800, procs)
        wall = time.perf_counter() - t0
    finally:
        stop_workers(procs)
    log = await read_run(settings, "week")
    index = load_world(str(world))
    report = replay(index, log)
    return {
        "ticks": len(done),
        "run_wall_s": wall,
        "run_ticks_s": sum(t.wall_ms for t in done) / 1000,
        "replay_s": report.seconds,
        "identical": float(report.identical),
        "snapshots_verified": sum(v == "verified" for v in report.snapshots.values()),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--branch-npcs", type=int, default=100_000)
    parser.add_argument("--parent-ticks", type=int, default=4)
    parser.add_argument("--replay-days", type=float, default=7.0)
    parser.add_argument("--skip-branch", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)

    out(f"{'NPCs':>8} {'parts':>6} {'MiB':>7} {'write s':>8} {'tick s':>7} {'share/day':>10}")
    for n in [int(x) for x in args.sizes.split(",") if x]:
        r = snapshot_cost(n)
        out(
            f"{n:>8,} {r['parts']:>6} {r['mib']:>7.1f} {r['write_s']:>8.3f} {r['tick_s']:>7.3f} "
            f"{r['amortised']:>9.1%}"
        )
    with broker() as bootstrap:
        if not args.skip_branch:
            b = await branch_latency(bootstrap, args.branch_npcs, args.parent_ticks)
            out(
                f"branch at {b['npcs']:,} NPCs: command -> first completed tick "
                f"{b['first_tick_s']:.1f}s (read log {b['read_s']:.1f}s, load world "
                f"{b['index_s']:.1f}s, restore+plan {b['plan_s']:.1f}s, sent at "
                f"{b['sent_s']:.1f}s, the tick itself {b['tick_wall_s']:.1f}s; restored from "
                f"snapshot {b['restored_from']:.0f} + {b['replayed']:.0f} ticks)"
            )
        if not args.skip_replay:
            r = await replay_speed(bootstrap, args.replay_days)
            out(
                f"replay of {args.replay_days:g} town days ({r['ticks']:.0f} ticks): run "
                f"{r['run_wall_s']:.1f}s through the broker, replay {r['replay_s']:.2f}s in "
                f"process: {r['run_wall_s'] / r['replay_s']:.0f}x faster; identical "
                f"{bool(r['identical'])}, {r['snapshots_verified']:.0f} snapshots verified"
            )


if __name__ == "__main__":
    asyncio.run(main())
