"""A run as a log: replay it, branch from it, compare two runs (pure: the logs are passed in).

A run's log is its start command (the manifest), the clock's completed ticks (each with
its state hash and the injections it took), the events the shards emitted and the
full-world snapshots (:mod:`sim.snapshot`). The world's future is a function of the
catalog, the seed, the state at a tick and the injections after it, so:

* :func:`replay` re-derives every tick in process from the run's start (or, for a branch,
  from its first snapshot) and compares hashes and events with the log. It never calls
  the LLM: what the LLM wrote is in the log already and decides nothing in the world.
* :func:`plan_branch` restores the world as of tick T of a run (the nearest verified
  snapshot at or before T, then the logged ticks up to T, each checked against the log's
  hash) and says what to send so that a new run continues from there: the shards'
  states, the clock's inputs, and the impact stage's open stories (derived from the
  parent's events: the impact rules are a function of them).
* :func:`diff` says where two runs part.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sim.calendar import MINUTES_PER_DAY, days_to_ticks
from sim.impact import book_of
from sim.local import LocalRun, recorded
from sim.snapshot import Refused, Snapshot, assemble, clock_part, restore_parts, shard_parts
from sim.world import WorldIndex, shard_of
from topics.models import (
    DecisionMade,
    EventHappened,
    InjectedEvent,
    PostPublished,
    PostSeen,
    QuotaRestored,
    RenderRequested,
    RunCommanded,
    SnapshotPart,
    StateRestored,
    TickCompleted,
)
from worldfeed.gcpause import gc_paused
from worldfeed.ids import derive_id

MAX_LISTED = 50  # events listed per side in a report


@dataclass
class RunLog:
    """Everything the log holds about one run."""

    start: RunCommanded
    ticks: dict[int, TickCompleted] = field(default_factory=dict)
    events: list[EventHappened] = field(default_factory=list)
    parts: list[SnapshotPart] = field(default_factory=list)
    posts: list[PostPublished] = field(default_factory=list)
    # the decisions the run's shards received (sim.deliberate), by request id: a replay
    # or branch reads them and never asks an LLM
    decisions: dict[str, DecisionMade] = field(default_factory=dict)
    # the feed loop's exposures (sim.feed), when read: a replay compares them tick by tick
    exposures: list[PostSeen] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        start: RunCommanded,
        ticks: Iterable[TickCompleted] = (),
        events: Iterable[EventHappened] = (),
        parts: Iterable[SnapshotPart] = (),
        posts: Iterable[PostPublished] = (),
        decisions: Iterable[DecisionMade] = (),
        exposures: Iterable[PostSeen] = (),
    ) -> RunLog:
        """A log from messages as read (a tick or event logged twice is kept once; of a
        decision logged twice, the first, as the shards took it)."""
        by_id = {e.event_id: e for e in events if e.restored is None}
        chosen: dict[str, DecisionMade] = {}
        for d in decisions:
            chosen.setdefault(d.request_id, d)
        return cls(
            start,
            {t.tick: t for t in ticks},
            sorted(by_id.values(), key=lambda e: (e.tick, e.event_id)),
            list(parts),
            list(posts),
            chosen,
            sorted({x.exposure_id: x for x in exposures}.values(), key=lambda x: x.tick),
        )

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.start.run_id

    @property
    def last_tick(self) -> int:
        """The last completed tick, -1 before the first."""
        return max(self.ticks, default=-1)

    @property
    def first_tick(self) -> int:
        """The run's first tick: 0, or a branch's tick after its branch tick."""
        base = self.start.base
        return 0 if base is None else base.tick + 1

    def snapshots(self) -> dict[int, Snapshot | Refused]:
        """Every snapshot of the run, verified (or refused, with the reason)."""
        return assemble(self.parts)

    def events_at(self, tick: int) -> list[EventHappened]:
        """The logged events of one tick."""
        return [e for e in self.events if e.tick == tick]

    def exposures_at(self, tick: int) -> list[PostSeen]:
        """The logged exposures of one tick."""
        return [x for x in self.exposures if x.tick == tick]


def content(ev: EventHappened) -> dict[str, Any]:
    """What an event is, apart from the run it happened in, its later re-scores and where
    the run found its world (a name or a directory; the catalog digest says which world)."""
    return ev.model_dump(mode="json", exclude={"run_id", "world", "impact", "restored"}) | {
        "impact": None if ev.impact is None else ev.impact.model_dump(mode="json")
    }


# ---- replay ----------------------------------------------------------------------------------


@dataclass
class Difference:
    """The first tick where the re-derived run differs from its log, and how."""

    tick: int
    what: str  # "state hash" | "events" | "exposures" | "snapshot"
    detail: str
    only_in_log: list[str] = field(default_factory=list)
    only_in_replay: list[str] = field(default_factory=list)


@dataclass
class ReplayReport:
    """What a replay found."""

    run_id: str
    from_tick: int  # the first tick re-derived
    ticks: int  # ticks compared
    identical: bool
    first_difference: Difference | None
    snapshots: dict[int, str]  # tick -> "verified" | "refused: ..." | "differs: ..."
    seconds: float  # the replay's wall time
    original_seconds: float  # the run's own wall time (sum of its ticks' wall_ms)

    @property
    def speedup(self) -> float | None:
        """How many times faster the replay was than the run."""
        return None if self.seconds <= 0 else round(self.original_seconds / self.seconds, 1)


def _start_of(index: WorldIndex, log: RunLog) -> tuple[LocalRun, str | None]:
    """A local run at the log's start: fresh, or a branch's own first snapshot."""
    start = log.start
    decider = recorded(log.decisions)
    if start.base is None:
        run = LocalRun(
            index,
            log.run_id,
            start.seed,
            1,
            start.step_minutes,
            start.start_minute,
            decide_budget=start.decide_budget,
            decide_deadline=start.decide_deadline,
            decider=decider,
        )
        return run, None
    snap = log.snapshots().get(start.base.tick)
    if not isinstance(snap, Snapshot):
        why = "missing" if snap is None else snap.reason
        return LocalRun(index, log.run_id, start.seed), f"the branch's first snapshot: {why}"
    return LocalRun.from_snapshot(index, snap, decider=decider, answers=log.decisions), None


def _compare_events(
    tick: int, logged: list[EventHappened], got: list[EventHappened]
) -> Difference | None:
    want = {e.event_id: content(e) for e in logged}
    have = {e.event_id: content(e) for e in got}
    if want == have:
        return None
    only_log = sorted(set(want) - set(have))
    only_replay = sorted(set(have) - set(want))
    changed = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    detail = f"{len(only_log)} only in the log, {len(only_replay)} only in the replay"
    if changed:
        first = changed[0]
        fields = sorted(k for k in want[first] if want[first][k] != have[first].get(k))
        detail += f", {len(changed)} with other content (first {first}: {', '.join(fields)})"
    return Difference(tick, "events", detail, only_log[:MAX_LISTED], only_replay[:MAX_LISTED])


def read_content(x: PostSeen) -> tuple[str, str, int, str | None, str | None]:
    """What an exposure is, apart from the run it happened in."""
    return (x.npc_id, x.post_key, x.rank, x.reaction, x.reaction_event_id)


def _compare_exposures(tick: int, logged: list[PostSeen], got: list[PostSeen]) -> Difference | None:
    want, have = sorted(map(read_content, logged)), sorted(map(read_content, got))
    if want == have:
        return None
    only_log = sorted(set(want) - set(have))
    only_replay = sorted(set(have) - set(want))
    return Difference(
        tick,
        "exposures",
        f"{len(only_log)} only in the log, {len(only_replay)} only in the replay",
        [f"{n} read {k}" for n, k, *_ in only_log][:MAX_LISTED],
        [f"{n} read {k}" for n, k, *_ in only_replay][:MAX_LISTED],
    )


def replay(index: WorldIndex, log: RunLog) -> ReplayReport:
    """Re-derive the run from its log and compare, tick by tick, hashes and events (and the
    exposures, when the log has them)."""
    t0 = time.perf_counter()
    run, problem = _start_of(index, log)
    snapshots = {
        t: (s.reason if isinstance(s, Refused) else "") for t, s in log.snapshots().items()
    }
    verdicts = {t: f"refused: {why}" for t, why in snapshots.items() if why}
    first: Difference | None = None
    if problem is not None:
        first = Difference(log.first_tick, "snapshot", problem)
    compared = 0
    for tick in range(log.first_tick, log.last_tick + 1):
        if first is not None:
            break
        done = log.ticks.get(tick)
        if done is None:
            first = Difference(tick, "state hash", "the tick is missing from the log")
            break
        read = len(run.exposures)
        events = run.step(done.injected)
        compared += 1
        got = run.completed[-1].state_hash
        if got != done.state_hash:
            first = Difference(tick, "state hash", f"log {done.state_hash}, replay {got}")
            first.only_in_log = [e.event_id for e in log.events_at(tick)][:MAX_LISTED]
            break
        first = _compare_events(tick, log.events_at(tick), events)
        if first is None and log.exposures:
            first = _compare_exposures(tick, log.exposures_at(tick), run.exposures[read:])
        if first is None and tick in snapshots and not snapshots[tick]:
            verdicts[tick] = _check_snapshot(run, log.snapshots()[tick])
            if verdicts[tick] != "verified":
                first = Difference(tick, "snapshot", verdicts[tick])
    seconds = time.perf_counter() - t0
    original = sum(d.wall_ms for d in log.ticks.values()) / 1000
    for tick in snapshots:
        verdicts.setdefault(tick, "not reached")
    return ReplayReport(
        log.run_id,
        log.first_tick,
        compared,
        first is None,
        first,
        dict(sorted(verdicts.items())),
        round(seconds, 3),
        round(original, 3),
    )


def _check_snapshot(run: LocalRun, snap: Snapshot | Refused) -> str:
    if not isinstance(snap, Snapshot):
        return f"refused: {snap.reason}"
    states = run.states
    differ = sorted(n for n in states if snap.states.get(n) != states[n])
    if differ or set(snap.states) != set(states):
        return f"differs: {len(differ)} NPCs (first {differ[0] if differ else '?'})"
    return "verified"


# ---- branch ----------------------------------------------------------------------------------


class BranchError(ValueError):
    """A branch that cannot be made; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class BranchPlan:
    """What starts a branch: messages to send, in this order, and how it was restored."""

    run_id: str
    start: RunCommanded
    restores: list[StateRestored]  # to the shards, before the start
    stories: list[EventHappened]  # the parent's open stories, to the impact stage
    parts: list[SnapshotPart]  # the branch's own first snapshot (the world at the branch tick)
    restored_from: int  # the parent's snapshot tick used, -1 for the run's start
    replayed: int  # logged ticks re-derived after it, up to the branch tick
    notes: list[str] = field(default_factory=list)  # snapshots refused on the way, and why
    # the parent's render requests up to the branch tick (the posting quotas derive from them)
    requests: list[RenderRequested] = field(default_factory=list)
    quotas: list[QuotaRestored] = field(default_factory=list)  # to the render stage
    decisions: list[DecisionMade] = field(default_factory=list)  # in flight: to the shards


def branch_id(parent: str, at_tick: int, seed: int, injected: list[InjectedEvent]) -> str:
    """A branch's default run id: derived from what makes it (the same branch, the same id)."""
    what = [e.model_dump_json() for e in injected]
    return derive_id("br", parent, at_tick, seed, *what)[:64]


@gc_paused()  # restores and serializes every NPC: millions of acyclic objects
def plan_branch(
    index: WorldIndex,
    parent: RunLog,
    at_tick: int,
    *,
    n_shards: int,
    run_id: str | None = None,
    seed: int | None = None,
    injected: list[InjectedEvent] | None = None,
    days: float | None = None,
    allow_catalog_change: bool = False,
) -> BranchPlan:
    """Restore the world as of ``at_tick`` of ``parent`` and plan a run that continues it."""
    start = parent.start
    last = parent.last_tick
    if at_tick > last or at_tick < parent.first_tick - 1:
        raise BranchError(
            422,
            f"run {parent.run_id} has ticks {parent.first_tick}..{last}: cannot branch at "
            f"tick {at_tick} (its last tick is {last})",
        )
    digest = index.catalog.digest
    if start.catalog_digest not in (None, digest) and not allow_catalog_change:
        raise BranchError(
            409,
            f"the catalog changed since run {parent.run_id}: it ran with catalog "
            f"{start.catalog_digest}, the world is now {digest} (ask for a what-if on the "
            "catalog explicitly to branch anyway)",
        )
    run, restored_from, notes = _restore(index, parent, at_tick)
    replayed = 0
    for tick in range(run.clock.current + 1, at_tick + 1):
        done = parent.ticks.get(tick)
        if done is None:
            raise BranchError(409, f"run {parent.run_id}: tick {tick} is missing from its log")
        run.step(done.injected)
        replayed += 1
        if run.completed[-1].state_hash != done.state_hash:
            raise BranchError(
                409,
                f"run {parent.run_id}: re-deriving tick {tick} gives state hash "
                f"{run.completed[-1].state_hash}, its log says {done.state_hash}",
            )
    injected = list(injected or [])
    seed = start.seed if seed is None else seed
    new_id = run_id or branch_id(parent.run_id, at_tick, seed, injected)
    total = days_to_ticks(start.days, start.step_minutes)
    parent_end = (start.base.tick + 1 if start.base else 0) + total
    remaining = max(1, parent_end - at_tick - 1)
    days = days if days is not None else remaining * start.step_minutes / MINUTES_PER_DAY
    branch_start = RunCommanded(
        command="start",
        run_id=new_id,
        seed=seed,
        world=start.world,
        days=days,
        speed=start.speed,
        step_minutes=start.step_minutes,
        start_minute=start.start_minute,
        catalog_digest=digest,
        parent_run=parent.run_id,
        branch_tick=at_tick,
        base=run.clock.state(),
        injected=injected,
        decide_budget=start.decide_budget,
        decide_deadline=start.decide_deadline,
    )
    states = run.states  # read only: no copy
    restores = restore_parts(new_id, at_tick, branch_start, states, shard_of, n_shards)
    parts = [clock_part(new_id, at_tick, n_shards, branch_start, run.clock.state())]
    for q in range(n_shards):
        mine = {n: s for n, s in states.items() if shard_of(n, n_shards) == q}
        parts.extend(shard_parts(new_id, at_tick, q, n_shards, mine))
    stories, requests = open_stories(index, parent, at_tick, new_id, states)
    # decisions the parent asked for by the branch tick and applied after it: the branch's
    # shards wait for them (content ids: the same requests in the branch)
    pending = {p[1] for p in (state.get("pend") for state in states.values()) if p}
    decisions = [
        d.model_copy(update={"run_id": new_id})
        for rid, d in sorted(parent.decisions.items())
        if rid in pending
    ]
    return BranchPlan(
        new_id,
        branch_start,
        restores,
        stories,
        parts,
        restored_from,
        replayed,
        notes,
        requests,
        decisions=decisions,
    )


def _restore(index: WorldIndex, parent: RunLog, at_tick: int) -> tuple[LocalRun, int, list[str]]:
    """The parent's world at its nearest usable snapshot at or before ``at_tick``."""
    notes = []
    for tick, snap in sorted(parent.snapshots().items(), reverse=True):
        if tick > at_tick:
            continue
        if isinstance(snap, Refused):
            notes.append(f"snapshot at tick {tick} refused ({snap.reason}); using an earlier one")
            continue
        decider = recorded(parent.decisions)
        run = LocalRun.from_snapshot(index, snap, decider=decider, answers=parent.decisions)
        return run, tick, notes
    start = parent.start
    if start.base is not None:
        raise BranchError(
            409, f"run {parent.run_id} is a branch without a usable snapshot at its start"
        )
    if notes:
        notes.append("no usable snapshot: re-derived from the run's start")
    run = LocalRun(
        index,
        parent.run_id,
        start.seed,
        1,
        start.step_minutes,
        start.start_minute,
        decide_budget=start.decide_budget,
        decide_deadline=start.decide_deadline,
        decider=recorded(parent.decisions),
    )
    return run, -1, notes


def open_stories(
    index: WorldIndex, parent: RunLog, at_tick: int, run_id: str, states: dict[str, Any]
) -> tuple[list[EventHappened], list[RenderRequested]]:
    """The parent's stories a later event can still refer to (those in an NPC's memory),
    as the impact stage knows them after ``at_tick``, copied into run ``run_id``; and the
    render requests the parent's events made up to then."""
    book, requests = book_of(index, (e for e in parent.events if e.tick <= at_tick))
    remembered = sorted({m[1] for s in states.values() for m in s.get("mem", [])})
    out = []
    for event_id in remembered:
        found = book.state_of(parent.run_id, event_id)
        if found is None:
            continue  # before the parent's own log (a branch of a branch): not re-scored
        event, state = found
        out.append(event.model_copy(update={"run_id": run_id, "restored": state}))
    return out, requests


# ---- compare ---------------------------------------------------------------------------------


@dataclass
class RunDiff:
    """Where two runs part."""

    run_a: str
    run_b: str
    common_ticks: int
    first_divergent_tick: int | None  # None: identical over their common ticks
    only_in_a: list[str]
    only_in_b: list[str]
    events_only_in_a: int
    events_only_in_b: int
    posts_a: dict[str, int]  # per channel, from the divergence on
    posts_b: dict[str, int]
    relationships_moved: list[dict[str, Any]]  # NPC pairs whose relationship differs most


def diff(
    a: RunLog,
    b: RunLog,
    states_a: dict[str, Any] | None = None,
    states_b: dict[str, Any] | None = None,
) -> RunDiff:
    """Compare two runs tick by tick over the ticks both have; ``states_*`` (each run's
    world at the last common tick, when known) rank the relationships that moved most."""
    common = sorted(set(a.ticks) & set(b.ticks))
    first = next((t for t in common if a.ticks[t].state_hash != b.ticks[t].state_hash), None)
    since = first if first is not None else (common[-1] + 1 if common else 0)
    ids_a = {e.event_id: content(e) for e in a.events if e.tick >= since}
    ids_b = {e.event_id: content(e) for e in b.events if e.tick >= since}
    only_a = sorted(k for k in ids_a if ids_b.get(k) != ids_a[k])
    only_b = sorted(k for k in ids_b if ids_a.get(k) != ids_b[k])

    def per_channel(posts: list[PostPublished]) -> dict[str, int]:
        return dict(sorted(Counter(p.channel for p in posts if p.tick >= since).items()))

    return RunDiff(
        a.run_id,
        b.run_id,
        len(common),
        first,
        only_a[:MAX_LISTED],
        only_b[:MAX_LISTED],
        len(only_a),
        len(only_b),
        per_channel(a.posts),
        per_channel(b.posts),
        relationships_moved(states_a or {}, states_b or {}),
    )


def relationships_moved(
    a: dict[str, Any], b: dict[str, Any], top: int = 10
) -> list[dict[str, Any]]:
    """The NPC pairs whose [affinity, trust, familiarity] differ most between two worlds."""
    moved: defaultdict[tuple[str, str], float] = defaultdict(float)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for npc in sorted(set(a) | set(b)):
        rel_a = a.get(npc, {}).get("rel", {})
        rel_b = b.get(npc, {}).get("rel", {})
        for other in sorted(set(rel_a) | set(rel_b)):
            va = rel_a.get(other, [0.0, 0.0, 0.0])
            vb = rel_b.get(other, [0.0, 0.0, 0.0])
            delta = sum(abs(x - y) for x, y in zip(va, vb, strict=True))
            if delta > 0:
                moved[(npc, other)] = delta
                rows[(npc, other)] = {
                    "npc": npc,
                    "other": other,
                    "a": va,
                    "b": vb,
                    "delta": round(delta, 4),
                }
    ranked = sorted(moved, key=lambda k: (-moved[k], k))[:top]
    return [rows[k] for k in ranked]


def world_at(index: WorldIndex, log: RunLog, tick: int) -> dict[str, Any]:
    """A run's NPC states after ``tick``, re-derived from its log (nearest snapshot first)."""
    if not log.first_tick - 1 <= tick <= log.last_tick:
        raise BranchError(
            422, f"run {log.run_id} has ticks {log.first_tick}..{log.last_tick}, not {tick}"
        )
    run = _restore(index, log, tick)[0] if log.start.base is None else _start_of(index, log)[0]
    for t in range(run.clock.current + 1, tick + 1):
        done = log.ticks.get(t)
        run.step(done.injected if done else None)
    return run.snapshot().states


def last_common_tick(a: RunLog, b: RunLog) -> int | None:
    """The last tick both runs have, if they share one."""
    last = min(a.last_tick, b.last_tick)
    return last if last >= max(a.first_tick, b.first_tick) else None


def compare(a: RunLog, b: RunLog, world: Callable[[], WorldIndex]) -> RunDiff:
    """:func:`diff` of two runs, with their worlds at the last tick both have re-derived
    (``world()`` loads the runs' world; it is called only when they share a tick)."""
    last = last_common_tick(a, b)
    if last is None:
        return diff(a, b)
    index = world()
    return diff(a, b, world_at(index, a, last), world_at(index, b, last))
