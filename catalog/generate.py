"""Synthetic worlds of any size, for scale tests: deterministic for the same arguments.

Places, NPCs, relationships and goals are generated; event types, channels, templates and
director rules are reused from the starter world (``catalog/worlds/town``). Relationships are
local (each NPC knows a few NPCs with nearby ids), so generation is linear in ``n_npcs``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from catalog.loader import load_catalog
from catalog.models import (
    CATALOG_FILES,
    Catalog,
    DirectorRule,
    Goal,
    Npc,
    Place,
    Relationship,
    ScheduleBlock,
    Style,
    Traits,
    World,
)
from worldfeed.gcpause import gc_paused

M = TypeVar("M", bound=BaseModel)
STARTER_WORLD = Path(__file__).resolve().parent / "worlds" / "town"
NEIGHBORHOOD = 100  # relationships are drawn among the NPCs with the nearest ids
MAX_DEGREE = 100

# Non-home place kinds every generated world has (the starter event types need them), with
# hours and capacity.
WORKPLACES: dict[str, tuple[int, int, int]] = {
    "cafe": (6, 19, 30),
    "park": (0, 24, 300),
    "town_hall": (8, 20, 120),
    "school": (7, 17, 400),
    "clinic": (7, 20, 40),
    "market": (6, 18, 250),
    "bar": (16, 2, 60),
    "newsroom": (7, 22, 20),
    "shop": (9, 19, 25),
    "bakery": (5, 15, 15),
}
# occupation -> (workplace kind or None, schedule key, channels)
OCCUPATIONS: dict[str, tuple[str | None, str, tuple[str, ...]]] = {
    "Mayor": ("town_hall", "work", ("feed", "chat")),
    "Town councillor": ("town_hall", "work", ("feed", "chat")),
    "Editor": ("newsroom", "work", ("news", "feed")),
    "Reporter": ("newsroom", "work", ("news", "feed", "chat")),
    "Student": (None, "student", ("feed", "chat")),
    "Teacher": ("school", "work", ("feed", "chat")),
    "Barista": ("cafe", "early", ("feed", "chat")),
    "Baker": ("bakery", "early", ("feed", "chat")),
    "Doctor": ("clinic", "work", ("feed",)),
    "Nurse": ("clinic", "work", ("feed", "chat")),
    "Shopkeeper": ("shop", "work", ("feed", "chat")),
    "Bartender": ("bar", "late", ("feed", "chat")),
    "Market vendor": ("market", "early", ("feed", "chat")),
    "Town clerk": ("town_hall", "work", ("chat",)),
    "Retired": (None, "retired", ("chat",)),
    "Artist": (None, "free", ("feed", "chat")),
}
REQUIRED_OCCUPATIONS = ("Mayor", "Editor", "Reporter", "Town councillor", "Market vendor")
COMMON_OCCUPATIONS = [o for o in OCCUPATIONS if o not in ("Mayor", "Editor", "Reporter")]
JOURNALIST_EVERY = 500  # one reporter per this many NPCs (at least the required ones)
INTERESTS = (
    "music",
    "gardening",
    "football",
    "cooking",
    "books",
    "politics",
    "fishing",
    "art",
    "hiking",
    "gaming",
    "fashion",
    "history",
    "science",
    "movies",
    "cars",
    "pets",
)
VOICES = (
    "Cheerful and chatty, lots of exclamation marks.",
    "Dry and sarcastic, short sentences.",
    "Formal and polite, full sentences.",
    "Lowercase and casual, lots of slang.",
    "Earnest and emotional, shares feelings openly.",
    "Grumpy but fair, complains then softens.",
    "Poetic and dreamy, writes in fragments.",
    "Practical and direct, gives tips.",
)
GOAL_KINDS = (
    "befriend",
    "get_promoted",
    "grow_business",
    "get_famous",
    "learn_skill",
    "help_someone",
    "keep_reputation",
    "organize_event",
    "defeat_rival",
    "romance",
)


def _build(cls: type[M], **values: Any) -> M:
    """A model from trusted, complete values without validation.

    Like ``cls.model_construct`` (same internal slots) but without its per-field default
    handling, which dominates generation time at 100k NPCs; every field must be given.
    The generator's output is checked by round-trip tests through :func:`load_catalog`.
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_RELATIONSHIP_NEW = Relationship.__new__
_SET = object.__setattr__


def _relationship(
    source: str, target: str, affinity: float, trust: float, familiarity: float, tags: list[str]
) -> Relationship:
    """``_build`` for the hottest loop (5 per NPC at the default density), inlined."""
    obj = _RELATIONSHIP_NEW(Relationship)
    values = {
        "source": source,
        "target": target,
        "affinity": affinity,
        "trust": trust,
        "familiarity": familiarity,
        "tags": tags,
    }
    _SET(obj, "__dict__", values)
    _SET(obj, "__pydantic_fields_set__", set(values))
    _SET(obj, "__pydantic_extra__", None)
    _SET(obj, "__pydantic_private__", None)
    return obj


def _block(start: int, end: int, place: str, activity: str) -> ScheduleBlock:
    return ScheduleBlock(start_hour=start, end_hour=end, place=place, activity=activity)


def _schedules(
    park: str, cafe: str, school: str, bar: str, market: str
) -> dict[str, list[ScheduleBlock]]:
    b = _block
    return {
        "work": [
            b(0, 7, "home", "sleeping"),
            b(7, 8, cafe, "coffee"),
            b(8, 17, "work", "working"),
            b(17, 19, park, "after work"),
            b(19, 24, "home", "evening"),
        ],
        "early": [
            b(0, 5, "home", "sleeping"),
            b(5, 14, "work", "working"),
            b(14, 17, market, "errands"),
            b(17, 24, "home", "evening"),
        ],
        "late": [
            b(0, 2, "work", "closing up"),
            b(2, 10, "home", "sleeping"),
            b(10, 15, park, "errands"),
            b(15, 24, "work", "working"),
        ],
        "student": [
            b(0, 8, "home", "sleeping"),
            b(8, 15, school, "classes"),
            b(15, 18, park, "hanging out"),
            b(18, 24, "home", "homework"),
        ],
        "retired": [
            b(0, 7, "home", "sleeping"),
            b(7, 10, park, "walk"),
            b(10, 13, market, "browsing"),
            b(13, 19, "home", "resting"),
            b(19, 22, bar, "evening out"),
            b(22, 24, "home", "sleeping"),
        ],
        "free": [
            b(0, 9, "home", "sleeping"),
            b(9, 11, cafe, "coffee"),
            b(11, 18, park, "making things"),
            b(18, 24, "home", "evening"),
        ],
    }


@cache
def starter_world() -> Catalog:
    """The starter world (loaded once): source of event types, channels, templates, director."""
    return load_catalog(STARTER_WORLD)


def _reusable_director(rule: DirectorRule) -> bool:
    """Director rules that name no fixed NPC or place work in any generated world."""
    p = rule.participants
    return (
        p.actor.npc is None and (p.target is None or p.target.npc is None) and p.place.place is None
    )


def _places(rng: random.Random, n_places: int) -> list[Place]:
    kinds = list(WORKPLACES)
    n_work = max(len(kinds), round(n_places * 0.3))
    n_home = n_places - n_work
    width = len(str(n_places))
    places = []
    for i in range(n_places):
        kind = "home" if i < n_home else kinds[(i - n_home) % len(kinds)]
        o, c, cap = (0, 24, 8) if kind == "home" else WORKPLACES[kind]
        places.append(
            _build(
                Place,
                id=f"{kind}_{i:0{width}d}",
                name=f"{kind.replace('_', ' ').title()} {i}",
                kind=kind,
                capacity=cap + rng.randrange(cap),
                open_hour=o,
                close_hour=c,
            )
        )
    return places


def generate_world(
    n_npcs: int, seed: int, n_places: int | None = None, relationship_density: float = 0.05
) -> Catalog:
    """A synthetic world of ``n_npcs`` NPCs; the same arguments give the same world.

    ``relationship_density`` is the fraction of an NPC's neighborhood (the ``NEIGHBORHOOD``
    nearest ids) it has a relationship with: 0.05 gives 5 outgoing edges per NPC.
    Every model is held at once (2.2-2.5 GiB per 100k NPCs): a world of a million is
    written by :func:`write_generated_world` instead.
    """
    with gc_paused():
        gen = _Generator(n_npcs, seed, n_places, relationship_density)
        npcs = list(gen.npcs())
        relationships = list(gen.relationships())
        return gen.catalog(npcs, relationships)


def write_generated_world(
    directory: str | Path,
    n_npcs: int,
    seed: int,
    n_places: int | None = None,
    relationship_density: float = 0.05,
) -> Path:
    """Write ``generate_world(n_npcs, seed, ...)`` as :func:`write_world` would, the same
    bytes, with NPCs and relationships written as they are generated, never all held:
    a world of a million NPCs in a few hundred MiB."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    gen = _Generator(n_npcs, seed, n_places, relationship_density)
    _write_array(out / "npcs.json", (n.model_dump(mode="json") for n in gen.npcs()))
    _write_array(
        out / "relationships.json", (r.model_dump(mode="json") for r in gen.relationships())
    )
    files: dict[str, Any] = gen.catalog([], []).files()
    for name in CATALOG_FILES:
        if name not in ("npcs.json", "relationships.json"):
            _write_json(out / name, files[name])
    return out


class _Generator:
    """The world of :func:`generate_world`, made in order: NPCs, then relationships and
    goals (one seeded draw sequence; each step must be consumed before the next)."""

    def __init__(
        self, n_npcs: int, seed: int, n_places: int | None, relationship_density: float
    ) -> None:
        if n_npcs < len(REQUIRED_OCCUPATIONS):
            raise ValueError(f"n_npcs must be at least {len(REQUIRED_OCCUPATIONS)}")
        if not 0 <= relationship_density <= 1:
            raise ValueError("relationship_density must be within 0..1")
        n_places = max(len(WORKPLACES) + 1, n_npcs // 10) if n_places is None else n_places
        if n_places < len(WORKPLACES) + 1:
            raise ValueError(f"n_places must be at least {len(WORKPLACES) + 1}")
        self.n_npcs = n_npcs
        self.seed = seed
        self.density = relationship_density
        self.rng = random.Random(  # noqa: S311 - not crypto
            f"worldfeed.generate:{n_npcs}:{seed}:{n_places}:{relationship_density}"
        )
        self.places = _places(self.rng, n_places)
        self.ids: list[str] = []
        self.home_of: list[str] = []
        self.work_of: list[str | None] = []
        self.goals: list[Goal] = []

    def npcs(self) -> Iterator[Npc]:
        """Every NPC, by id."""
        rng, n_npcs = self.rng, self.n_npcs
        homes = [p.id for p in self.places if p.kind == "home"]
        by_kind: dict[str, list[str]] = {}
        for p in self.places:
            by_kind.setdefault(p.kind, []).append(p.id)
        leisure = ("park", "cafe", "school", "bar", "market")
        # neighbors by id share their park, cafe, school, bar and market (as they share
        # homes), so each place draws a neighborhood, not the whole world (capacity turns
        # the rest away)
        schedule_sets: dict[tuple[str, ...], dict[str, list[ScheduleBlock]]] = {}

        width = len(str(n_npcs - 1))
        n_reporters = max(1, n_npcs // JOURNALIST_EVERY)
        fixed = list(REQUIRED_OCCUPATIONS) + ["Reporter"] * (n_reporters - 1)
        style = Style()  # one shared default: generated NPCs write in the default style
        rand, choice, randrange = rng.random, rng.choice, rng.randrange
        for i in range(n_npcs):
            occupation = fixed[i] if i < len(fixed) else choice(COMMON_OCCUPATIONS)
            work_kind, sched_key, channels = OCCUPATIONS[occupation]
            home = homes[i * len(homes) // n_npcs]  # neighbors by id share homes
            near = tuple(by_kind[k][i * len(by_kind[k]) // n_npcs] for k in leisure)
            if near not in schedule_sets:
                schedule_sets[near] = _schedules(*near)
            schedules = schedule_sets[near]
            npc_id = f"npc_{i:0{width}d}"
            age = randrange(14, 19) if occupation == "Student" else randrange(20, 90)
            work = choice(by_kind[work_kind]) if work_kind else None  # drawn after the age
            self.ids.append(npc_id)
            self.home_of.append(home)
            self.work_of.append(work)
            yield _build(
                Npc,
                id=npc_id,
                handle=f"@{npc_id}",
                display_name=f"Resident {i}",
                age=age,
                occupation=occupation,
                home=home,
                work=work,
                traits=_build(
                    Traits,
                    openness=round(rand(), 3),
                    conscientiousness=round(rand(), 3),
                    extraversion=round(rand(), 3),
                    agreeableness=round(rand(), 3),
                    neuroticism=round(rand(), 3),
                ),
                interests=[choice(INTERESTS), choice(INTERESTS)],
                voice=choice(VOICES),
                style=style,
                fame=round(rand() ** 4 * 100, 1),
                channels=list(channels),
                posting_propensity=round(rand(), 3),
                schedule=schedules[sched_key],
            )

    def relationships(self) -> Iterator[Relationship]:
        """Every relationship, by source; the goals are collected in :attr:`goals`."""
        rand, choice, n_npcs = self.rng.random, self.rng.choice, self.n_npcs
        if len(self.ids) != n_npcs:
            raise RuntimeError("the NPCs are generated first")
        degree = min(n_npcs - 1, MAX_DEGREE, round(self.density * min(n_npcs - 1, NEIGHBORHOOD)))
        half = max(1, min(NEIGHBORHOOD, n_npcs - 1) // 2)
        span = 2 * half + 1
        ids, home_of, work_of = self.ids, self.home_of, self.work_of
        for i in range(n_npcs):
            targets: set[int] = set()
            while len(targets) < degree:
                j = (i - half + int(rand() * span)) % n_npcs
                if j != i:
                    targets.add(j)
            src, home, work = ids[i], home_of[i], work_of[i]
            for j in sorted(targets):
                affinity = (int(rand() * 1401) - 500) / 10  # -50.0 .. 90.0, one decimal
                tags = ["neighbor"] if home_of[j] == home else []
                if work is not None and work_of[j] == work:
                    tags.append("coworker")
                tags.append(
                    "friend" if affinity > 40 else "rival" if affinity < -30 else "acquaintance"
                )
                yield _relationship(
                    src, ids[j], affinity, int(rand() * 1001) / 10, int(rand() * 1001) / 10, tags
                )
            if rand() < 0.3:
                kind = choice(GOAL_KINDS)
                social = targets and kind in ("befriend", "romance", "defeat_rival")
                self.goals.append(
                    _build(
                        Goal,
                        npc=src,
                        kind=kind,
                        target=ids[min(targets)] if social else None,
                        progress=int(rand() * 51) / 100,
                        priority=1 + int(rand() * 5),
                    )
                )

    def catalog(self, npcs: list[Npc], relationships: list[Relationship]) -> Catalog:
        """The world of these NPCs and relationships, the goals and the starter world's rules."""
        town = starter_world()
        n_npcs, seed = self.n_npcs, self.seed
        world = World(
            name=f"synthetic_{n_npcs}_{seed}",
            title=f"Synthetic world ({n_npcs} NPCs, seed {seed})",
            description="A generated world for scale tests.",
            start_weekday=town.world.start_weekday,
            memory_top_k=town.world.memory_top_k,
        )
        return Catalog(
            world=world,
            places=self.places,
            npcs=npcs,
            relationships=relationships,
            goals=self.goals,
            event_types=list(town.event_types.values()),
            channels=list(town.channels.values()),
            templates=list(town.templates.values()),
            scheduled=[],
            director=[r for r in town.director if _reusable_director(r)],
            decide=town.decide,
            feed=town.feed,
        )


def _write_json(file: Path, data: Any) -> None:
    file.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def _write_array(file: Path, items: Iterable[Any]) -> None:
    """``_write_json(file, list(items))``, the same bytes, an item at a time."""
    with file.open("wb") as f:
        f.write(b"[")
        empty = True
        for item in items:
            f.write(b"\n  " if empty else b",\n  ")
            # strings hold no raw newline: every one is a line break of the indented item
            f.write(orjson.dumps(item, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n  "))
            empty = False
        f.write(b"]\n" if empty else b"\n]\n")


def write_world(catalog: Catalog, directory: str | Path) -> Path:
    """Write a catalog as a world directory that :func:`catalog.load_catalog` reads back."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = catalog.files()
    for name in CATALOG_FILES:
        _write_json(out / name, files[name])
    return out
