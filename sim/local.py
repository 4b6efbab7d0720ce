"""The whole tick loop in one process, without Kafka.

Same functions the shards use, same barrier semantics (decide all shards, then apply
all effects in canonical order). Used by unit tests as the reference the streamed run
must match, and by benchmarks as the compute-only baseline.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sim.decide import decide_shard
from sim.state import State, apply_effects, canonical_order, digest, seed_state
from sim.world import WorldIndex, shard_of
from topics.models import Effect, EventHappened, TickStarted
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
    states: dict[str, State] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)
    hashes: list[str] = field(default_factory=list)
    events: list[EventHappened] = field(default_factory=list)
    recent: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for npc_id in self.index.npc_ids:
            self.states[npc_id] = seed_state(self.index, npc_id)
            self.digests[npc_id] = digest(npc_id, self.states[npc_id])

    def step(self) -> list[EventHappened]:
        """Play one tick; returns its events."""
        tick = len(self.hashes)
        per_hour = max(1, 60 // self.step_minutes)
        events: list[EventHappened] = []
        for shard in range(self.n_shards):
            msg = TickStarted(
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
            events.extend(decide_shard(self.index, msg, self.states))
        by_npc: dict[str, list[Effect]] = defaultdict(list)
        for eff in canonical_order(e for ev in events for e in ev.effects):
            by_npc[eff.npc_id].append(eff)
        for npc_id in sorted(by_npc):
            if apply_effects(self.states[npc_id], by_npc[npc_id], tick):
                self.digests[npc_id] = digest(npc_id, self.states[npc_id])
        self.hashes.append(f"{combine_digests(self.digests.values()):016x}")
        self.recent.append(len(events))
        self.events.extend(events)
        return events

    def owner(self, npc_id: str) -> int:
        """Shard of an NPC in this run."""
        return shard_of(npc_id, self.n_shards)
