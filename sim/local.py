"""The whole tick loop in one process, without Kafka.

The shards are the streamed run's own machines (:class:`~sim.barrier.ShardBarrier`),
each with an in-memory table, their effect batches routed between them in process,
so the reference cannot drift from what the shards do. Used by unit tests as the
reference the streamed run must match, and by benchmarks as the compute-only baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.barrier import ShardBarrier, Step
from sim.state import State
from sim.world import WorldIndex, shard_of
from topics.models import EffectsBatched, EventHappened, ShardTickDone, TickStarted
from worldfeed.ids import combine_digests


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
    recent: list[int] = field(default_factory=list)  # events per tick
    tables: list[dict[bytes, bytes]] = field(init=False)  # per shard: its table
    shards: list[ShardBarrier] = field(init=False)

    def __post_init__(self) -> None:
        self.tables = [{} for _ in range(self.n_shards)]
        self.shards = [
            ShardBarrier.recover(self.index, self.tick_message(0, q), self.tables[q].get)
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

    def tick_message(self, tick: int, shard: int) -> TickStarted:
        """The copy of tick ``tick`` for one shard, as the clock would send it."""
        per_hour = max(1, 60 // self.step_minutes)
        return TickStarted(
            run_id=self.run_id,
            seed=self.seed,
            world=self.index.catalog.name,
            tick=tick,
            sim_minute=self.start_minute + tick * self.step_minutes,
            step_minutes=self.step_minutes,
            shard=shard,
            n_shards=self.n_shards,
            recent_events=sum(self.recent[-per_hour:]),
        )

    def step(self) -> list[EventHappened]:
        """Play one tick; returns its events (shard by shard, each sorted by event id)."""
        tick = len(self.hashes)
        events: list[EventHappened] = []
        sent: list[EffectsBatched] = []
        for q, shard in enumerate(self.shards):
            step = self._carry_out(q, shard.on_tick(self.tick_message(tick, q)))
            events.extend(step.events)
            sent.extend(step.batches)
        for batch in sent:
            raw = batch.model_dump_json().encode()
            self._carry_out(batch.shard, self.shards[batch.shard].on_batch(batch, raw))
        reports: list[ShardTickDone] = []
        for q, shard in enumerate(self.shards):
            report = self._carry_out(q, shard.finish()).report
            if report is None or report.tick != tick:
                raise RuntimeError(f"shard {q} did not complete tick {tick}")
            reports.append(report)
        self.hashes.append(f"{combine_digests(r.state_digest for r in reports):016x}")
        self.recent.append(sum(r.events for r in reports))
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
