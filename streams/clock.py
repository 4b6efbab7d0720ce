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

from aiokafka import AIOKafkaConsumer, TopicPartition

from sim.calendar import MINUTES_PER_HOUR, days_to_ticks, minute_of_tick
from streams.app import Streams
from streams.codec import DecodeError, decode
from topics import CLOCK_INBOX, RUNS, SHARD_INBOX, TICKS, TopicSpec
from topics.models import InjectedEvent, RunCommanded, ShardTickDone, TickCompleted, TickStarted
from worldfeed.ids import combine_digests
from worldfeed.settings import Settings

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
    start_minute: int = 0
    current: int = -1  # tick in flight, -1 before the first
    paused: bool = False
    stopped: bool = False
    finished: bool = False
    waiting: bool = False  # tick `current` completed, next not started (paused or timed)
    reports: dict[int, ShardTickDone] = field(default_factory=dict)
    injected: list[InjectedEvent] = field(default_factory=list)
    tick_started_wall: float = 0.0
    last_sent: float = 0.0  # when tick `current` was last (re-)sent, for the watchdog
    recent: list[int] = field(default_factory=list)  # events of the last hour's ticks

    @classmethod
    def from_command(cls, cmd: RunCommanded, n_shards: int) -> RunClock:
        """A new run's clock from its start command."""
        return cls(
            run_id=cmd.run_id,
            seed=cmd.seed,
            world=cmd.world,
            step_minutes=cmd.step_minutes,
            total_ticks=days_to_ticks(cmd.days, cmd.step_minutes),
            speed=cmd.speed,
            n_shards=n_shards,
            start_minute=cmd.start_minute,
        )

    def apply(self, cmd: RunCommanded) -> None:
        """Apply pause / resume / stop / inject to the run's flags."""
        if cmd.command == "pause":
            self.paused = True
        elif cmd.command == "resume":
            self.paused = False
        elif cmd.command == "stop":  # the tick in flight, or one more, is the last
            self.stopped = True
            self.paused = False
        elif cmd.command == "inject" and cmd.event is not None:
            self.injected.append(cmd.event)

    def tick_message(self, tick: int, shard: int) -> TickStarted:
        """The copy of tick ``tick`` for one shard."""
        return TickStarted(
            run_id=self.run_id,
            seed=self.seed,
            world=self.world,
            tick=tick,
            sim_minute=minute_of_tick(self.start_minute, tick, self.step_minutes),
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
        self.recent = (self.recent + [sum(r.events for r in reports)])[-self.ticks_per_hour :]
        self.finished = last
        self.waiting = not last
        return TickCompleted(
            run_id=self.run_id,
            tick=self.current,
            sim_minute=minute_of_tick(self.start_minute, self.current, self.step_minutes),
            state_hash=f"{combine_digests(r.state_digest for r in reports):016x}",
            npcs=sum(r.npcs for r in reports),
            events=sum(r.events for r in reports),
            effects=sum(r.effects for r in reports),
            wall_ms=round((time.perf_counter() - self.tick_started_wall) * 1000, 3),
            last=last,
        )

    @property
    def ticks_per_hour(self) -> int:
        """Ticks in a simulated hour (at least one): the window of ``recent``."""
        return max(1, MINUTES_PER_HOUR // self.step_minutes)

    def next_delay(self) -> float:
        """Seconds to wait before the next tick at this run's speed (0 = as fast as possible)."""
        if self.speed <= 0:
            return 0.0
        budget = self.step_minutes * 60 / self.speed
        return max(0.0, budget - (time.perf_counter() - self.tick_started_wall))


def recover(
    commands: list[RunCommanded], completed: list[TickCompleted], n_shards: int
) -> dict[str, RunClock]:
    """Rebuild the clock's runs from the log: accepted commands and completed ticks.

    A recovered run waits after its last completed tick (``waiting``), so the clock
    resumes with the next one: no tick is skipped, none is repeated.
    """
    runs: dict[str, RunClock] = {}
    for cmd in commands:
        if cmd.command == "start":
            runs.setdefault(cmd.run_id, RunClock.from_command(cmd, n_shards))
        elif cmd.run_id in runs:
            runs[cmd.run_id].apply(cmd)
    for run in runs.values():
        run.injected = []  # which tick took them is not in the log; they were delivered
        run.waiting = True
    last: dict[str, TickCompleted] = {}
    for done in completed:
        if done.run_id in runs and (done.run_id not in last or done.tick > last[done.run_id].tick):
            last[done.run_id] = done
    per_hour: dict[str, dict[int, int]] = {}
    for done in completed:
        per_hour.setdefault(done.run_id, {})[done.tick] = done.events
    for run_id, done in last.items():
        run = runs[run_id]
        run.current = done.tick
        run.finished = done.last
        window = run.ticks_per_hour
        events = per_hour[run_id]
        run.recent = [events.get(t, 0) for t in range(done.tick - window + 1, done.tick + 1)]
    return runs


async def read_log(settings: Settings, spec: TopicSpec) -> list[Any]:
    """Every message of a single-partition topic, from the beginning to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic(spec.name), 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, (await consumer.beginning_offsets([tp]))[tp])
        out: list[Any] = []
        while end and await consumer.position(tp) < end:
            for messages in (await consumer.getmany(tp, timeout_ms=500)).values():
                for m in messages:
                    try:
                        out.append(decode(spec, m.value))
                    except DecodeError:
                        log.warning("skipping unreadable %s message at %s", spec.name, m.offset)
        return out
    finally:
        await consumer.stop()


def register(streams: Streams) -> None:
    """Register the clock agent on the clock inbox, its recovery and its watchdog."""
    settings = streams.settings
    runs: dict[str, RunClock] = {}
    streams.services["clock_runs"] = runs
    n_shards = settings.world_partitions
    tasks: set[asyncio.Future[None]] = set()

    async def send_tick(run: RunClock, shards: list[int] | None = None) -> None:
        run.last_sent = time.perf_counter()
        for shard in range(run.n_shards) if shards is None else shards:
            await streams.send(SHARD_INBOX, str(shard), run.tick_message(run.current, shard), shard)

    async def start_tick(run: RunClock) -> None:
        run.current += 1
        run.waiting = False
        run.reports = {}
        run.tick_started_wall = time.perf_counter()
        await send_tick(run)
        run.injected = []

    async def start_after(run: RunClock, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            if run.waiting and not run.paused and not run.finished:
                await start_tick(run)
        except Exception:
            log.exception("run %s: could not start tick %s", run.run_id, run.current + 1)
            raise

    async def advance(run: RunClock) -> None:
        delay = run.next_delay()
        if delay <= 0:
            await start_tick(run)
        else:
            task = asyncio.ensure_future(start_after(run, delay))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    @streams.app.on_partitions_assigned.connect
    async def recover_runs(app: Any, assigned: Any, **kwargs: Any) -> None:
        inbox = settings.topic(CLOCK_INBOX.name)
        if not any(tp.topic == inbox for tp in assigned) or runs:
            return
        recovered = recover(
            await read_log(settings, RUNS), await read_log(settings, TICKS), n_shards
        )
        runs.update(recovered)
        for run in recovered.values():
            if not run.finished and not run.paused:
                log.info("run %s: resuming after tick %s", run.run_id, run.current)
                await advance(run)

    @streams.app.timer(interval=1.0)
    async def watch_ticks() -> None:
        """Re-send a tick to the shards that have not reported it in time (recovery)."""
        now = time.perf_counter()
        for run in list(runs.values()):
            if run.waiting or run.finished or run.current < 0:
                continue
            if now - run.last_sent >= settings.tick_timeout_s:
                missing = [s for s in range(run.n_shards) if s not in run.reports]
                log.warning(
                    "run %s: tick %s not done after %.0fs; re-sending to shards %s",
                    run.run_id,
                    run.current,
                    settings.tick_timeout_s,
                    missing,
                )
                await send_tick(run, missing)

    async def on_command(cmd: RunCommanded) -> None:
        run = runs.get(cmd.run_id)
        if cmd.command == "start":
            if run is not None:
                log.info("run %s already started; start ignored", cmd.run_id)
                return
            run = runs[cmd.run_id] = RunClock.from_command(cmd, n_shards)
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
        was_waiting = run.waiting and (run.paused or cmd.command == "stop")
        run.apply(cmd)
        log.info(
            "run %s: %s (tick %s, paused=%s, waiting=%s, finished=%s)",
            run.run_id,
            cmd.command,
            run.current,
            run.paused,
            run.waiting,
            run.finished,
        )
        if was_waiting and not run.paused and run.waiting and not run.finished:
            await advance(run)  # resumed, or stopped between ticks: play the (last) tick

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
            if run.waiting or run.finished:
                continue  # a re-sent report for a tick already completed
            completed = run.record(msg)
            if completed is None:
                continue
            await streams.send(TICKS, run.run_id, completed)
            if not run.finished and not run.paused:
                await advance(run)
