"""World shards: one per partition of the shard inbox.

On ``TickStarted`` a shard decides what each of its NPCs does (reading state as of
the start of the tick), emits the events, and sends every shard one batch of the
effects meant for its NPCs. On ``EffectsBatched`` it collects; once it has decided
the tick and holds one batch from every shard, it applies the effects in canonical
order, persists what changed and reports the tick done to the clock.

Recovery (a worker killed, a partition moved to another worker): everything a shard
needs is in its faust table, backed by a changelog topic, on the shard's partition:

* ``<run>/<npc>`` -> ``{"t": tick, "s": state, "p": state before tick t}``. A shard that
  died half-way through persisting tick t rolls every NPC with ``t > finished`` back
  to ``p``, so a tick is never applied twice.
* ``<run>/~meta/<shard>`` -> the last finished tick and its ``ShardTickDone``.
* ``<run>/~in/<shard>/<from>/<part>`` -> the latest effect batch (part) received from
  each shard.

An NPC without a record still has its seed state (derived from the catalog, never
written). The state at the start of the last finished tick is ``p`` for the NPCs that
tick changed and ``s`` for the rest, so a finished tick can be decided again exactly,
to re-send its batches to a shard that lost them.

A repeated ``TickStarted`` (the clock's watchdog re-sends a tick that does not
complete) makes a shard re-send what the others may be missing: its batches and, if
it already finished the tick, its report. Everything it re-sends is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from sim.decide import decide_shard
from sim.state import State, apply_effects, canonical_order, digest, seed_state
from sim.world import WorldIndex, load_world, shard_of
from streams.app import Streams
from streams.codec import encode
from topics import CLOCK_INBOX, EVENTS, NPC_SNAPSHOTS, SHARD_INBOX
from topics.models import Effect, EffectsBatched, NpcSnapshotted, ShardTickDone, TickStarted
from worldfeed.ids import combine_digests

log = logging.getLogger(__name__)


@dataclass
class ShardRun:
    """What one shard holds in memory for one run (a cache of its table)."""

    run_id: str
    index: WorldIndex
    shard: int
    n_shards: int
    step_minutes: int = 15
    start_minute: int = 0
    states: dict[str, State] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)
    finished: int = -1  # last tick whose effects were applied
    last_done: ShardTickDone | None = None
    decided: dict[int, int] = field(default_factory=dict)  # tick -> events emitted
    outgoing: dict[int, list[EffectsBatched]] = field(default_factory=dict)
    # tick -> (from shard, part) -> effects, and tick -> from shard -> parts expected
    batches: dict[int, dict[tuple[int, int], list[Effect]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    parts: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    prev: dict[str, State] = field(default_factory=dict)  # before the last finished tick
    dirty: set[str] = field(default_factory=set)  # changed since the last snapshot


def npc_key(run_id: str, npc_id: str) -> bytes:
    """Table key of an NPC's state in a run."""
    return f"{run_id}/{npc_id}".encode()


def meta_key(run_id: str, shard: int) -> bytes:
    """Table key of a shard's progress."""
    return f"{run_id}/~meta/{shard}".encode()


def in_key(run_id: str, shard: int, from_shard: int, part: int) -> bytes:
    """Table key of the latest batch part a shard received from another."""
    return f"{run_id}/~in/{shard}/{from_shard}/{part}".encode()


MAX_EFFECTS_PER_MESSAGE = 1000  # keeps every message and table record far below 1 MiB


def split_batches(
    run_id: str, tick: int, from_shard: int, n_shards: int, events: list[Any]
) -> list[EffectsBatched]:
    """The effects of a shard's events, one batch per target shard, split into parts."""
    outgoing: dict[int, list[Effect]] = {q: [] for q in range(n_shards)}
    for ev in events:
        for eff in ev.effects:
            outgoing[shard_of(eff.npc_id, n_shards)].append(eff)
    batches = []
    for q, effects in outgoing.items():
        chunks = [
            effects[i : i + MAX_EFFECTS_PER_MESSAGE]
            for i in range(0, len(effects), MAX_EFFECTS_PER_MESSAGE)
        ] or [[]]
        batches.extend(
            EffectsBatched(
                run_id=run_id,
                tick=tick,
                shard=q,
                from_shard=from_shard,
                n_shards=n_shards,
                part=i,
                parts=len(chunks),
                effects=chunk,
            )
            for i, chunk in enumerate(chunks)
        )
    return batches


def register(streams: Streams) -> None:
    """Register the world-shard agent and its state table."""
    table = streams.app.Table(
        "npc-state",
        partitions=streams.settings.world_partitions,
        key_type=bytes,  # bytes -> the "raw" codec, for writes and changelog recovery alike
        value_type=bytes,
    )
    runs: dict[tuple[str, int], ShardRun] = {}
    streams.services["shard_runs"] = runs
    inbox_topic = streams.settings.topic(SHARD_INBOX.name)

    def put(shard: int, key: bytes, value: bytes) -> None:
        """Write a table record: the store now, its changelog record through the outbox.

        What ``table[key] = value`` does, minus faust's per-record send machinery (a
        tick writes thousands of records). The changelog record is the same bytes on the
        same partition, so faust's changelog recovery restores it as usual. (With the
        rocksdb store faust would also note the record's offset as persisted; without
        that note a restarted rocksdb table re-reads more of its changelog than it needs
        to, and ends in the same state.)
        """
        table.data[key] = value
        streams.outbox.add(changelog, shard, key, value)

    def queue(batches: list[EffectsBatched]) -> None:
        for batch in batches:
            streams.outbox.add(inbox_topic, batch.shard, str(batch.shard).encode(), encode(batch))

    @streams.app.on_partitions_revoked.connect
    async def forget_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        # another worker may own these shards now; rebuild from the table if they return
        runs.clear()

    changelog = table.changelog_topic.get_topic_name()

    def load(raw: bytes | None) -> Any:
        return None if raw is None else orjson.loads(raw)

    def shard_run(tick: TickStarted) -> ShardRun:
        key = (tick.run_id, tick.shard)
        run = runs.get(key)
        if run is not None:
            return run
        run = ShardRun(
            tick.run_id,
            load_world(tick.world),
            tick.shard,
            tick.n_shards,
            tick.step_minutes,
            tick.sim_minute - tick.tick * tick.step_minutes,
        )
        meta = load(table.get(meta_key(run.run_id, run.shard)))
        if meta is not None:
            run.finished = meta["finished"]
            run.last_done = ShardTickDone.model_validate(meta["done"])
        for npc_id in run.index.shard_npcs(tick.shard, tick.n_shards):
            rec = load(table.get(npc_key(run.run_id, npc_id)))
            if rec is None:  # never changed: the seed state, derived from the catalog
                state = seed_state(run.index, npc_id)
            elif rec["t"] > run.finished:  # persisted by a tick that never finished
                state = rec["p"]
            else:
                state = rec["s"]
                if rec["t"] == run.finished:
                    run.prev[npc_id] = rec["p"]
            run.states[npc_id] = state
            run.digests[npc_id] = digest(npc_id, state)
        nxt = run.finished + 1
        for q in range(run.n_shards):
            part, parts = 0, 1
            while part < parts:
                got = load(table.get(in_key(run.run_id, run.shard, q, part)))
                if got is None or got["tick"] != nxt:
                    break
                parts = got["parts"]
                run.parts[nxt][q] = parts
                run.batches[nxt][(q, part)] = [Effect.model_validate(e) for e in got["effects"]]
                part += 1
        run.dirty = set(run.states)
        runs[key] = run
        log.info(
            "shard %s/%s holds %s NPCs of run %s (finished tick %s)",
            tick.shard,
            tick.n_shards,
            len(run.states),
            tick.run_id,
            run.finished,
        )
        return run

    async def on_tick(tick: TickStarted) -> None:
        run = shard_run(tick)
        if tick.tick < run.finished:
            return
        if tick.tick == run.finished:  # the clock is missing reports or batches: re-send
            start = {**run.states, **run.prev}  # the shard's state at the start of the tick
            again = decide_shard(run.index, tick, start)
            queue(split_batches(run.run_id, tick.tick, run.shard, run.n_shards, again))
            await streams.outbox.send()
            if run.last_done is not None:
                await streams.send(CLOCK_INBOX, run.run_id, run.last_done, 0)
            return
        if tick.tick in run.decided:
            queue(run.outgoing.get(tick.tick, []))  # sent after the message (advance_world)
            return
        t0 = time.perf_counter()
        events = decide_shard(run.index, tick, run.states)
        t1 = time.perf_counter()
        batches = split_batches(run.run_id, tick.tick, run.shard, run.n_shards, events)
        run.decided[tick.tick] = len(events)
        run.outgoing = {tick.tick: batches}
        for ev in events:
            streams.send_batched(EVENTS, ev.run_id, ev)
        queue(batches)
        await streams.outbox.send()
        log.debug(
            "shard %s tick %s: decided %s events in %.3fs, queued in %.3fs",
            run.shard,
            tick.tick,
            len(events),
            t1 - t0,
            time.perf_counter() - t1,
        )
        await maybe_finish(run, tick.tick)

    def keep(batch: EffectsBatched, raw: bytes) -> None:
        # the message as received: shard_run reads its tick, parts and effects back
        put(batch.shard, in_key(batch.run_id, batch.shard, batch.from_shard, batch.part), raw)

    async def on_batch(batch: EffectsBatched, raw: bytes) -> None:
        run = runs.get((batch.run_id, batch.shard))
        if run is None:
            meta = load(table.get(meta_key(batch.run_id, batch.shard)))
            if meta is not None and meta["finished"] >= batch.tick:
                return  # a re-sent batch for a tick this shard already finished
            keep(batch, raw)  # the tick that uses it has not arrived here yet (or we restarted)
            return
        if batch.tick <= run.finished:
            return  # re-sent batch for a finished tick
        run.batches[batch.tick][(batch.from_shard, batch.part)] = batch.effects
        run.parts[batch.tick][batch.from_shard] = batch.parts
        keep(batch, raw)
        await maybe_finish(run, batch.tick)

    def complete(run: ShardRun, tick: int) -> bool:
        parts = run.parts.get(tick, {})
        got = run.batches.get(tick, {})
        return len(parts) == run.n_shards and all(
            (q, i) in got for q, n in parts.items() for i in range(n)
        )

    async def maybe_finish(run: ShardRun, tick: int) -> None:
        if tick not in run.decided or not complete(run, tick):
            return
        t0 = time.perf_counter()
        run.parts.pop(tick, None)
        by_npc: dict[str, list[Effect]] = defaultdict(list)
        effects = canonical_order(e for part in run.batches.pop(tick).values() for e in part)
        run.prev = {}
        for eff in effects:
            by_npc[eff.npc_id].append(eff)
        for npc_id in sorted(by_npc):
            state = run.states.get(npc_id)
            if state is None:
                log.warning("effect for NPC %s not owned by shard %s", npc_id, run.shard)
                continue
            before = orjson.dumps(state)
            run.prev[npc_id] = orjson.loads(before)
            if apply_effects(state, by_npc[npc_id], tick):
                run.digests[npc_id] = digest(npc_id, state)
                put(
                    run.shard,
                    npc_key(run.run_id, npc_id),
                    b'{"t":%d,"s":%b,"p":%b}' % (tick, orjson.dumps(state), before),
                )
                run.dirty.add(npc_id)
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
        run.finished, run.last_done = tick, done
        put(
            run.shard,
            meta_key(run.run_id, run.shard),
            orjson.dumps({"finished": tick, "done": done.model_dump(mode="json")}),
        )
        every = streams.settings.snapshot_every_ticks
        if every and (tick + 1) % every == 0:
            await snapshot(run, tick)
        t1 = time.perf_counter()
        await streams.flush()  # events and states are durable before the clock moves on
        log.debug(
            "shard %s tick %s: applied %s effects in %.3fs, flushed in %.3fs",
            run.shard,
            tick,
            len(effects),
            t1 - t0,
            time.perf_counter() - t1,
        )
        await streams.send(CLOCK_INBOX, run.run_id, done, 0)

    async def snapshot(run: ShardRun, tick: int) -> None:
        hour = (run.start_minute + tick * run.step_minutes) // 60 % 24
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
            streams.send_batched(NPC_SNAPSHOTS, npc_id, snap)
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
                    await on_batch(msg, event.value)
                # what the message wrote goes to the producer before the message is acked:
                # faust flushes the producer before it commits the offset. A kept effect
                # batch used to wait in the outbox for the tick's end; a rebalance
                # committed its offset meanwhile, the shard's table was rebuilt from the
                # changelog without it, and the tick never completed.
                await streams.outbox.send()
            except Exception as exc:  # noqa: BLE001 - a bad catalog/world must not kill the shard
                log.exception("world shard failed on %s", type(msg).__name__)
                await streams.dead_letter("world", event, f"{type(exc).__name__}: {exc}")
