"""A catalog indexed for fast per-tick decisions.

Everything here is static for a run: where each NPC is at each hour (from their
schedule), who is where, which event types fit a place and hour. Decisions about
other NPCs' whereabouts read this index, never another shard's live state.

Places constrain whereabouts here, once, for every shard alike (:func:`admit`):

* opening hours: an NPC scheduled at a place while it is closed (``open_hour`` ..
  ``close_hour``, a close below the open meaning after midnight) goes home instead,
  so a closed place hosts nobody and no NPC event;
* capacity: when more NPCs are scheduled at a place in an hour than it holds, it
  admits them by a seeded ranking (its staff first, then by a stable hash of place
  and NPC, never by arrival order) and the rest go home.

An NPC's own home always takes them in, whatever its hours or capacity: it is where
the turned-away go.
"""

from __future__ import annotations

import functools
import gc
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from catalog import load_catalog
from catalog.event_refs import is_open
from catalog.models import Catalog, EventType, Goal, Npc, Place
from worldfeed.gcpause import gc_paused
from worldfeed.ids import stable_hash64
from worldfeed.settings import ROOT

HOURS = 24


def shard_of(npc_id: str, n_shards: int) -> int:
    """The shard (partition) that owns an NPC; depends only on the id and shard count."""
    return stable_hash64("shard", npc_id) % n_shards


def resolve_world(world: str) -> Path:
    """A world name under catalog/worlds/, or a path to a world directory."""
    path = Path(world)
    if path.is_dir():
        return path.resolve()
    return ROOT / "catalog" / "worlds" / world


@dataclass
class WorldIndex:
    """Static lookups derived from a catalog."""

    catalog: Catalog
    npc_ids: list[str] = field(default_factory=list)
    location: dict[str, list[str | None]] = field(default_factory=dict)  # npc -> place by hour
    occupancy: list[dict[str, list[str]]] = field(default_factory=list)  # hour -> place -> npcs
    types_by_kind: dict[tuple[int, str], list[EventType]] = field(default_factory=dict)
    tags: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    journalists: list[str] = field(default_factory=list)
    relationships: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # initial
    goals: dict[str, dict[str, float]] = field(default_factory=dict)  # initial progress
    traits: dict[str, dict[str, float]] = field(default_factory=dict)  # npc -> trait -> value
    turned_away: list[dict[str, list[str]]] = field(default_factory=list)  # hour -> place -> npcs
    goals_of: dict[str, tuple[Goal, ...]] = field(default_factory=dict)  # npc -> goals, by priority
    goal_place_npcs: frozenset[str] = frozenset()  # NPCs with a goal about a place
    advances: dict[str, frozenset[str]] = field(default_factory=dict)  # type -> actor goal kinds
    _shards: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    _occupations: dict[str | None, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, catalog: Catalog) -> WorldIndex:
        """Index a catalog (linear in NPC count)."""
        idx = cls(catalog=catalog)
        idx.npc_ids = sorted(catalog.npcs)
        for npc_id in idx.npc_ids:
            idx.traits[npc_id] = catalog.npcs[npc_id].traits.model_dump()
            idx.location[npc_id] = _hourly_places(catalog.npcs[npc_id])
        idx.occupancy, idx.turned_away = admit(catalog, idx.npc_ids, idx.location)
        kinds = {p.kind for p in catalog.places.values()}
        # a reaction to a post (sim.feed) happens only as one, never as a choice of the rules
        reactions = set(catalog.feed.reactions.model_dump().values())
        for h in range(HOURS):
            for kind in kinds:
                idx.types_by_kind[(h, kind)] = [
                    t
                    for t in catalog.event_types.values()
                    if t.id not in reactions
                    and t.preconditions.start_hour <= h < t.preconditions.end_hour
                    and (not t.preconditions.place_kinds or kind in t.preconditions.place_kinds)
                ]
        for rel in catalog.relationships:
            idx.tags[(rel.source, rel.target)] = frozenset(rel.tags)
            idx.relationships.setdefault(rel.source, {})[rel.target] = [
                float(rel.affinity),
                float(rel.trust),
                float(rel.familiarity),
            ]
        goals_of: dict[str, list[Goal]] = {}
        for goal in catalog.goals:
            idx.goals.setdefault(goal.npc, {})[goal.kind] = float(goal.progress)
            goals_of.setdefault(goal.npc, []).append(goal)
        idx.goals_of = {
            npc: tuple(sorted(gs, key=lambda g: (-g.priority, g.kind, g.target or "")))
            for npc, gs in sorted(goals_of.items())
        }
        idx.goal_place_npcs = frozenset(
            npc for npc, gs in idx.goals_of.items() if any(g.target in catalog.places for g in gs)
        )
        idx.advances = {
            t.id: frozenset(
                e.goal_kind
                for e in t.effects
                if e.who == "actor" and e.field == "goal_progress" and e.goal_kind and e.delta > 0
            )
            for t in catalog.event_types.values()
        }
        idx.journalists = [n for n in idx.npc_ids if "news" in catalog.npcs[n].channels]
        return idx

    def shard_npcs(self, shard: int, n_shards: int) -> list[str]:
        """NPC ids owned by one shard, sorted."""
        key = (shard, n_shards)
        if key not in self._shards:
            self._shards[key] = [n for n in self.npc_ids if shard_of(n, n_shards) == shard]
        return self._shards[key]

    def with_occupation(self, occupation: str | None) -> tuple[str, ...]:
        """NPC ids whose occupation contains ``occupation`` (case-insensitive); None: all."""
        if occupation not in self._occupations:
            occ = (occupation or "").lower()
            self._occupations[occupation] = tuple(
                n for n in self.npc_ids if occ in self.catalog.npcs[n].occupation.lower()
            )
        return self._occupations[occupation]

    def npc(self, npc_id: str) -> Npc:
        """Catalog profile of an NPC."""
        return self.catalog.npcs[npc_id]

    def place_name(self, place_id: str | None) -> str:
        """Human name of a place (or 'somewhere')."""
        if place_id is None or place_id not in self.catalog.places:
            return "somewhere"
        return self.catalog.places[place_id].name


def admission_rank(place: Place, npc: Npc) -> tuple[int, int]:
    """Who a full place admits first (lowest): its staff, then a stable hash of (place, NPC).

    The same on every shard and every run of the catalog; never arrival order.
    """
    return (0 if npc.work == place.id else 1, stable_hash64("admit", place.id, npc.id))


def admit(
    catalog: Catalog, npc_ids: list[str], location: dict[str, list[str | None]]
) -> tuple[list[dict[str, list[str]]], list[dict[str, list[str]]]]:
    """Apply opening hours and capacity to the scheduled whereabouts, in place.

    Returns (occupancy, turned away): hour -> place -> sorted NPC ids. An NPC sent away
    (place closed or full) is at home that hour instead (see the module docstring).
    """
    places, npcs = catalog.places, catalog.npcs
    ranks: dict[tuple[str, str], tuple[int, int]] = {}  # the same crowd, hour after hour

    def rank(place: Place, npc_id: str) -> tuple[int, int]:
        key = (place.id, npc_id)
        if key not in ranks:
            ranks[key] = admission_rank(place, npcs[npc_id])
        return ranks[key]

    occupancy: list[dict[str, list[str]]] = []
    turned: list[dict[str, list[str]]] = []
    for h in range(HOURS):
        wanted: defaultdict[str, list[str]] = defaultdict(list)
        for npc_id in npc_ids:
            place = location[npc_id][h]
            if place is not None:
                wanted[place].append(npc_id)
        here: defaultdict[str, list[str]] = defaultdict(list)
        away: defaultdict[str, list[str]] = defaultdict(list)
        for place_id in sorted(wanted):
            who = wanted[place_id]
            spot = places.get(place_id)
            if spot is None:  # not a catalog place (the checks report it): unconstrained
                here[place_id].extend(who)
                continue
            residents = [n for n in who if npcs[n].home == place_id]
            visitors = [n for n in who if npcs[n].home != place_id]
            if residents:
                here[place_id].extend(residents)
            if not is_open(spot, h):
                away[place_id].extend(visitors)
                continue
            room = max(0, spot.capacity - len(residents))
            if len(visitors) > room:
                visitors.sort(key=functools.partial(rank, spot))
                away[place_id].extend(visitors[room:])
                visitors = visitors[:room]
            if visitors:
                here[place_id].extend(visitors)
        for sent in away.values():
            for npc_id in sent:
                home = npcs[npc_id].home
                location[npc_id][h] = home
                here[home].append(npc_id)
        occupancy.append({p: sorted(ns) for p, ns in sorted(here.items())})
        turned.append({p: sorted(ns) for p, ns in sorted(away.items())})
    return occupancy, turned


def _hourly_places(npc: Npc) -> list[str | None]:
    """Where the NPC is at each hour; None while asleep (at home, not acting)."""
    hours: list[str | None] = [None] * HOURS
    awake = [False] * HOURS
    for block in npc.schedule:
        place = block.place
        if place == "home":
            place = npc.home
        elif place == "work":
            place = npc.work or npc.home
        asleep = "sleep" in block.activity.lower()
        for h in range(block.start_hour, min(block.end_hour, HOURS)):
            hours[h] = None if asleep else place
            awake[h] = not asleep
    if not npc.schedule:  # no schedule: home, awake 7..23
        for h in range(7, 23):
            hours[h] = npc.home
    return hours


@functools.lru_cache(maxsize=8)
def load_world(world: str) -> WorldIndex:
    """Load, validate and index a world (cached per process).

    The index is millions of long-lived objects at 100k NPCs; they are moved out of
    the cyclic garbage collector's view (``gc.freeze``), or every full collection walks
    them all again (a 0.2 s pause in the middle of a tick at 10k NPCs).
    """
    with gc_paused():  # millions of acyclic objects: 7 s instead of 18 s at 100k NPCs
        index = WorldIndex.build(load_catalog(resolve_world(world)))
        # Frozen before the collector runs again (it would walk all of them once more).
        # No gc.collect() first: it takes 2.3 s at 100k NPCs and finds ~30 objects.
        gc.freeze()
    return index
