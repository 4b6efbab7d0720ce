"""The clock: starts runs, emits ticks, and holds the tick barrier.

Tick t+1 starts only after every shard reported tick t done (decided, emitted, and
applied every effect of tick t). That makes a run's result independent of
partition count, worker count and timing. The clock's input is one single-partition
topic, so commands and reports are handled in one order by one agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from streams.app import Streams
from topics import CLOCK_INBOX, RUNS, SHARD_INBOX, TICKS
from topics.models import InjectedEvent, RunCommanded, ShardTickDone, TickCompleted, TickStarted
from worldfeed.ids import combine_digests

log = logging.getLogger(__name__)


@dataclass
class RunClock:
    """State of one run as the clock sees it (pure: no I/O)."""

    run_id: str
    seed: int
    world: str
    step_minutes: int
    total_ticks: int
    speed: float
    n_shards: int
    current: int = -1  # tick in flight, -1 before the first
    paused: bool = False
    stopped: bool = False
    finished: bool = False
    waiting: bool = False  # tick `current` completed, next not started (paused or timed)
    reports: dict[int, ShardTickDone] = field(default_factory=dict)
    injected: list[InjectedEvent] = field(default_factory=list)
    tick_started_wall: float = 0.0
    recent: list[int] = field(default_factory=list)  # events of the last hour's ticks

    def tick_message(self, tick: int, shard: int) -> TickStarted:
        """The copy of tick ``tick`` for one shard."""
        return TickStarted(
            run_id=self.run_id,
            seed=self.seed,
            world=self.world,
            tick=tick,
            sim_minute=tick * self.step_minutes,
            step_minutes=self.step_minutes,
            shard=shard,
            n_shards=self.n_shards,
            injected=list(self.injected),
            recent_events=sum(self.recent),
        )

    def record(self, done: ShardTickDone) -> TickCompleted | None:
        """Record a shard's report; return the completed tick once every shard reported."""
        if done.tick != self.current or done.n_shards != self.n_shards:
            log.warning(
                "run %s: ignoring stale report tick=%s shard=%s (current %s)",
                self.run_id,
                done.tick,
                done.shard,
                self.current,
            )
            return None
        self.reports[done.shard] = done  # a redelivered report overwrites itself
        if len(self.reports) < self.n_shards:
            return None
        reports = [self.reports[s] for s in sorted(self.reports)]
        self.reports = {}
        last = self.stopped or self.current + 1 >= self.total_ticks
        self.recent = (self.recent + [sum(r.events for r in reports)])[
            -max(1, 60 // self.step_minutes) :
        ]
        self.finished = last
        self.waiting = not last
        return TickCompleted(
            run_id=self.run_id,
            tick=self.current,
            sim_minute=self.current * self.step_minutes,
            state_hash=f"{combine_digests(r.state_digest for r in reports):016x}",
            npcs=sum(r.npcs for r in reports),
            events=sum(r.events for r in reports),
            effects=sum(r.effects for r in reports),
            wall_ms=round((time.perf_counter() - self.tick_started_wall) * 1000, 3),
            last=last,
        )

    def next_delay(self) -> float:
        """Seconds to wait before the next tick at this run's speed (0 = as fast as possible)."""
        if self.speed <= 0:
            return 0.0
        budget = self.step_minutes * 60 / self.speed
        return max(0.0, budget - (time.perf_counter() - self.tick_started_wall))


def register(streams: Streams) -> None:
    """Register the clock agent on the clock inbox."""
    runs: dict[str, RunClock] = {}
    streams.services["clock_runs"] = runs
    n_shards = streams.settings.world_partitions

    async def start_tick(run: RunClock) -> None:
        run.current += 1
        run.waiting = False
        run.tick_started_wall = time.perf_counter()
        for shard in range(run.n_shards):
            await streams.send(SHARD_INBOX, str(shard), run.tick_message(run.current, shard), shard)
        run.injected = []

    async def start_after(run: RunClock, delay: float) -> None:
        await asyncio.sleep(delay)
        if run.waiting and not run.paused and not run.stopped:
            await start_tick(run)

    async def advance(run: RunClock) -> None:
        delay = run.next_delay()
        if delay <= 0:
            await start_tick(run)
        else:
            task = asyncio.ensure_future(start_after(run, delay))
            streams.services.setdefault("clock_tasks", set()).add(task)
            task.add_done_callback(streams.services["clock_tasks"].discard)

    async def on_command(cmd: RunCommanded) -> None:
        run = runs.get(cmd.run_id)
        if cmd.command == "start":
            if run is not None:
                log.info("run %s already started; start ignored", cmd.run_id)
                return
            run = RunClock(
                run_id=cmd.run_id,
                seed=cmd.seed,
                world=cmd.world,
                step_minutes=cmd.step_minutes,
                total_ticks=max(1, round(cmd.days * 24 * 60 / cmd.step_minutes)),
                speed=cmd.speed,
                n_shards=n_shards,
            )
            runs[cmd.run_id] = run
            await streams.send(RUNS, cmd.run_id, cmd)
            log.info(
                "run %s started: seed=%s world=%s ticks=%s shards=%s",
                run.run_id,
                run.seed,
                run.world,
                run.total_ticks,
                n_shards,
            )
            await start_tick(run)
            return
        if run is None:
            log.warning("%s for unknown run %s ignored", cmd.command, cmd.run_id)
            return
        await streams.send(RUNS, cmd.run_id, cmd)
        if cmd.command == "pause":
            run.paused = True
        elif cmd.command == "resume":
            run.paused = False
            if run.waiting and not run.finished:
                await advance(run)
        elif cmd.command == "stop":
            run.stopped = True
            if run.waiting:
                run.finished = True
        elif cmd.command == "inject" and cmd.event is not None:
            run.injected.append(cmd.event)

    @streams.app.agent(streams.topic(CLOCK_INBOX), name="advance_clock")
    async def advance_clock(stream: Any) -> None:
        """Start runs, emit ticks, and complete a tick once every shard reported it."""
        async for event in stream.events():
            msg = await streams.decode_or_dead_letter("clock", CLOCK_INBOX, event)
            if msg is None:
                continue
            if isinstance(msg, RunCommanded):
                await on_command(msg)
                continue
            run = runs.get(msg.run_id)
            if run is None:
                log.warning("tick report for unknown run %s ignored", msg.run_id)
                continue
            completed = run.record(msg)
            if completed is None:
                continue
            await streams.send(TICKS, run.run_id, completed)
            if not run.finished and not run.paused:
                await advance(run)
