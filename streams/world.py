"""World shards: one per partition of the shard inbox.

On ``TickStarted`` a shard decides what each of its NPCs does (reading state as of
the start of the tick), emits the events, and sends every shard one batch of the
effects meant for its NPCs. On ``EffectsBatched`` it collects; once it has decided
the tick and holds one batch from every shard, it applies the effects in canonical
order, persists the NPCs that changed (faust table, changelog-backed) and reports
the tick done to the clock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from sim.decide import decide_shard
from sim.state import State, apply_effects, canonical_order, digest, seed_state
from sim.world import WorldIndex, load_world, shard_of
from streams.app import Streams
from topics import CLOCK_INBOX, EVENTS, NPC_SNAPSHOTS, SHARD_INBOX
from topics.models import Effect, EffectsBatched, NpcSnapshotted, ShardTickDone, TickStarted
from worldfeed.ids import combine_digests

log = logging.getLogger(__name__)


@dataclass
class ShardRun:
    """What one shard holds in memory for one run (rebuilt from the table after a restart)."""

    run_id: str
    index: WorldIndex
    shard: int
    n_shards: int
    step_minutes: int = 15
    states: dict[str, State] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)
    decided: dict[int, int] = field(default_factory=dict)  # tick -> events emitted
    finished: int = -1  # last tick whose effects were applied
    dirty: set[str] = field(default_factory=set)  # changed since the last snapshot
    batches: dict[int, dict[int, list[Effect]]] = field(default_factory=lambda: defaultdict(dict))


def state_key(run_id: str, npc_id: str) -> str:
    """Table key of an NPC's state in a run."""
    return f"{run_id}/{npc_id}"


def register(streams: Streams) -> None:
    """Register the world-shard agent and its state table."""
    table = streams.app.Table(
        "npc-state",
        partitions=streams.settings.world_partitions,
        schema=faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
    )
    runs: dict[tuple[str, int], ShardRun] = {}
    streams.services["shard_runs"] = runs

    def persist(run: ShardRun, npc_id: str) -> None:
        table[state_key(run.run_id, npc_id).encode()] = orjson.dumps(run.states[npc_id])

    def shard_run(tick: TickStarted) -> ShardRun:
        key = (tick.run_id, tick.shard)
        run = runs.get(key)
        if run is None:
            run = ShardRun(
                tick.run_id, load_world(tick.world), tick.shard, tick.n_shards, tick.step_minutes
            )
            for npc_id in run.index.shard_npcs(tick.shard, tick.n_shards):
                raw = table.get(state_key(tick.run_id, npc_id).encode())
                if raw is None:  # seeding: idempotent, the key is the NPC id
                    run.states[npc_id] = seed_state(run.index, npc_id)
                    persist(run, npc_id)
                else:
                    run.states[npc_id] = orjson.loads(raw)
                run.digests[npc_id] = digest(npc_id, run.states[npc_id])
            run.dirty = set(run.states)
            runs[key] = run
            log.info(
                "shard %s/%s holds %s NPCs of run %s",
                tick.shard,
                tick.n_shards,
                len(run.states),
                tick.run_id,
            )
        return run

    async def on_tick(tick: TickStarted) -> None:
        run = shard_run(tick)
        if tick.tick in run.decided or tick.tick <= run.finished:
            return  # redelivered tick: already decided and sent
        events = decide_shard(run.index, tick, run.states)
        outgoing: dict[int, list[Effect]] = {q: [] for q in range(run.n_shards)}
        for ev in events:
            await streams.send(EVENTS, ev.run_id, ev)
            for eff in ev.effects:
                outgoing[shard_of(eff.npc_id, run.n_shards)].append(eff)
        for q, effects in outgoing.items():
            batch = EffectsBatched(
                run_id=run.run_id,
                tick=tick.tick,
                shard=q,
                from_shard=run.shard,
                n_shards=run.n_shards,
                effects=effects,
            )
            await streams.send(SHARD_INBOX, str(q), batch, q)
        run.decided[tick.tick] = len(events)
        await maybe_finish(run, tick.tick)

    async def on_batch(batch: EffectsBatched) -> None:
        run = runs.get((batch.run_id, batch.shard))
        if run is None:
            log.warning(
                "effects for run %s shard %s before its first tick; dropped",
                batch.run_id,
                batch.shard,
            )
            return
        run.batches[batch.tick][batch.from_shard] = batch.effects
        await maybe_finish(run, batch.tick)

    async def maybe_finish(run: ShardRun, tick: int) -> None:
        if tick not in run.decided or len(run.batches.get(tick, {})) < run.n_shards:
            return
        by_npc: dict[str, list[Effect]] = defaultdict(list)
        effects = canonical_order(e for batch in run.batches.pop(tick).values() for e in batch)
        for eff in effects:
            by_npc[eff.npc_id].append(eff)
        for npc_id in sorted(by_npc):
            if npc_id not in run.states:
                log.warning("effect for NPC %s not owned by shard %s", npc_id, run.shard)
                continue
            if apply_effects(run.states[npc_id], by_npc[npc_id], tick):
                run.digests[npc_id] = digest(npc_id, run.states[npc_id])
                persist(run, npc_id)
                run.dirty.add(npc_id)
        run.finished = tick
        every = streams.settings.snapshot_every_ticks
        if every and (tick + 1) % every == 0:
            await snapshot(run, tick)
        await streams.flush()  # events and states are durable before the clock moves on
        done = ShardTickDone(
            run_id=run.run_id,
            tick=tick,
            shard=run.shard,
            n_shards=run.n_shards,
            npcs=len(run.states),
            events=run.decided.pop(tick),
            effects=len(effects),
            state_digest=combine_digests(run.digests.values()),
        )
        await streams.send(CLOCK_INBOX, run.run_id, done, 0)

    async def snapshot(run: ShardRun, tick: int) -> None:
        hour = (tick * run.step_minutes // 60) % 24
        for npc_id in sorted(run.dirty):
            state = run.states[npc_id]
            snap = NpcSnapshotted(
                run_id=run.run_id,
                tick=tick,
                npc_id=npc_id,
                place=run.index.location[npc_id][hour],
                reputation=state["rep"],
                relationships=state["rel"],
                memories=state["mem"],
                goals=state["goal"],
                state_hash=f"{run.digests[npc_id]:016x}",
            )
            await streams.send(NPC_SNAPSHOTS, npc_id, snap)
        run.dirty.clear()

    @streams.app.agent(streams.topic(SHARD_INBOX), name="advance_world")
    async def advance_world(stream: Any) -> None:
        """Decide a shard's NPCs on each tick; apply effect batches at the tick barrier."""
        async for event in stream.events():
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
                if isinstance(msg, TickStarted):
                    await on_tick(msg)
                else:
                    await on_batch(msg)
            except Exception as exc:  # noqa: BLE001 - a bad catalog/world must not kill the shard
                log.exception("world shard failed on %s", type(msg).__name__)
                await streams.dead_letter("world", event, f"{type(exc).__name__}: {exc}")
