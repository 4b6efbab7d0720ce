"""The clock's view of a run: which tick is in flight, who reported, what comes next.

Pure state (no I/O; wall-clock time is passed in): ``streams/clock.py`` is the shell
that reads the clock inbox, sends ticks and records completed ones.

Tick t+1 starts only after every shard reported tick t done (decided, emitted, and
applied every effect of tick t). That makes a run's result independent of partition
count, worker count and timing.

The clock also makes the tick-wide inputs of the next tick from the shards' integer
tallies (see :mod:`sim.director`): events and render requests of the last simulated
hour, mean affinity, share of NPCs in conflict, and when each director rule last
fired. ``TickCompleted`` carries the tallies, so :func:`recover` rebuilds them from the
ticks log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sim.calendar import (
    MINUTES_PER_DAY,
    MINUTES_PER_HOUR,
    SECONDS_PER_MINUTE,
    days_to_ticks,
    minute_of_tick,
)
from sim.deliberate import pick_focal
from sim.feed import add_counts, advance_window, top_posts
from topics.models import (
    AFFINITY_SCALE,
    ClockState,
    FeedPost,
    InjectedEvent,
    RunCommanded,
    ShardTickDone,
    TickCompleted,
    TickStarted,
)
from worldfeed.ids import combine_digests

log = logging.getLogger(__name__)


@dataclass
class RunClock:
    """State of one run as the clock sees it (pure: no I/O)."""

    run_id: str
    seed: int
    world: str
    step_minutes: int
    total_ticks: int
    speed: float
    n_shards: int
    start_minute: int = 0
    current: int = -1  # tick in flight, -1 before the first
    paused: bool = False
    stopped: bool = False
    finished: bool = False
    waiting: bool = False  # tick `current` completed, next not started (paused or timed)
    reports: dict[int, ShardTickDone] = field(default_factory=dict)
    injected: list[InjectedEvent] = field(default_factory=list)  # for the next tick
    # what tick `current` carries: a re-sent copy (the watchdog) must carry the same
    in_flight: list[InjectedEvent] = field(default_factory=list)
    tick_started_wall: float = 0.0
    last_sent: float = 0.0  # when tick `current` was last (re-)sent, for the watchdog
    recent: list[int] = field(default_factory=list)  # events of the last hour's ticks
    recent_posts: list[int] = field(default_factory=list)  # render requests, same ticks
    # after the last completed tick: (affinity sum in thousandths, relationships) and
    # (NPCs in conflict, NPCs); None before the first
    affinity: tuple[int, int] | None = None
    conflict: tuple[int, int] | None = None
    director_last: dict[str, int] = field(default_factory=dict)  # rule id -> last tick fired
    # full-world snapshots: every N ticks (0: none), and after the next tick on demand
    snapshot_every: int = 0
    snapshot_asked: bool = False
    snapshotting: bool = False  # tick `current` writes one
    start: RunCommanded | None = None  # the run's start command: its manifest
    decide_budget: int = 0  # focal NPCs per tick (sim.deliberate); 0: no deliberation
    decide_deadline: int = 1  # ticks from a decision's request to its application
    focal: list[list[str]] = field(default_factory=list)  # who deliberates next tick, by cohort
    # the feed loop (sim.feed): ticks a post stays (0: off) and the posts in the feed now
    feed_window: int = 0
    feed_posts: list[FeedPost] = field(default_factory=list)

    @classmethod
    def from_command(
        cls, cmd: RunCommanded, n_shards: int, snapshot_every: int | None = None
    ) -> RunClock:
        """A run's clock from its start command; a branch's continues from its base.

        ``snapshot_every``: ticks between full-world snapshots (None: once per sim day,
        0: never). Snapshots never change what a run computes.
        """
        ticks = days_to_ticks(cmd.days, cmd.step_minutes)
        if snapshot_every is None:
            snapshot_every = max(1, MINUTES_PER_DAY // cmd.step_minutes)
        run = cls(
            run_id=cmd.run_id,
            seed=cmd.seed,
            world=cmd.world,
            step_minutes=cmd.step_minutes,
            total_ticks=ticks if cmd.base is None else cmd.base.tick + 1 + ticks,
            speed=cmd.speed,
            n_shards=n_shards,
            start_minute=cmd.start_minute,
            snapshot_every=snapshot_every,
            start=cmd,
            decide_budget=cmd.decide_budget,
            decide_deadline=cmd.decide_deadline,
        )
        if cmd.base is not None:
            run.restore(cmd.base)
        run.injected = list(cmd.injected)
        return run

    def restore(self, base: ClockState) -> None:
        """Continue after ``base.tick`` with the clock's inputs as they were then."""
        self.current = base.tick
        self.waiting = True
        self.recent = list(base.recent_events)
        self.recent_posts = list(base.recent_posts)
        self.affinity = (base.affinity_milli, base.relationships)
        self.conflict = (base.in_conflict, base.npcs)
        self.director_last = dict(base.director_last)
        self.focal = [list(g) for g in base.focal]
        self.feed_window = base.feed_window
        self.feed_posts = list(base.feed_posts)

    def state(self) -> ClockState:
        """The clock's inputs after the last completed tick (for snapshots and branches)."""
        affinity = self.affinity or (0, 0)
        conflict = self.conflict or (0, 0)
        return ClockState(
            tick=self.current,
            recent_events=list(self.recent),
            recent_posts=list(self.recent_posts),
            affinity_milli=affinity[0],
            relationships=affinity[1],
            in_conflict=conflict[0],
            npcs=conflict[1],
            director_last=dict(sorted(self.director_last.items())),
            focal=[list(g) for g in self.focal],
            feed_window=self.feed_window,
            feed_posts=list(self.feed_posts),
        )

    def apply(self, cmd: RunCommanded) -> None:
        """Apply pause / resume / stop / inject / speed to the run's flags."""
        if cmd.command == "pause":
            self.paused = True
        elif cmd.command == "resume":
            self.paused = False
        elif cmd.command == "stop":  # the tick in flight, or one more, is the last
            self.stopped = True
            self.paused = False
        elif cmd.command == "inject" and cmd.event is not None:
            self.injected.append(cmd.event)
        elif cmd.command == "speed":  # from the next tick's delay on
            self.speed = cmd.speed
        elif cmd.command == "snapshot":
            self.snapshot_asked = True

    def start_next(self, now: float) -> int:
        """Put the next tick in flight with the injections received so far; return it."""
        self.current += 1
        self.waiting = False
        self.reports = {}
        self.tick_started_wall = now
        self.in_flight, self.injected = self.injected, []
        every = self.snapshot_every
        self.snapshotting = self.snapshot_asked or bool(every and (self.current + 1) % every == 0)
        self.snapshot_asked = False
        return self.current

    def missing(self) -> list[int]:
        """Shards that have not reported the tick in flight."""
        return [s for s in range(self.n_shards) if s not in self.reports]

    def tick_message(self, tick: int, shard: int) -> TickStarted:
        """The copy of tick ``tick`` for one shard."""
        return TickStarted(
            run_id=self.run_id,
            seed=self.seed,
            world=self.world,
            tick=tick,
            sim_minute=minute_of_tick(self.start_minute, tick, self.step_minutes),
            step_minutes=self.step_minutes,
            shard=shard,
            n_shards=self.n_shards,
            injected=list(self.in_flight),
            recent_events=sum(self.recent),
            posts_last_hour=sum(self.recent_posts),
            mean_affinity=self.mean_affinity,
            conflict_share=self.conflict_share,
            director_last=dict(sorted(self.director_last.items())),
            snapshot=self.snapshotting,
            focal=[list(g) for g in self.focal],
            decide_budget=self.decide_budget,
            decide_deadline=self.decide_deadline,
            feed=list(self.feed_posts),
        )

    @property
    def mean_affinity(self) -> float | None:
        """Mean affinity of every relationship after the last completed tick."""
        if self.affinity is None or self.affinity[1] == 0:
            return None
        milli, count = self.affinity
        return round(milli / (count * AFFINITY_SCALE), 4)

    @property
    def conflict_share(self) -> float | None:
        """Share of NPCs in conflict after the last completed tick."""
        if self.conflict is None or self.conflict[1] == 0:
            return None
        return round(self.conflict[0] / self.conflict[1], 4)

    def tally(self, done: TickCompleted) -> None:
        """Take a completed tick's tallies into the next tick's inputs."""
        per_hour = self.ticks_per_hour
        self.recent = (self.recent + [done.events])[-per_hour:]
        self.recent_posts = (self.recent_posts + [done.render_requests])[-per_hour:]
        self.affinity = (done.affinity_milli, done.relationships)
        self.conflict = (done.in_conflict, done.npcs)
        for rule in done.director_fired:
            self.director_last[rule] = done.tick
        if done.feed_window:
            self.feed_window = done.feed_window
            self.feed_posts = advance_window(
                self.feed_posts, done.tick, done.feed_posts, done.feed_counts, done.feed_window
            )

    def record(self, done: ShardTickDone, now: float) -> TickCompleted | None:
        """Record a shard's report; return the completed tick once every shard reported."""
        if done.tick != self.current or done.n_shards != self.n_shards:
            log.warning(
                "run %s: ignoring stale report tick=%s shard=%s (current %s)",
                self.run_id,
                done.tick,
                done.shard,
                self.current,
            )
            return None
        self.reports[done.shard] = done  # a redelivered report overwrites itself
        if len(self.reports) < self.n_shards:
            return None
        reports = [self.reports[s] for s in sorted(self.reports)]
        self.reports = {}
        last = self.stopped or self.current + 1 >= self.total_ticks
        self.finished = last
        self.waiting = not last
        completed = TickCompleted(
            run_id=self.run_id,
            tick=self.current,
            sim_minute=minute_of_tick(self.start_minute, self.current, self.step_minutes),
            state_hash=f"{combine_digests(r.state_digest for r in reports):016x}",
            npcs=sum(r.npcs for r in reports),
            events=sum(r.events for r in reports),
            effects=sum(r.effects for r in reports),
            wall_ms=round((now - self.tick_started_wall) * 1000, 3),
            last=last,
            render_requests=sum(r.render_requests for r in reports),
            affinity_milli=sum(r.affinity_milli for r in reports),
            relationships=sum(r.relationships for r in reports),
            in_conflict=sum(r.in_conflict for r in reports),
            director_fired=sorted({rule for r in reports for rule in r.director_fired}),
            injected=list(self.in_flight),
            exposures=sum(r.exposures for r in reports),
            reactions=sum(r.reactions for r in reports),
            feed_window=max(r.feed_window for r in reports),
            feed_posts=top_posts(
                (p for r in reports for p in r.feed_posts), max(r.feed_top for r in reports)
            ),
        )
        counts: dict[str, list[int]] = {}
        for r in reports:
            add_counts(counts, r.feed_counts)
        completed.feed_counts = dict(sorted(counts.items()))
        self.tally(completed)
        if self.decide_budget:
            self.focal = pick_focal(
                self.seed, self.current + 1, (r.salient for r in reports), self.decide_budget
            )
            completed.focal = [list(g) for g in self.focal]
        return completed

    @property
    def ticks_per_hour(self) -> int:
        """Ticks in a simulated hour (at least one): the window of ``recent``."""
        return max(1, MINUTES_PER_HOUR // self.step_minutes)

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next tick at this run's speed (0 = as fast as possible)."""
        if self.speed <= 0:
            return 0.0
        budget = self.step_minutes * SECONDS_PER_MINUTE / self.speed
        return max(0.0, budget - (now - self.tick_started_wall))


def recover(
    commands: list[RunCommanded],
    completed: list[TickCompleted],
    n_shards: int,
    snapshot_every: int | None = None,
) -> dict[str, RunClock]:
    """Rebuild the clock's runs from the log: accepted commands and completed ticks.

    A recovered run waits after its last completed tick (``waiting``), so the clock
    resumes with the next one: no tick is skipped, none is repeated. Injections are
    taken in the order they were accepted, and each completed tick logs the ones it
    took: those beyond what the completed ticks took are still pending, and go with the
    next tick (an injection is never lost to a restart).
    """
    runs: dict[str, RunClock] = {}
    for cmd in commands:
        if cmd.command == "start":
            runs.setdefault(cmd.run_id, RunClock.from_command(cmd, n_shards, snapshot_every))
        elif cmd.run_id in runs:
            runs[cmd.run_id].apply(cmd)
    for run in runs.values():
        run.waiting = True
        run.snapshot_asked = False
    ticks: dict[str, dict[int, TickCompleted]] = {}
    for done in completed:  # a tick logged twice (a redelivery) is the same tick
        if done.run_id in runs:
            ticks.setdefault(done.run_id, {})[done.tick] = done
    for run_id, by_tick in ticks.items():
        run = runs[run_id]
        if run.start is not None and run.start.base is not None:  # a branch: from its base
            by_tick = {t: d for t, d in by_tick.items() if t > run.start.base.tick}
            if not by_tick:
                continue
        taken = sum(len(done.injected) for done in by_tick.values())
        run.injected = run.injected[taken:]
        for tick in sorted(by_tick):  # replay the tallies in tick order, as record did
            run.tally(by_tick[tick])
        last = by_tick[max(by_tick)]
        run.focal = [list(g) for g in last.focal]
        run.current = last.tick
        run.finished = last.last
        window = run.ticks_per_hour
        hour = [t for t in range(last.tick - window + 1, last.tick + 1) if t >= 0]
        base = run.start.base if run.start is not None else None
        events, posts = {}, {}
        if base is not None:  # a branch's hour may begin in its parent
            first = base.tick - len(base.recent_events) + 1
            events = {first + i: n for i, n in enumerate(base.recent_events)}
            posts = {first + i: n for i, n in enumerate(base.recent_posts)}
        for t, done in by_tick.items():
            events[t], posts[t] = done.events, done.render_requests
        run.recent = [events.get(t, 0) for t in hour]
        run.recent_posts = [posts.get(t, 0) for t in hour]
    return runs
