"""Full-world snapshots: what decides a run's future, as of the end of one tick (pure).

A snapshot of run R after tick T is, on the ``snapshots`` topic:

* the clock's part: R's start command (its manifest: seed, world, catalog digest, step,
  parent and branch tick) and the clock's state after T (:class:`topics.models.ClockState`:
  the last hour's tallies, mean affinity, conflict, when each director rule last fired);
* every shard's parts: the full state of each of its NPCs (reputation, relationships,
  memories, goals, cooldowns), split into parts that stay far below Kafka's message limit.

Each part carries the sha256 of its payload, so a corrupt or truncated snapshot is
detected and refused (:func:`assemble`). The impact stage's open stories and the posting
quotas are not copied into it: both are pure functions of the run's events (the impact
rules, :func:`sim.impact.book_of`), so a restore derives them from the event log up to T.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from topics.models import ClockState, RunCommanded, SnapshotPart, StateRestored
from worldfeed.gcpause import gc_paused

MAX_PART_BYTES = 256 * 1024  # of state JSON per part: far below the topic's message limit


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def states_sha(states: Mapping[str, Any]) -> str:
    """sha256 of canonical JSON of NPC states."""
    return hashlib.sha256(_canonical(states)).hexdigest()


FEED_FIELDS = frozenset({"feed_window", "feed_posts"})  # ClockState's, for the feed loop


def _clock_json(clock: ClockState) -> dict[str, Any]:
    # without the feed loop's fields when it is off: a snapshot written before they existed
    # (or of a run without the loop) keeps its checksum
    off = not clock.feed_window and not clock.feed_posts
    return clock.model_dump(mode="json", exclude=set(FEED_FIELDS) if off else None)


def clock_sha(start: RunCommanded | None, clock: ClockState | None) -> str:
    """sha256 of the clock part's payload."""
    start_json = None
    if start is not None:
        start_json = start.model_dump(mode="json", exclude={"base"})
        start_json["base"] = None if start.base is None else _clock_json(start.base)
    payload = {"start": start_json, "clock": None if clock is None else _clock_json(clock)}
    return hashlib.sha256(_canonical(payload)).hexdigest()


def part_sha(part: SnapshotPart) -> str:
    """What a part's ``sha256`` must be."""
    if part.source == "clock":
        return clock_sha(part.start, part.clock)
    return states_sha(part.states)


def split_states(
    states: Mapping[str, Any], max_bytes: int = MAX_PART_BYTES
) -> list[dict[str, Any]]:
    """States in NPC id order, cut into chunks of about ``max_bytes`` of JSON (at least one)."""
    chunks: list[dict[str, Any]] = [{}]
    size = 0
    for npc_id in sorted(states):
        n = len(orjson.dumps(states[npc_id])) + len(npc_id) + 8
        if chunks[-1] and size + n > max_bytes:
            chunks.append({})
            size = 0
        chunks[-1][npc_id] = states[npc_id]
        size += n
    return chunks


@gc_paused()  # copies of every state: the collector would rescan them as they are made
def shard_parts(
    run_id: str,
    tick: int,
    shard: int,
    n_shards: int,
    states: Mapping[str, Any],
    max_bytes: int = MAX_PART_BYTES,
) -> list[SnapshotPart]:
    """One shard's NPC states after ``tick`` as snapshot parts (copies: the shard goes on
    changing its states)."""
    chunks = split_states(states, max_bytes)
    parts = []
    for i, chunk in enumerate(chunks):
        raw = _canonical(chunk)
        parts.append(
            SnapshotPart(
                run_id=run_id,
                tick=tick,
                source="shard",
                shard=shard,
                n_shards=n_shards,
                part=i,
                parts=len(chunks),
                states=orjson.loads(raw),
                sha256=hashlib.sha256(raw).hexdigest(),
            )
        )
    return parts


def clock_part(
    run_id: str, tick: int, n_shards: int, start: RunCommanded | None, clock: ClockState
) -> SnapshotPart:
    """The clock's part of the snapshot after ``tick``."""
    return SnapshotPart(
        run_id=run_id,
        tick=tick,
        source="clock",
        n_shards=n_shards,
        start=start,
        clock=clock,
        sha256=clock_sha(start, clock),
    )


@dataclass
class Snapshot:
    """A complete, verified snapshot: the world after ``tick``."""

    run_id: str
    tick: int
    start: RunCommanded
    clock: ClockState
    states: dict[str, dict[str, Any]]  # every NPC
    parts: int
    bytes: int

    @property
    def catalog_digest(self) -> str | None:
        """The catalog digest the run was started with."""
        return self.start.catalog_digest


@dataclass
class Refused:
    """A snapshot that cannot be used, and why."""

    run_id: str
    tick: int
    reason: str


def assemble(parts: Iterable[SnapshotPart]) -> dict[int, Snapshot | Refused]:
    """Every snapshot tick of the parts (one run), complete and verified, or refused.

    A part whose payload does not match its sha256 is corrupt; a snapshot missing the
    clock's part or any part of any shard is truncated. A part written twice (a
    redelivery) is the same part.
    """
    by_tick: defaultdict[int, dict[tuple[str, int, int], SnapshotPart]] = defaultdict(dict)
    for part in parts:
        by_tick[part.tick][(part.source, part.shard, part.part)] = part
    out: dict[int, Snapshot | Refused] = {}
    for tick, got in sorted(by_tick.items()):
        run_id = next(iter(got.values())).run_id
        out[tick] = _assemble_one(run_id, tick, got)
    return out


def _assemble_one(
    run_id: str, tick: int, got: dict[tuple[str, int, int], SnapshotPart]
) -> Snapshot | Refused:
    for (source, shard, part), msg in sorted(got.items()):
        if part_sha(msg) != msg.sha256:
            return Refused(run_id, tick, f"{source} part {shard}/{part}: checksum mismatch")
    clock = got.get(("clock", 0, 0))
    if clock is None or clock.start is None or clock.clock is None:
        return Refused(run_id, tick, "truncated: the clock's part is missing")
    n_shards = clock.n_shards
    states: dict[str, dict[str, Any]] = {}
    size = 0
    for shard in range(n_shards):
        first = got.get(("shard", shard, 0))
        if first is None:
            return Refused(run_id, tick, f"truncated: shard {shard} of {n_shards} is missing")
        for i in range(first.parts):
            found = got.get(("shard", shard, i))
            if found is None:
                return Refused(
                    run_id, tick, f"truncated: shard {shard} part {i} of {first.parts} is missing"
                )
            states.update(found.states)
            size += len(orjson.dumps(found.states))
    return Snapshot(run_id, tick, clock.start, clock.clock, states, len(got), size)


def restore_parts(
    run_id: str,
    snapshot_tick: int,
    start: RunCommanded,
    states: Mapping[str, Any],
    owner: Any,
    n_shards: int,
    max_bytes: int = MAX_PART_BYTES,
) -> list[StateRestored]:
    """The messages that start a branch's shards from ``states`` (as of ``snapshot_tick``).

    ``owner(npc_id, n_shards)`` is the shard of an NPC (:func:`sim.world.shard_of`).
    """
    by_shard: dict[int, dict[str, Any]] = {q: {} for q in range(n_shards)}
    for npc_id, state in states.items():
        by_shard[owner(npc_id, n_shards)][npc_id] = state
    out: list[StateRestored] = []
    for q, mine in by_shard.items():
        chunks = split_states(mine, max_bytes)
        out.extend(
            StateRestored(
                run_id=run_id,
                tick=snapshot_tick,
                shard=q,
                n_shards=n_shards,
                part=i,
                parts=len(chunks),
                states=chunk,
                world=start.world,
                seed=start.seed,
                step_minutes=start.step_minutes,
                start_minute=start.start_minute,
            )
            for i, chunk in enumerate(chunks)
        )
    return out
