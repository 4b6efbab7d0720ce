"""The whole tick loop in one process, without Kafka.

The shards are the streamed run's own machines (:class:`~sim.barrier.ShardBarrier`),
each with an in-memory table, their effect batches routed between them in process,
and the clock is the streamed run's own :class:`~sim.clock.RunClock` (the tick-wide
inputs summed from the shards' reports), so the reference cannot drift from what the
shards and the clock do. Used by unit tests as the
reference the streamed run must match, and by benchmarks as the compute-only baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from sim.barrier import ShardBarrier, Step
from sim.clock import RunClock
from sim.snapshot import Snapshot, clock_part, restore_parts
from sim.state import State
from sim.world import WorldIndex, shard_of
from topics.codec import encode
from topics.models import (
    EffectsBatched,
    EventHappened,
    InjectedEvent,
    RunCommanded,
    SnapshotPart,
    TickCompleted,
    TickStarted,
)

ENDLESS = 1 << 62  # the reference plays as many ticks as it is stepped


@dataclass
class LocalRun:
    """A run simulated in-process: states of every NPC and the log of ticks."""

    index: WorldIndex
    run_id: str
    seed: int
    n_shards: int = 1
    step_minutes: int = 15
    start_minute: int = 0
    hashes: list[str] = field(default_factory=list)
    events: list[EventHappened] = field(default_factory=list)
    completed: list[TickCompleted] = field(default_factory=list)  # the ticks log
    snapshot_every: int = 0  # ticks between full-world snapshots (0: none)
    parts: list[SnapshotPart] = field(default_factory=list)  # the snapshots written
    restoring: bool = False  # the shards start from restored states (from_snapshot)
    clock: RunClock = field(init=False)
    tables: list[dict[bytes, bytes]] = field(init=False)  # per shard: its table
    shards: list[ShardBarrier] = field(init=False)

    def __post_init__(self) -> None:
        self.clock = RunClock(
            run_id=self.run_id,
            seed=self.seed,
            world=self.index.catalog.name,
            step_minutes=self.step_minutes,
            total_ticks=ENDLESS,
            speed=0.0,
            n_shards=self.n_shards,
            start_minute=self.start_minute,
            snapshot_every=self.snapshot_every,
        )
        self.tables = [{} for _ in range(self.n_shards)]
        self.shards = [
            ShardBarrier.recover(
                self.index, self.tick_message(0, q), self.tables[q].get, restoring=self.restoring
            )
            for q in range(self.n_shards)
        ]

    @property
    def states(self) -> dict[str, State]:
        """Every NPC's current state, by NPC id."""
        return {n: self.shards[self.owner(n)].states[n] for n in self.index.npc_ids}

    @property
    def digests(self) -> dict[str, int]:
        """Every NPC's current state hash, by NPC id."""
        return {n: self.shards[self.owner(n)].digests[n] for n in self.index.npc_ids}

    @property
    def recent(self) -> list[int]:
        """Events per completed tick."""
        return [done.events for done in self.completed]

    def tick_message(self, tick: int, shard: int) -> TickStarted:
        """The copy of tick ``tick`` for one shard, as the clock sends it (the next tick's
        inputs: ``tick`` is the tick after the last completed one)."""
        return self.clock.tick_message(tick, shard)

    @classmethod
    def from_snapshot(
        cls, index: WorldIndex, snapshot: Snapshot, run_id: str | None = None, n_shards: int = 1
    ) -> LocalRun:
        """A run that continues after ``snapshot.tick`` from the snapshot's world (restored
        through the shards' own restore protocol, as a branch's shards are)."""
        start = snapshot.start
        run = cls(
            index,
            run_id or snapshot.run_id,
            start.seed,
            n_shards,
            start.step_minutes,
            start.start_minute,
            restoring=True,
        )
        parts = restore_parts(run.run_id, snapshot.tick, start, snapshot.states, shard_of, n_shards)
        for part in parts:
            run._carry_out(part.shard, run.shards[part.shard].on_restore(part))
        run.clock.restore(snapshot.clock)
        return run

    def start_command(self) -> RunCommanded:
        """The start command of this run (its manifest)."""
        return RunCommanded(
            command="start",
            run_id=self.run_id,
            seed=self.seed,
            world=self.index.catalog.name,
            step_minutes=self.step_minutes,
            start_minute=self.start_minute,
            catalog_digest=self.index.catalog.digest,
        )

    def snapshot(self) -> Snapshot:
        """The world after the last completed tick, as a snapshot."""
        states = {n: orjson.loads(orjson.dumps(s)) for n, s in self.states.items()}
        start = self.start_command()
        return Snapshot(self.run_id, self.clock.current, start, self.clock.state(), states, 0, 0)

    def step(self, injected: list[InjectedEvent] | None = None) -> list[EventHappened]:
        """Play one tick (with ``injected`` events); returns its events (shard by shard,
        each sorted by event id)."""
        self.clock.injected = list(injected or [])
        tick = self.clock.start_next(0.0)
        events: list[EventHappened] = []
        sent: list[EffectsBatched] = []
        for q, shard in enumerate(self.shards):
            step = self._carry_out(q, shard.on_tick(self.tick_message(tick, q)))
            events.extend(step.events)
            sent.extend(step.batches)
        for batch in sent:
            self._carry_out(batch.shard, self.shards[batch.shard].on_batch(batch, encode(batch)))
        completed = None
        for q, shard in enumerate(self.shards):
            step = self._carry_out(q, shard.finish())
            report = step.report
            if report is None or report.tick != tick:
                raise RuntimeError(f"shard {q} did not complete tick {tick}")
            completed = self.clock.record(report, 0.0)
            self.parts.extend(step.parts)
        if completed is None:
            raise RuntimeError(f"the clock did not complete tick {tick}")
        self.completed.append(completed)
        if self.clock.snapshotting:
            start = self.start_command()
            self.parts.append(
                clock_part(self.run_id, tick, self.n_shards, start, self.clock.state())
            )
        self.hashes.append(completed.state_hash)
        self.events.extend(events)
        return events

    def _carry_out(self, shard: int, step: Step) -> Step:
        table = self.tables[shard]
        for write in step.writes:
            table[write.key] = write.value
        return step

    def owner(self, npc_id: str) -> int:
        """Shard of an NPC in this run."""
        return shard_of(npc_id, self.n_shards)
