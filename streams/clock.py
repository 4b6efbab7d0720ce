"""The clock's shell: reads the clock inbox, sends ticks, records completed ones.

The run's state and the tick barrier are :class:`sim.clock.RunClock` (pure). The
clock's input is one single-partition topic, so commands and reports are handled in
one order by one agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bus.log import read_log
from sim.clock import RunClock, recover
from sim.snapshot import clock_part
from sim.world import load_world
from streams.app import Streams
from topics import CLOCK_INBOX, RUNS, SHARD_INBOX, SNAPSHOTS, TICKS
from topics.models import RunCommanded
from worldfeed import metrics

log = logging.getLogger(__name__)


async def catalog_digest(world: str) -> str | None:
    """The digest of a world's catalog (loaded off the event loop; cached per process)."""
    try:
        index = await asyncio.to_thread(load_world, world)
    except Exception as exc:  # noqa: BLE001 - the shards dead-letter an unknown world's ticks
        log.warning("world %r: no catalog digest (%s)", world, exc)
        return None
    return index.catalog.digest


def register(streams: Streams) -> None:
    """Register the clock agent on the clock inbox, its recovery and its watchdog."""
    settings = streams.settings
    runs: dict[str, RunClock] = {}
    n_shards = settings.world_partitions
    every = settings.world_snapshot_every_ticks
    tasks: set[asyncio.Future[None]] = set()
    timers: dict[str, int] = {}  # run id -> its latest timer: only that one starts a tick

    async def send_tick(run: RunClock, shards: list[int] | None = None) -> None:
        run.last_sent = time.perf_counter()
        for shard in range(run.n_shards) if shards is None else shards:
            await streams.send(SHARD_INBOX, str(shard), run.tick_message(run.current, shard), shard)

    async def start_tick(run: RunClock) -> None:
        run.start_next(time.perf_counter())
        await send_tick(run)

    async def start_after(run: RunClock, delay: float, timer: int) -> None:
        try:
            await asyncio.sleep(delay)
            stale = timers.get(run.run_id) != timer  # a newer timer (resume, speed) replaced it
            if not stale and run.waiting and not run.paused and not run.finished:
                await start_tick(run)
        except Exception:
            log.exception("run %s: could not start tick %s", run.run_id, run.current + 1)
            raise

    async def advance(run: RunClock) -> None:
        delay = run.next_delay(time.perf_counter())
        timers[run.run_id] = timer = timers.get(run.run_id, 0) + 1
        if delay <= 0:
            await start_tick(run)
        else:
            task = asyncio.ensure_future(start_after(run, delay, timer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    @streams.app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types only sender/signal
    async def recover_runs(app: Any, assigned: Any, **kwargs: Any) -> None:
        inbox = settings.topic(CLOCK_INBOX.name)
        if not any(tp.topic == inbox for tp in assigned) or runs:
            return
        recovered = recover(
            await read_log(settings, RUNS), await read_log(settings, TICKS), n_shards, every
        )
        runs.update(recovered)
        for run in recovered.values():
            if not run.finished and not run.paused:
                log.info("run %s: resuming after tick %s", run.run_id, run.current)
                await advance(run)

    @streams.app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust: untyped
    async def watch_ticks() -> None:
        """Re-send a tick to the shards that have not reported it in time (recovery)."""
        now = time.perf_counter()
        for run in list(runs.values()):
            if run.waiting or run.finished or run.current < 0:
                continue
            if now - run.last_sent >= settings.tick_timeout_s:
                missing = run.missing()
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
            if cmd.catalog_digest is None:  # the manifest names the catalog the run used
                cmd = cmd.model_copy(update={"catalog_digest": await catalog_digest(cmd.world)})
            run = runs[cmd.run_id] = RunClock.from_command(cmd, n_shards, every)
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
        # waiting for the next tick: a resume or stop starts it now, a new speed re-times it
        was_waiting = run.waiting and (run.paused or cmd.command in ("stop", "speed"))
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
        handled = metrics.STAGE_MESSAGES.labels("clock")
        async for event in stream.events():
            handled.inc()
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
            completed = run.record(msg, time.perf_counter())
            if completed is None:
                continue
            await streams.send(TICKS, run.run_id, completed)
            metrics.TICKS_COMPLETED.inc()
            metrics.LAST_TICK.set(completed.tick)
            if run.snapshotting:  # the shards sent their parts before their reports
                part = clock_part(run.run_id, run.current, n_shards, run.start, run.state())
                await streams.send(SNAPSHOTS, run.run_id, part)
            if not run.finished and not run.paused:
                await advance(run)
