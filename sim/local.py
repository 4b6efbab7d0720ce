"""The whole tick loop in one process, without Kafka.

The shards are the streamed run's own machines (:class:`~sim.barrier.ShardBarrier`),
each with an in-memory table, their effect batches routed between them in process,
and the clock is the streamed run's own :class:`~sim.clock.RunClock` (the tick-wide
inputs summed from the shards' reports), so the reference cannot drift from what the
shards and the clock do. Used by unit tests as the
reference the streamed run must match, and by benchmarks as the compute-only baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from sim.barrier import ShardBarrier, Step
from sim.clock import RunClock
from sim.snapshot import Snapshot, clock_part, restore_parts
from sim.state import State
from sim.world import WorldIndex, shard_of
from topics.codec import encode
from topics.models import (
    DecisionMade,
    DecisionRequested,
    DecisionResolved,
    DecisionStatus,
    EffectsBatched,
    EventHappened,
    InjectedEvent,
    PostSeen,
    RunCommanded,
    SnapshotPart,
    TickCompleted,
    TickStarted,
)

ENDLESS = 1 << 62  # the reference plays as many ticks as it is stepped

Decider = Callable[[DecisionRequested], DecisionMade]
"""Answers a decision request: an LLM (through ``llm/``), a fake in tests, or the log."""


def unanswered(req: DecisionRequested, status: DecisionStatus = "timeout") -> DecisionMade:
    """The recorded failure of a request nobody answered (in time)."""
    return req.decided(status)


def recorded(decisions: Mapping[str, DecisionMade]) -> Decider:
    """A decider that reads the log (replay, branches): never calls an LLM. A request the
    log lacks is answered with a recorded error (the replay then shows the difference)."""

    def decide(req: DecisionRequested) -> DecisionMade:
        got = decisions.get(req.request_id)
        return got if got is not None else unanswered(req, "error")

    return decide


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
    decide_budget: int = 0  # focal NPCs per tick (0: no deliberation)
    decide_deadline: int = 0  # ticks from a request to its application (0: the catalog's)
    decider: Decider | None = None  # None: every request is a recorded timeout
    requests: list[DecisionRequested] = field(default_factory=list)  # the decision log
    decisions: list[DecisionMade] = field(default_factory=list)
    outcomes: list[DecisionResolved] = field(default_factory=list)
    exposures: list[PostSeen] = field(default_factory=list)  # the feed loop's log
    # decisions not yet delivered, by request id (the log of a parent: restored runs)
    answers: dict[str, DecisionMade] = field(default_factory=dict)
    clock: RunClock = field(init=False)
    tables: list[dict[bytes, bytes]] = field(init=False)  # per shard: its table
    shards: list[ShardBarrier] = field(init=False)

    def __post_init__(self) -> None:
        if self.decide_deadline <= 0:
            self.decide_deadline = self.index.catalog.decide.deadline_ticks
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
            decide_budget=self.decide_budget,
            decide_deadline=self.decide_deadline,
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
        cls,
        index: WorldIndex,
        snapshot: Snapshot,
        run_id: str | None = None,
        n_shards: int = 1,
        decider: Decider | None = None,
        answers: Mapping[str, DecisionMade] | None = None,
    ) -> LocalRun:
        """A run that continues after ``snapshot.tick`` from the snapshot's world (restored
        through the shards' own restore protocol, as a branch's shards are). ``answers``:
        the logged decisions of requests made before the snapshot and due after it."""
        start = snapshot.start
        run = cls(
            index,
            run_id or snapshot.run_id,
            start.seed,
            n_shards,
            start.step_minutes,
            start.start_minute,
            restoring=True,
            decide_budget=start.decide_budget,
            decide_deadline=start.decide_deadline,
            decider=decider,
            answers=dict(answers or {}),
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
            decide_budget=self.decide_budget,
            decide_deadline=self.decide_deadline,
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
            self._deliver(q, tick)
            step = self._carry_out(q, shard.on_tick(self.tick_message(tick, q)))
            if shard.waiting is not None:
                raise RuntimeError(f"shard {q} waits for decisions at tick {tick}")
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

    def _deliver(self, q: int, tick: int) -> None:
        """Hand shard ``q`` the decisions due at ``tick`` (the barrier waits for them); a
        request with no answer gets a recorded error, like a deadline passed in the stream."""
        shard = self.shards[q]
        if not self.decide_budget:
            return
        for rid in shard.missing_decisions(tick):
            made = self.answers.get(rid)
            if made is None:  # asked before a restore, and not in the log given
                npcs = sorted(n for n, r in shard.due(tick, shard.states).items() if r == rid)
                made = DecisionMade(
                    request_id=rid,
                    run_id=self.run_id,
                    tick=max(0, tick - self.decide_deadline),
                    due_tick=tick,
                    shard=q,
                    npcs=npcs,
                    prompt_hash="",
                    status="error",
                )
                self.decisions.append(made)
            self._carry_out(q, shard.on_decision(made, encode(made)))
        if q == self.n_shards - 1:  # every shard has had what is due now
            self.answers = {r: d for r, d in self.answers.items() if d.due_tick > tick}

    def _ask(self, step: Step) -> None:
        """Ask the decider for each request of a step; its answer waits for the due tick."""
        for req in step.requests:
            self.requests.append(req)
            made = self.decider(req) if self.decider is not None else unanswered(req)
            self.decisions.append(made)
            self.answers[req.request_id] = made

    def _carry_out(self, shard: int, step: Step) -> Step:
        if step.requests:
            self._ask(step)
        self.outcomes.extend(step.outcomes)
        self.exposures.extend(step.exposures)
        table = self.tables[shard]
        for write in step.writes:
            table[write.key] = write.value
        return step

    def owner(self, npc_id: str) -> int:
        """Shard of an NPC in this run."""
        return shard_of(npc_id, self.n_shards)
