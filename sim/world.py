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
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from catalog import load_catalog
from catalog.digest import canonical, kept
from catalog.event_refs import is_open
from catalog.models import Catalog, EventType, Goal, Npc, Place, Relationship
from catalog.stream import load_streamed
from sim import worldcache
from worldfeed.gcpause import gc_paused
from worldfeed.ids import stable_hash64
from worldfeed.settings import ROOT

HOURS = 24

log = logging.getLogger(__name__)


def shard_of(npc_id: str, n_shards: int) -> int:
    """The shard (partition) that owns an NPC; depends only on the id and shard count."""
    return stable_hash64("shard", npc_id) % n_shards


def resolve_world(world: str) -> Path:
    """A world name under catalog/worlds/, or a path to a world directory."""
    path = Path(world)
    if path.is_dir():
        return path.resolve()
    return ROOT / "catalog" / "worlds" / world


class Card(NamedTuple):
    """An NPC's entry in the directory every shard holds: what decisions about other NPCs
    read (names in summaries, fame, where the turned-away go, who posts where)."""

    display_name: str
    fame: float
    home: str
    occupation: str
    posting_propensity: float
    channels: tuple[str, ...]


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
    cards: dict[str, Card] = field(default_factory=dict)  # npc -> the directory's fields
    # npc -> its seed state as JSON, digest and relationship tally, made once per process
    # (run-independent): sim.barrier.seeded
    seeds: dict[str, tuple[bytes, int, tuple[int, int, int]]] = field(default_factory=dict)
    _shards: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    _occupations: dict[str | None, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, catalog: Catalog) -> WorldIndex:
        """Index a catalog (linear in NPC count)."""
        idx = cls(catalog=catalog)
        idx.npc_ids = sorted(catalog.npcs)
        for npc_id in idx.npc_ids:
            idx._take_npc(catalog.npcs[npc_id])
        idx.occupancy, idx.turned_away = admit(catalog, idx.npc_ids, idx.location)
        for rel in catalog.relationships:
            idx._take_relationship(rel)
        idx.index_rules()
        return idx

    def _take_npc(self, npc: Npc) -> None:
        """What the index derives from one NPC's profile."""
        self.traits[npc.id] = npc.traits.model_dump()
        self.location[npc.id] = _hourly_places(npc)
        self.cards[npc.id] = Card(
            npc.display_name,
            npc.fame,
            npc.home,
            npc.occupation,
            npc.posting_propensity,
            tuple(npc.channels),
        )

    def _take_relationship(self, rel: Relationship) -> None:
        """What the index derives from one relationship."""
        self.tags[(rel.source, rel.target)] = frozenset(rel.tags)
        self.relationships.setdefault(rel.source, {})[rel.target] = [
            float(rel.affinity),
            float(rel.trust),
            float(rel.familiarity),
        ]

    @classmethod
    def streamed(cls, root: Path) -> dict[str, Any]:
        """What :meth:`cached` gives for ``WorldIndex.build(load_catalog(root))``, built
        from :func:`catalog.stream.load_streamed`: the world validated and indexed with a
        chunk of its profiles as models at a time, never all of them (a world of a
        million NPCs as models needs about 23 GiB)."""
        profiles: dict[str, bytes] = {}
        idx = cls(catalog=cast(Catalog, None))  # the validated catalog, once it is

        def take_npc(npc: Npc, blob: bytes) -> None:
            idx._take_npc(npc)
            profiles[npc.id] = blob

        catalog = load_streamed(root, take_npc, idx._take_relationship)
        idx.catalog = catalog
        idx.npc_ids = list(catalog.npcs)  # sorted: the directory is
        # the build's order: sorted by NPC, every field
        idx.traits = {n: idx.traits[n] for n in idx.npc_ids}
        idx.location = {n: idx.location[n] for n in idx.npc_ids}
        idx.cards = {n: idx.cards[n] for n in idx.npc_ids}
        idx.occupancy, idx.turned_away = admit(catalog, idx.npc_ids, idx.location)
        return idx._cached(profiles, sum(len(r) for r in idx.relationships.values()))

    def index_rules(self) -> None:
        """The lookups that come from the small files (event types, goals), not the NPCs."""
        catalog = self.catalog
        kinds = {p.kind for p in catalog.places.values()}
        # a reaction to a post (sim.feed) happens only as one, never as a choice of the rules
        reactions = set(catalog.feed.reactions.model_dump().values())
        for h in range(HOURS):
            for kind in kinds:
                self.types_by_kind[(h, kind)] = [
                    t
                    for t in catalog.event_types.values()
                    if t.id not in reactions
                    and t.preconditions.start_hour <= h < t.preconditions.end_hour
                    and (not t.preconditions.place_kinds or kind in t.preconditions.place_kinds)
                ]
        goals_of: dict[str, list[Goal]] = {}
        for goal in catalog.goals:
            self.goals.setdefault(goal.npc, {})[goal.kind] = float(goal.progress)
            goals_of.setdefault(goal.npc, []).append(goal)
        self.goals_of = {
            npc: tuple(sorted(gs, key=lambda g: (-g.priority, g.kind, g.target or "")))
            for npc, gs in sorted(goals_of.items())
        }
        self.goal_place_npcs = frozenset(
            npc for npc, gs in self.goals_of.items() if any(g.target in catalog.places for g in gs)
        )
        self.advances = {
            t.id: frozenset(
                e.goal_kind
                for e in t.effects
                if e.who == "actor" and e.field == "goal_progress" and e.goal_kind and e.delta > 0
            )
            for t in catalog.event_types.values()
        }
        self.journalists = [n for n in self.npc_ids if "news" in self.cards[n].channels]

    def cached(self) -> dict[str, Any]:
        """What :meth:`restore` needs to stand in for validating the world again: the
        directory whole, what each NPC owns in sections (:class:`~sim.worldcache.Sections`)."""
        catalog = self.catalog
        profiles = {n: kept(canonical(catalog.npcs[n])) for n in self.npc_ids}
        return self._cached(profiles, len(catalog.relationships))

    def _cached(self, profiles: dict[str, bytes], n_relationships: int) -> dict[str, Any]:
        # the shard hash: shard_of(n, k) == bucket % k for every k dividing BUCKETS
        bucket_of = {n: shard_of(n, worldcache.BUCKETS) for n in self.npc_ids}
        owned: dict[str, dict[Any, Any]] = {
            "traits": self.traits,
            "relationships": self.relationships,
            "tags": self.tags,
        }
        return {
            "digest": self.catalog.digest,
            "npc_ids": self.npc_ids,
            "location": self.location,
            "occupancy": self.occupancy,
            "turned_away": self.turned_away,
            "n_relationships": n_relationships,
            "cards": {n: tuple(c) for n, c in self.cards.items()},
            "bucket_of": bucket_of,
            "sections": worldcache.Sections.split(owned, bucket_of, {"tags": _source}),
            # apart: a world worker never reads a profile (the directory has what it needs)
            "profile_sections": worldcache.Sections.split({"profiles": profiles}, bucket_of, {}),
        }

    @classmethod
    def restore(cls, root: Path, data: dict[str, Any]) -> WorldIndex:
        """The index :meth:`cached` described, over the world's files at ``root``."""
        sections = worldcache.Sections(data["sections"], data["bucket_of"])
        profile_sections = worldcache.Sections(data["profile_sections"], data["bucket_of"])
        profiles = worldcache.Profiles(
            worldcache.Owned(profile_sections, "profiles", None), data["npc_ids"]
        )
        catalog = worldcache.lazy_catalog(root, profiles, data["n_relationships"], data["digest"])
        idx = cls(catalog=catalog)
        idx.npc_ids = data["npc_ids"]
        idx.location = data["location"]
        idx.occupancy = data["occupancy"]
        idx.turned_away = data["turned_away"]
        idx.traits = worldcache.Owned(sections, "traits", None)
        idx.relationships = worldcache.Owned(sections, "relationships", None)
        idx.tags = worldcache.Owned(sections, "tags", _source)
        idx.cards = {n: Card._make(c) for n, c in data["cards"].items()}
        idx.index_rules()
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
                n for n in self.npc_ids if occ in self.cards[n].occupation.lower()
            )
        return self._occupations[occupation]

    def npc(self, npc_id: str) -> Npc:
        """Catalog profile of an NPC (built on first use where the index came from its cache:
        the tick's hot paths read :meth:`card` instead)."""
        return self.catalog.npcs[npc_id]

    def card(self, npc_id: str) -> Card:
        """The few profile fields every shard reads about any NPC (KeyError if unknown)."""
        return self.cards[npc_id]

    def place_name(self, place_id: str | None) -> str:
        """Human name of a place (or 'somewhere')."""
        if place_id is None or place_id not in self.catalog.places:
            return "somewhere"
        return self.catalog.places[place_id].name


def _source(pair: tuple[str, str]) -> str:
    """The NPC that owns a relationship's tags: its source."""
    return pair[0]


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


def load_world(world: str) -> WorldIndex:
    """Load, validate and index a world (cached per process, and on disk: sim.worldcache).

    ``world``: a name under catalog/worlds/ or a directory; a name and its directory are
    one world (a worker that loads its configured directory at start serves a run that
    names the world).
    """
    return _load_world_at(resolve_world(world))


def forget_worlds() -> None:
    """Drop the worlds this process loaded (the next load reads them again)."""
    _load_world_at.cache_clear()


@functools.lru_cache(maxsize=8)
def _load_world_at(root: Path) -> WorldIndex:
    """The index is millions of long-lived objects at 100k NPCs; they are moved out of
    the cyclic garbage collector's view (``gc.freeze``), or every full collection walks
    them all again (a 0.2 s pause in the middle of a tick at 10k NPCs)."""
    with gc_paused():  # millions of acyclic objects: 7 s instead of 18 s at 100k NPCs
        index = load_index(root)
        # Frozen before the collector runs again (it would walk all of them once more).
        # No gc.collect() first: it takes 2.3 s at 100k NPCs and finds ~30 objects.
        gc.freeze()
    return index


def load_index(
    root: Path, directory: Path | None = None, min_bytes: int | None = None
) -> WorldIndex:
    """The world's index: from the cache (:mod:`sim.worldcache`) when it holds these files,
    else validated and built, then cached.

    ``directory``: the cache (default :func:`~sim.worldcache.cache_dir`); ``min_bytes``:
    the smallest ``npcs.json`` worth caching (default :func:`~sim.worldcache.min_bytes`)."""
    directory = directory if directory is not None else worldcache.cache_dir()
    smallest = min_bytes if min_bytes is not None else worldcache.min_bytes()
    npcs = root / "npcs.json"
    if directory is None or not npcs.exists() or npcs.stat().st_size < smallest:
        return WorldIndex.build(load_catalog(root))
    path = directory / f"{worldcache.files_key(root)}.idx"
    try:
        return WorldIndex.restore(root, worldcache.read(path))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("world index cache %s unreadable (%s): validating the world", path, exc)
    except (ValueError, EOFError, TypeError, KeyError) as exc:
        log.warning("world index cache %s rejected (%s): validating the world", path, exc)
    blob = worldcache.pack(WorldIndex.streamed(root))
    if worldcache.write(path, blob):
        del blob  # read back as every later start reads it: sections when decoded
        return WorldIndex.restore(root, worldcache.read(path))
    return WorldIndex.restore(root, worldcache.read(blob))


def check_world(root: Path) -> None:
    """Raise CatalogError if the world at ``root`` is invalid: nearly free when its index
    is cached (only a valid world is cached, and the key is its files' bytes); otherwise
    it is validated and indexed, and cached for the processes that load it next."""
    directory = worldcache.cache_dir()
    if directory is not None and (directory / f"{worldcache.files_key(root)}.idx").exists():
        return
    with gc_paused():
        load_index(root)
