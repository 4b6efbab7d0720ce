"""One world shard's tick protocol, as a pure state machine (no I/O).

On ``TickStarted`` a shard decides what each of its NPCs does (reading state as of the
start of the tick), emits the events, and sends every shard one batch of the effects
meant for its NPCs. On ``EffectsBatched`` it collects; once it has decided the tick and
holds one batch from every shard, it applies the effects in canonical order, persists
what changed and reports the tick done to the clock.

:class:`ShardBarrier` holds that protocol for one run and shard. Its inputs are the
messages and the records of the shard's table (read back only when the machine is
built); its outputs are :class:`Step` values that say what to emit, send and write.
The shell (``streams/world.py`` on Kafka, :mod:`sim.local` in process) carries them out.

Recovery (a worker killed, a partition moved to another worker): everything a shard
needs is in its table, on the shard's partition:

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

The report carries the shard's integer tallies for the clock's tick-wide inputs (see
:mod:`sim.director`): the render requests its events make at their base score, the
director rules it fired, and its relationships' affinity sum and NPCs in conflict
after the tick (kept up to date for the NPCs each tick changes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sim.calendar import hour_of, minute_of_tick
from sim.decide import Ctx, decide_shard
from sim.deliberate import (
    deliberating,
    due_hour,
    pending_of,
    requests_for,
    resolve,
    shard_salient,
)
from sim.director import fired_on_shard, relationship_tally
from sim.feed import FeedRead, add_counts, posts_of, read_feed, top_posts
from sim.impact import Story, render_requests
from sim.snapshot import shard_parts
from sim.state import State, apply_effects, canonical_order, digest, seed_state
from sim.world import WorldIndex, shard_of
from topics.models import (
    DecisionMade,
    DecisionRequested,
    DecisionResolved,
    Effect,
    EffectsBatched,
    EventHappened,
    FeedPost,
    NpcSnapshotted,
    PostSeen,
    ShardTickDone,
    SnapshotPart,
    StateRestored,
    TickStarted,
)
from worldfeed.gcpause import gc_paused
from worldfeed.ids import combine_digests

log = logging.getLogger(__name__)

MAX_EFFECTS_PER_MESSAGE = 1000  # keeps every message and table record far below 1 MiB

Read = Callable[[bytes], bytes | None]
"""A read-only view of the shard's table: key -> record bytes, None when absent."""


def npc_key(run_id: str, npc_id: str) -> bytes:
    """Table key of an NPC's state in a run."""
    return f"{run_id}/{npc_id}".encode()


def meta_key(run_id: str, shard: int) -> bytes:
    """Table key of a shard's progress."""
    return f"{run_id}/~meta/{shard}".encode()


def decision_key(run_id: str, shard: int, request_id: str) -> bytes:
    """Table key of a decision a shard received (kept until its due tick is finished)."""
    return f"{run_id}/~dec/{shard}/{request_id}".encode()


def restore_key(run_id: str, shard: int) -> bytes:
    """Table key of the restore parts a branch's shard received so far."""
    return f"{run_id}/~restore/{shard}".encode()


def in_key(run_id: str, shard: int, from_shard: int, part: int) -> bytes:
    """Table key of the latest batch part a shard received from another."""
    return f"{run_id}/~in/{shard}/{from_shard}/{part}".encode()


def split_batches(
    run_id: str,
    tick: int,
    from_shard: int,
    n_shards: int,
    events: Iterable[EventHappened],
    max_effects: int = MAX_EFFECTS_PER_MESSAGE,
    extra: Iterable[Effect] = (),
) -> list[EffectsBatched]:
    """The effects of a shard's events (and ``extra`` ones: what its NPCs read), one batch
    per target shard, split into parts."""
    outgoing: dict[int, list[Effect]] = {q: [] for q in range(n_shards)}
    for ev in events:
        for eff in ev.effects:
            outgoing[shard_of(eff.npc_id, n_shards)].append(eff)
    for eff in extra:
        outgoing[shard_of(eff.npc_id, n_shards)].append(eff)
    batches: list[EffectsBatched] = []
    for q, effects in outgoing.items():
        chunks = [effects[i : i + max_effects] for i in range(0, len(effects), max_effects)] or [[]]
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


def base_render_requests(index: WorldIndex, events: Iterable[EventHappened]) -> int:
    """Render requests the impact stage makes for these events at their base score."""
    return sum(len(render_requests(index, Story(ev))) for ev in events)


@dataclass
class FeedTally:
    """A shard's part of a tick's feed loop (:mod:`sim.feed`), until the tick finishes."""

    posts: list[FeedPost]  # the tick's top posts on this shard
    counts: dict[str, list[int]]  # post key -> [exposures, likes, reposts, replies]
    exposures: int
    reactions: int


@dataclass(frozen=True)
class TableWrite:
    """One record of the shard's table, to be stored and sent to its changelog partition."""

    key: bytes
    value: bytes
    partition: int


@dataclass
class Step:
    """What the shell does after one input, in field order.

    ``events``, ``batches`` and ``writes`` go to the producer before the input message
    is acknowledged; ``snapshots`` and ``parts`` after the writes. ``report`` goes last, and only
    after everything else is flushed (acknowledged by the broker): the clock starts the
    next tick on it, so this tick's events and states must be durable first.
    """

    events: list[EventHappened] = field(default_factory=list)
    batches: list[EffectsBatched] = field(default_factory=list)
    writes: list[TableWrite] = field(default_factory=list)
    snapshots: list[NpcSnapshotted] = field(default_factory=list)
    parts: list[SnapshotPart] = field(default_factory=list)  # of a full-world snapshot
    requests: list[DecisionRequested] = field(default_factory=list)  # to deliberate
    outcomes: list[DecisionResolved] = field(default_factory=list)  # decisions applied
    exposures: list[PostSeen] = field(default_factory=list)  # posts read (the feed loop)
    report: ShardTickDone | None = None


def seeded(index: WorldIndex, npc_id: str) -> tuple[State, int, tuple[int, int, int]]:
    """A fresh copy of the NPC's seed state (:func:`~sim.state.seed_state`), its digest
    and its relationship tally. The seed does not depend on the run: it is made once per
    world and process and kept as JSON (:attr:`WorldIndex.seeds`), so a run's first tick
    copies it instead of deriving it (at 100k NPCs: 0.3 s instead of 2 s), and a worker
    makes its shards' seeds before any run (:func:`warm_seeds`)."""
    blob, state_digest, tally = _seed(index, npc_id)
    return orjson.loads(blob), state_digest, tally


def _seed(index: WorldIndex, npc_id: str) -> tuple[bytes, int, tuple[int, int, int]]:
    """The NPC's seed as kept: made on first use."""
    made = index.seeds.get(npc_id)
    if made is None:
        state = seed_state(index, npc_id)
        made = index.seeds[npc_id] = (
            orjson.dumps(state),
            digest(npc_id, state),
            relationship_tally(state),
        )
    return made


def warm_seeds(index: WorldIndex, npc_ids: Iterable[str]) -> int:
    """Make the seeds of ``npc_ids`` not made yet (decoding their sections of the cached
    index); how many were made."""
    before = len(index.seeds)
    for npc_id in npc_ids:
        _seed(index, npc_id)
    return len(index.seeds) - before


def _load(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def park_batch(batch: EffectsBatched, raw: bytes, read: Read) -> Step:
    """A batch for a shard whose machine is not loaded: kept in the table for recovery.

    Its tick has not reached this shard yet, or the shard restarted. A batch for a tick
    the shard already finished (a re-send) is dropped.
    """
    meta = _load(read(meta_key(batch.run_id, batch.shard)))
    if meta is not None and meta["finished"] >= batch.tick:
        return Step()
    return Step(writes=[_keep(batch, raw)])


def park_decision(msg: DecisionMade, raw: bytes) -> Step:
    """A decision for a shard whose machine is not loaded: kept in the table, where the
    machine finds it when it is rebuilt (for the NPCs whose decision is pending)."""
    return Step(
        writes=[TableWrite(decision_key(msg.run_id, msg.shard, msg.request_id), raw, msg.shard)]
    )


def _keep(batch: EffectsBatched, raw: bytes) -> TableWrite:
    # the message as received: recovery reads its tick, parts and effects back
    key = in_key(batch.run_id, batch.shard, batch.from_shard, batch.part)
    return TableWrite(key, raw, batch.shard)


@dataclass
class ShardBarrier:
    """One shard's tick protocol for one run (pure: no I/O); a cache of its table."""

    run_id: str
    index: WorldIndex
    shard: int
    n_shards: int
    step_minutes: int = 15
    start_minute: int = 0
    snapshot_every: int = 0  # ticks between NPC snapshots; 0: none
    max_effects: int = MAX_EFFECTS_PER_MESSAGE  # per batch part
    states: dict[str, State] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)
    finished: int = -1  # last tick whose effects were applied
    last_done: ShardTickDone | None = None
    decided: dict[int, int] = field(default_factory=dict)  # tick -> events emitted
    outgoing: dict[int, list[EffectsBatched]] = field(default_factory=dict)
    # tick -> (from shard, part) -> effects, and tick -> from shard -> parts expected
    batches: defaultdict[int, dict[tuple[int, int], list[Effect]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    parts: defaultdict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    # JSON of the states before the last finished tick, of the NPCs it changed (decoded
    # only to decide that tick again)
    prev: dict[str, bytes] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # changed since the last snapshot
    # tick -> (render requests of its events, director rules fired), until it finishes
    tallies: dict[int, tuple[int, list[str]]] = field(default_factory=dict)
    feed_tallies: dict[int, FeedTally] = field(default_factory=dict)  # the feed loop's
    # per NPC and in total: (affinity sum in thousandths, relationships, in conflict)
    rel_tally: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    rel_total: list[int] = field(default_factory=lambda: [0, 0, 0])
    full_snapshots: set[int] = field(default_factory=set)  # ticks that write a snapshot
    restored: set[int] = field(default_factory=set)  # restore parts received (a branch)
    # deliberation (sim.deliberate): the run's budget, the decisions received (request id ->
    # answer), a tick that waits for the decisions due at it, and per tick the requests made
    budget: int = 0
    seed: int = 0
    deadline: int = 1
    decisions: dict[str, DecisionMade] = field(default_factory=dict)
    waiting: TickStarted | None = None
    asked: dict[int, dict[str, list[Any]]] = field(default_factory=dict)  # npc -> [due, id]
    ignored: int = 0  # decisions that came after their tick was decided, or twice

    @classmethod
    @gc_paused()  # every NPC of the shard: seeded or read back
    def recover(
        cls,
        index: WorldIndex,
        tick: TickStarted,
        read: Read,
        snapshot_every: int = 0,
        max_effects: int = MAX_EFFECTS_PER_MESSAGE,
        restoring: bool = False,
    ) -> ShardBarrier:
        """The machine of a tick's run and shard, rebuilt from the shard's table records.

        ``restoring``: built for a branch's restore (:meth:`on_restore`). Until the restore
        is complete, NPCs it has not brought yet are not seeded from the catalog (their
        restored states replace any seed; at 100k NPCs seeding took seconds of a branch's
        start); whatever a complete restore did not bring is seeded then.
        """
        run = cls(
            tick.run_id,
            index,
            tick.shard,
            tick.n_shards,
            tick.step_minutes,
            tick.sim_minute - tick.tick * tick.step_minutes,
            snapshot_every,
            max_effects,
        )
        meta = _load(read(meta_key(run.run_id, run.shard)))
        if meta is not None:
            run.finished = meta["finished"]
            if meta["done"] is not None:  # None: the tick a branch was restored at
                run.last_done = ShardTickDone.model_validate(meta["done"])
        receipt = _load(read(restore_key(run.run_id, run.shard)))
        midway = receipt is not None and run.finished < receipt["tick"]
        if midway:
            run.restored = set(receipt["got"])
        unseeded = restoring and (meta is None or midway)  # the restore brings the states
        for npc_id in index.shard_npcs(run.shard, run.n_shards):
            rec = _load(read(npc_key(run.run_id, npc_id)))
            if rec is None and unseeded:
                continue
            tally: tuple[int, int, int] | None = None
            if rec is None:  # never changed: the seed state, derived from the catalog
                state, state_digest, tally = seeded(index, npc_id)
            else:
                if rec["t"] > run.finished:  # persisted by a tick that never finished
                    state = rec["p"]
                else:
                    state = rec["s"]
                    if rec["t"] == run.finished:
                        run.prev[npc_id] = orjson.dumps(rec["p"])
                state_digest = digest(npc_id, state)
            run.states[npc_id] = state
            run.digests[npc_id] = state_digest
            run.count_relationships(npc_id, tally)
            pend = pending_of(state)
            if pend is None and npc_id in run.prev:  # decided by the finished tick
                pend = pending_of(orjson.loads(run.prev[npc_id]))
            if pend is not None:
                got = read(decision_key(run.run_id, run.shard, pend[1]))
                if got is not None:
                    run.decisions[pend[1]] = DecisionMade.model_validate_json(got)
        nxt = run.finished + 1
        for q in range(run.n_shards):
            part, parts = 0, 1
            while part < parts:
                got = _load(read(in_key(run.run_id, run.shard, q, part)))
                if got is None or got["tick"] != nxt:
                    break
                parts = got["parts"]
                run.parts[nxt][q] = parts
                run.batches[nxt][(q, part)] = [Effect.model_validate(e) for e in got["effects"]]
                part += 1
        run.dirty = set(run.states)
        log.info(
            "shard %s/%s holds %s NPCs of run %s (finished tick %s)",
            run.shard,
            run.n_shards,
            len(run.states),
            run.run_id,
            run.finished,
        )
        return run

    def on_tick(self, tick: TickStarted) -> Step:
        """Decide the tick (events and outgoing batches), or re-send what a repeat asks for."""
        self.budget, self.seed, self.deadline = tick.decide_budget, tick.seed, tick.decide_deadline
        if tick.tick < self.finished:
            return Step()
        if tick.tick == self.finished:  # the clock is missing reports or batches: re-send
            if self.last_done is None:
                return Step()  # the tick this branch was restored at: never played here
            # the shard's state at the start of the tick
            start = {**self.states, **{n: orjson.loads(p) for n, p in self.prev.items()}}
            again, _, _, _, read = self._decide(tick, start)
            return Step(batches=self._split(tick.tick, again, read.effects), report=self.last_done)
        if tick.tick in self.decided:
            return Step(batches=list(self.outgoing.get(tick.tick, [])))
        if self.budget and self.missing_decisions(tick.tick):
            self.waiting = tick  # the barrier holds the tick until its decisions are in
            return Step()
        return self._play(tick)

    def missing_decisions(self, tick: int) -> list[str]:
        """Request ids due at ``tick`` whose decision has not arrived."""
        return sorted(
            {p[1] for p in map(pending_of, self.states.values()) if p and p[0] == tick}
            - self.decisions.keys()
        )

    def due(self, tick: int, states: dict[str, State]) -> dict[str, str]:
        """NPC -> request id of the decisions due at ``tick`` (from the NPCs' states)."""
        out = {}
        for npc_id, state in states.items():
            pend = pending_of(state)
            if pend is not None and pend[0] == tick:
                out[npc_id] = pend[1]
        return out

    def _decide(
        self, tick: TickStarted, states: dict[str, State]
    ) -> tuple[
        list[EventHappened],
        list[DecisionRequested],
        list[DecisionResolved],
        dict[str, str],
        FeedRead,
    ]:
        """The tick's events: the rules' for most NPCs, the decisions due now for the rest,
        and the requests of this tick's focal NPCs; what they read in the feed, and their
        reactions to it (events too: the rules', and those of decisions due now).

        A focal NPC asked alone reads as anyone does, but its reactions are its decision's
        (:func:`sim.deliberate.deliberating`): its request lists what it read."""
        due = self.due(tick.tick, states) if self.budget or self.decisions else {}
        events = decide_shard(self.index, tick, states, skip=due)
        outcomes = []
        decided = FeedRead()  # the reactions of the decisions due now
        if due:
            ctx = Ctx(self.index, tick)
            for npc_id in sorted(due):
                rid = due[npc_id]
                made = self.decisions.get(rid)
                outcome, ev = resolve(ctx, npc_id, states[npc_id], made, rid, decided)
                outcomes.append(outcome)
                if ev is not None:
                    events.append(ev)
            events = sorted({e.event_id: e for e in events}.values(), key=lambda e: e.event_id)
        groups = [g for g in tick.focal if any(n in states for n in g)]
        read = FeedRead()
        if self.index.catalog.feed.enabled:
            npcs = self.index.shard_npcs(self.shard, self.n_shards)
            defer = deliberating(self.index, tick, states, groups) if groups else set()
            read = read_feed(self.index, tick, npcs, states, defer)
            add_counts(read.counts, decided.counts)
            read.events.extend(decided.events)
            if read.events:
                both = [*events, *read.events]
                events = sorted({e.event_id: e for e in both}.values(), key=lambda e: e.event_id)
        requests, marks = (
            requests_for(self.index, tick, states, groups, read.deferred) if groups else ([], {})
        )
        return events, requests, outcomes, marks, read

    def _play(self, tick: TickStarted) -> Step:
        self.waiting = None
        events, requests, outcomes, marks, read = self._decide(tick, self.states)
        self.asked[tick.tick] = {n: [tick.tick + tick.decide_deadline, r] for n, r in marks.items()}
        batches = self._split(tick.tick, events, read.effects)
        self.decided[tick.tick] = len(events)
        if tick.snapshot:
            self.full_snapshots.add(tick.tick)
        feed = self.index.catalog.feed
        if feed.enabled:
            made = [r for ev in events for r in render_requests(self.index, Story(ev))]
            self.tallies[tick.tick] = (len(made), fired_on_shard(self.index, tick))
            self.feed_tallies[tick.tick] = FeedTally(
                top_posts(posts_of(feed, made), feed.posts_per_tick),
                read.counts,
                len(read.exposures),
                len(read.events),
            )
        else:
            self.tallies[tick.tick] = (
                base_render_requests(self.index, events),
                fired_on_shard(self.index, tick),
            )
        self.outgoing = {tick.tick: batches}
        return Step(
            events=events,
            batches=batches,
            requests=requests,
            outcomes=outcomes,
            exposures=read.exposures,
        )

    def on_decision(self, msg: DecisionMade, raw: bytes) -> Step:
        """Take a decision (or a recorded failure) for NPCs of this shard; the first one per
        request wins. When a tick waits for it and it was the last missing, play the tick."""
        if msg.due_tick <= self.finished or msg.request_id in self.decisions:
            self.ignored += 1
            return Step()
        if msg.due_tick in self.decided:  # its tick was played without it: too late
            self.ignored += 1
            return Step()
        self.decisions[msg.request_id] = msg
        keep = TableWrite(decision_key(self.run_id, self.shard, msg.request_id), raw, self.shard)
        waiting = self.waiting
        if waiting is not None and not self.missing_decisions(waiting.tick):
            step = self._play(waiting)
            step.writes.insert(0, keep)
            return step
        return Step(writes=[keep])

    def on_batch(self, batch: EffectsBatched, raw: bytes) -> Step:
        """Collect one effect batch (part) sent to this shard; ``raw`` is it as received."""
        if batch.tick <= self.finished:
            return Step()  # re-sent batch for a finished tick
        self.batches[batch.tick][(batch.from_shard, batch.part)] = batch.effects
        self.parts[batch.tick][batch.from_shard] = batch.parts
        return Step(writes=[_keep(batch, raw)])

    def ready(self) -> int | None:
        """The tick that is decided and has every batch part, if any."""
        for tick in sorted(self.decided):
            parts = self.parts.get(tick, {})
            got = self.batches.get(tick, {})
            if len(parts) == self.n_shards and all(
                (q, i) in got for q, n in parts.items() for i in range(n)
            ):
                return tick
        return None

    def finish(self) -> Step:
        """Apply the ready tick's effects (the barrier): its state writes, snapshots, report.

        The shell calls it after carrying out each input's step, so a shard's batches
        leave before it spends time applying effects that the others wait for.
        """
        tick = self.ready()
        if tick is None:
            return Step()
        self.parts.pop(tick, None)
        requests, fired = self.tallies.pop(tick, (0, []))
        fed = self.feed_tallies.pop(tick, None)
        by_npc: dict[str, list[Effect]] = defaultdict(list)
        effects = canonical_order(e for part in self.batches.pop(tick).values() for e in part)
        for eff in effects:
            by_npc[eff.npc_id].append(eff)
        # deliberation: the decisions due now are done, this tick's requests are pending
        pend: dict[str, list[Any] | None] = {}
        if self.budget or self.decisions:
            pend = {n: None for n in self.due(tick, self.states)}
        pend.update(self.asked.pop(tick, {}))
        self.prev = {}
        writes = []
        for npc_id in sorted(by_npc.keys() | pend.keys()):
            state = self.states.get(npc_id)
            if state is None:
                log.warning("effect for NPC %s not owned by shard %s", npc_id, self.shard)
                continue
            before = orjson.dumps(state)
            self.prev[npc_id] = before
            changed = apply_effects(state, by_npc.get(npc_id, ()), tick)
            if npc_id in pend:
                changed = True
                if pend[npc_id] is None:
                    state.pop("pend", None)
                else:
                    state["pend"] = pend[npc_id]
            if changed:
                self.digests[npc_id] = digest(npc_id, state)
                self.count_relationships(npc_id)
                writes.append(
                    TableWrite(
                        npc_key(self.run_id, npc_id),
                        b'{"t":%d,"s":%b,"p":%b}' % (tick, orjson.dumps(state), before),
                        self.shard,
                    )
                )
                self.dirty.add(npc_id)
        self.decisions = {
            rid: d for rid, d in self.decisions.items() if d.due_tick >= tick
        }  # a finished tick's decisions stay until the next (a re-send decides it again)
        salient = []
        if self.budget:
            # awake when the next tick's requests fall due
            hour = due_hour(self.start_minute, tick + 1 + self.deadline, self.step_minutes)
            npcs = self.index.shard_npcs(self.shard, self.n_shards)
            salient = shard_salient(
                self.index, npcs, self.states, self.seed, tick + 1, hour, self.budget
            )
        done = ShardTickDone(
            run_id=self.run_id,
            tick=tick,
            shard=self.shard,
            n_shards=self.n_shards,
            npcs=len(self.states),
            events=self.decided.pop(tick),
            effects=len(effects),
            state_digest=combine_digests(self.digests.values()),
            render_requests=requests,
            affinity_milli=self.rel_total[0],
            relationships=self.rel_total[1],
            in_conflict=self.rel_total[2],
            director_fired=fired,
            salient=salient,
        )
        if fed is not None:
            feed = self.index.catalog.feed
            done.exposures, done.reactions = fed.exposures, fed.reactions
            done.feed_window, done.feed_top = feed.window_ticks, feed.posts_per_tick
            done.feed_posts = fed.posts
            done.feed_counts = dict(sorted(fed.counts.items()))
        self.finished, self.last_done = tick, done
        meta = {"finished": tick, "done": done.model_dump(mode="json")}
        # last: a shard that dies before this record lands rolls the tick back
        writes.append(TableWrite(meta_key(self.run_id, self.shard), orjson.dumps(meta), self.shard))
        every = self.snapshot_every
        snapshots = self._snapshot(tick) if every and (tick + 1) % every == 0 else []
        parts = []
        if tick in self.full_snapshots:
            self.full_snapshots.discard(tick)
            parts = shard_parts(self.run_id, tick, self.shard, self.n_shards, self.states)
        return Step(writes=writes, snapshots=snapshots, parts=parts, report=done)

    @gc_paused()
    def on_restore(self, msg: StateRestored) -> Step:
        """Take one part of the states a branch's shard starts from (before its first tick).

        Once every part is in, the shard has finished ``msg.tick`` (the branch tick) as
        far as the protocol goes: the branch's first tick is the next one.
        """
        if self.finished >= msg.tick or self.decided:
            return Step()  # restored already (a redelivery), or playing
        writes = []
        for npc_id in sorted(msg.states):
            # owned: an NPC of the world on this shard (its state may not be seeded yet)
            if npc_id not in self.index.location or shard_of(npc_id, self.n_shards) != self.shard:
                log.warning("restored NPC %s not owned by shard %s", npc_id, self.shard)
                continue
            body = orjson.dumps(msg.states[npc_id])
            state = self.states[npc_id] = orjson.loads(body)  # the shard's own copy
            self.digests[npc_id] = digest(npc_id, state)
            self.count_relationships(npc_id)
            self.dirty.add(npc_id)
            record = b'{"t":%d,"s":%b,"p":%b}' % (msg.tick, body, body)
            writes.append(TableWrite(npc_key(self.run_id, npc_id), record, self.shard))
        self.restored.add(msg.part)
        receipt = {"tick": msg.tick, "got": sorted(self.restored)}
        writes.append(
            TableWrite(restore_key(self.run_id, self.shard), orjson.dumps(receipt), self.shard)
        )
        if len(self.restored) == msg.parts:
            self.finished = msg.tick
            for npc_id in self.index.shard_npcs(self.shard, self.n_shards):
                if npc_id not in self.states:  # not in the snapshot (defensive): the seed
                    log.warning("restore of shard %s brought no state for %s", self.shard, npc_id)
                    self.states[npc_id] = seed_state(self.index, npc_id)
                    self.digests[npc_id] = digest(npc_id, self.states[npc_id])
                    self.count_relationships(npc_id)
                    self.dirty.add(npc_id)
            meta = {"finished": msg.tick, "done": None}
            writes.append(
                TableWrite(meta_key(self.run_id, self.shard), orjson.dumps(meta), self.shard)
            )
        return Step(writes=writes)

    def count_relationships(self, npc_id: str, tally: tuple[int, int, int] | None = None) -> None:
        """Bring an NPC's part of the relationship tallies up to date with its state
        (``tally``: its state's, known)."""
        new = relationship_tally(self.states[npc_id]) if tally is None else tally
        old = self.rel_tally.get(npc_id, (0, 0, 0))
        self.rel_tally[npc_id] = new
        for i in range(3):
            self.rel_total[i] += new[i] - old[i]

    def _split(
        self, tick: int, events: list[EventHappened], extra: Iterable[Effect] = ()
    ) -> list[EffectsBatched]:
        return split_batches(
            self.run_id, tick, self.shard, self.n_shards, events, self.max_effects, extra
        )

    def _snapshot(self, tick: int) -> list[NpcSnapshotted]:
        hour = hour_of(minute_of_tick(self.start_minute, tick, self.step_minutes))
        snaps = []
        for npc_id in sorted(self.dirty):
            state = self.states[npc_id]
            snaps.append(
                NpcSnapshotted(
                    run_id=self.run_id,
                    tick=tick,
                    npc_id=npc_id,
                    place=self.index.location[npc_id][hour],
                    reputation=state["rep"],
                    relationships=state["rel"],
                    memories=state["mem"],
                    goals=state["goal"],
                    follows=state.get("fol"),
                    state_hash=f"{self.digests[npc_id]:016x}",
                )
            )
        self.dirty.clear()
        return snaps
