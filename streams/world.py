"""World shards: one per partition of the shard inbox, a thin shell over sim.barrier.

:class:`~sim.barrier.ShardBarrier` decides, collects effect batches, applies them at
the tick barrier and says what to emit, send and write; this agent decodes the inbox,
feeds it the messages and carries out its steps on Kafka. The shard's state lives in a
:class:`~streams.changelog.ChangelogTable` backed by a changelog topic (record formats:
:mod:`sim.barrier`); a machine is rebuilt from it whenever a shard is (re)loaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from sim.barrier import ShardBarrier, Step, park_batch, park_decision, warm_seeds
from sim.world import load_world
from streams.app import Streams
from topics import (
    CLOCK_INBOX,
    DECISION_OUTCOMES,
    DECISION_REQUESTS,
    EVENTS,
    EXPOSURES,
    NPC_SNAPSHOTS,
    SHARD_INBOX,
    SNAPSHOTS,
)
from topics.codec import encode
from topics.models import DecisionMade, EffectsBatched, StateRestored, TickStarted
from worldfeed import metrics

log = logging.getLogger(__name__)
WARM_SLICE = 2000  # seed states made between two turns of the event loop
WARM_SETTLE_S = 5.0  # an assignment held this long is warmed (see warm)
SENT_MAX_BYTES = 64 * 2**20  # encoded batches kept until read back (see SentBatches)


class SentBatches:
    """The effect batches this worker sent to the shard inbox, by their encoded bytes,
    until it reads them back.

    Every shard sends every shard, itself included, a batch each tick; a worker reads
    back those of its own shards. A message whose bytes are exactly those of a batch it
    encoded is that batch (decoding is a function of the bytes), so it is taken from
    here instead of decoded again: at 100k NPCs on one worker, decoding the shard's own
    batch took about a tenth of the tick. Only batches for the worker's own shards are
    kept; one never read back (its shard moved meanwhile) leaves oldest first beyond
    ``max_bytes``; a message read again (a redelivery) is decoded as any other.
    """

    def __init__(self, max_bytes: int = SENT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._batches: OrderedDict[bytes, EffectsBatched] = OrderedDict()
        self._bytes = 0

    def add(self, raw: bytes, batch: EffectsBatched) -> None:
        if raw in self._batches or len(raw) > self.max_bytes:
            return
        self._batches[raw] = batch
        self._bytes += len(raw)
        while self._bytes > self.max_bytes:
            old, _ = self._batches.popitem(last=False)
            self._bytes -= len(old)

    def take(self, raw: bytes) -> EffectsBatched | None:
        batch = self._batches.pop(raw, None)
        if batch is not None:
            self._bytes -= len(raw)
        return batch

    def clear(self) -> None:
        self._batches.clear()
        self._bytes = 0


def register(streams: Streams) -> None:
    """Register the world-shard agent and its state table."""
    table = streams.changelog_table("npc-state", SHARD_INBOX)  # restored by streams.changelog
    inbox_topic = streams.settings.topic(SHARD_INBOX.name)
    machines: dict[tuple[str, int], ShardBarrier] = {}
    timer = metrics.TickTimer()
    handled = metrics.STAGE_MESSAGES.labels("world")

    warming: set[asyncio.Future[None]] = set()
    sent = SentBatches()
    mine: set[int] = set()  # the inbox partitions (shards) assigned to this worker

    @streams.app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types only sender/signal
    async def forget_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        # another worker may own these shards now; rebuild from the table if they return
        machines.clear()
        sent.clear()
        mine.difference_update(tp.partition for tp in revoked if tp.topic == inbox_topic)
        timer.forget()
        for task in warming:
            task.cancel()
        metrics.SHARD_SEEDS_READY.clear()

    @streams.app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types only sender/signal
    async def warm_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        shards = sorted(tp.partition for tp in assigned if tp.topic == inbox_topic)
        mine.update(shards)
        if shards:
            task = asyncio.ensure_future(warm(shards))
            warming.add(task)
            task.add_done_callback(warming.discard)

    async def warm(shards: list[int]) -> None:
        """Make the seed states of the shards' NPCs of the configured world before a run
        asks for them (sim.barrier.seeded), a slice at a time between the loop's other
        work: a run's first tick then copies them. Same results either way.

        It starts once the assignment has held for :data:`WARM_SETTLE_S`: workers started
        together join one after the other, and the first is assigned every shard for a
        moment (warming them all would hold every seed and section in its memory)."""
        await asyncio.sleep(WARM_SETTLE_S)  # cancelled by a revocation meanwhile
        world = str(streams.settings.catalog_dir)
        try:
            index = load_world(world)  # loaded at the worker's start: cached
        except Exception as exc:  # noqa: BLE001 - a run names its world; its ticks report it
            log.warning("world %s not loaded, no seeds made: %s", world, exc)
            return
        t0, made = time.perf_counter(), 0
        n_shards = streams.settings.world_partitions
        for shard in shards:
            metrics.SHARD_SEEDS_READY.labels(str(shard)).set(0)
        for shard in shards:
            npc_ids = index.shard_npcs(shard, n_shards)
            for i in range(0, len(npc_ids), WARM_SLICE):
                made += warm_seeds(index, npc_ids[i : i + WARM_SLICE])
                await asyncio.sleep(0)
            metrics.SHARD_SEEDS_READY.labels(str(shard)).set(1)
        log.info("shards %s: %s seed states made in %.1fs", shards, made, time.perf_counter() - t0)

    def restoring(msg: StateRestored) -> TickStarted:
        # the machine of a branch's shard is built like any other, from its first message
        return TickStarted(
            run_id=msg.run_id,
            seed=msg.seed,
            world=msg.world,
            tick=msg.tick,
            sim_minute=msg.start_minute + msg.tick * msg.step_minutes,
            step_minutes=msg.step_minutes,
            shard=msg.shard,
            n_shards=msg.n_shards,
        )

    def machine_for(tick: TickStarted, restoring: bool = False) -> ShardBarrier:
        machine = machines.get((tick.run_id, tick.shard))
        if machine is None:
            machine = ShardBarrier.recover(
                load_world(tick.world),
                tick,
                table.get,
                snapshot_every=streams.settings.snapshot_every_ticks,
                restoring=restoring,
            )
            machines[(tick.run_id, tick.shard)] = machine
        return machine

    async def carry_out(step: Step) -> None:
        """Emit, send and write what a step says; the report last, once the rest is durable."""
        for ev in step.events:
            streams.send_batched(EVENTS, ev.run_id, ev)
        for req in step.requests:  # to the deliberate stage
            streams.send_batched(DECISION_REQUESTS, req.request_id, req)
        for outcome in step.outcomes:
            streams.send_batched(DECISION_OUTCOMES, outcome.run_id, outcome)
        for seen in step.exposures:  # the feed loop: who read which post
            streams.send_batched(EXPOSURES, seen.npc_id, seen)
        for batch in step.batches:
            raw = encode(batch)
            streams.outbox.add(inbox_topic, batch.shard, str(batch.shard).encode(), raw)
            if batch.shard in mine:  # this worker reads it back
                sent.add(raw, batch)
        if step.events or step.batches:
            await streams.outbox.send()  # other shards wait for these batches: off they go
        for write in step.writes:
            table.put(write.partition, write.key, write.value)  # memory + changelog record
        for snap in step.snapshots:
            streams.send_batched(NPC_SNAPSHOTS, snap.npc_id, snap)
        for part in step.parts:
            streams.send_batched(SNAPSHOTS, part.run_id, part)
        if step.report is not None:
            t0 = time.perf_counter()
            await streams.flush()  # events and states are durable before the clock moves on
            log.debug("tick %s: flushed in %.3fs", step.report.tick, time.perf_counter() - t0)
            await streams.send(CLOCK_INBOX, step.report.run_id, step.report, 0)

    async def handle(
        msg: TickStarted | EffectsBatched | StateRestored | DecisionMade, raw: bytes
    ) -> None:
        t0 = time.perf_counter()
        if isinstance(msg, TickStarted):
            timer.started(msg.run_id, msg.shard, msg.tick, t0)
            machine = machine_for(msg)
            step = machine.on_tick(msg)
        elif isinstance(msg, StateRestored):
            machine = machine_for(restoring(msg), restoring=True)
            step = machine.on_restore(msg)
        elif isinstance(msg, DecisionMade):
            found = machines.get((msg.run_id, msg.shard))
            if found is None:  # kept for the machine to find when it is rebuilt
                await carry_out(park_decision(msg, raw))
                return
            machine, step = found, found.on_decision(msg, raw)
            if found.ignored:
                log.debug(
                    "shard %s: %s late or repeated decisions ignored", msg.shard, found.ignored
                )
        else:
            found = machines.get((msg.run_id, msg.shard))
            if found is None:  # its tick has not reached this shard yet, or we restarted
                await carry_out(park_batch(msg, raw, table.get))
                return
            machine, step = found, found.on_batch(msg, raw)
        t1 = time.perf_counter()
        await carry_out(step)
        t2 = time.perf_counter()
        for tick in machine.decided:  # the ticks whose batches are out: the barrier wait starts
            timer.sent(machine.run_id, machine.shard, tick, t2)
        done = machine.finish()
        t3 = time.perf_counter()
        await carry_out(done)
        if done.report is not None:
            timer.done(machine.run_id, machine.shard, done.report.tick, t0, time.perf_counter())
        log.debug(
            "shard %s %s tick %s: step %.3fs (%s events), applied %s writes in %.3fs",
            machine.shard,
            type(msg).__name__,
            msg.tick,
            t1 - t0,
            len(step.events),
            len(done.writes),
            t3 - t2,
        )

    @streams.app.agent(streams.topic(SHARD_INBOX), name="advance_world")
    async def advance_world(stream: Any) -> None:
        """Decide a shard's NPCs on each tick; apply effect batches at the tick barrier."""
        async for event in streams.events(stream):  # acked once handled
            handled.inc()
            await table.ready(event.message.partition)  # restored after a rebalance
            msg: TickStarted | EffectsBatched | StateRestored | DecisionMade | None
            msg = sent.take(event.value)
            if msg is None:
                msg = await streams.decode_or_dead_letter("world", SHARD_INBOX, event)
            if msg is None:
                continue
            if msg.shard != event.message.partition:
                await streams.dead_letter(
                    "world",
                    event,
                    f"message for shard {msg.shard} on partition {event.message.partition}",
                )
                continue
            try:
                await handle(msg, event.value)
                # what the message wrote goes to the producer before the message is acked:
                # faust flushes the producer before it commits the offset, and a record
                # still in the outbox would be lost to a rebalance that commits the offset
                # and rebuilds the table from the changelog
                await streams.outbox.send()
            except Exception as exc:
                log.exception("world shard failed on %s", type(msg).__name__)
                await streams.dead_letter("world", event, f"{type(exc).__name__}: {exc}")
