"""Pydantic models of the world catalog: data only, no simulation logic.

Each catalog file of a world directory has one root type (``CATALOG_FILES``); the JSON
Schemas in ``catalog/schemas/`` are generated from these models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from catalog.digest import content_digest

MINUTES_PER_DAY = 24 * 60

Id = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=64, description="snake_case id."),
]
Hhmm = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24 h.")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
ChannelId = Literal["feed", "chat", "news"]


def _unique(items: list[Any]) -> list[Any]:
    """The JSON Schema's uniqueItems, enforced by the model too (the loader's fast path)."""
    if len(items) > 1 and len(set(items)) != len(items):
        dupes = sorted({str(i) for i in items if items.count(i) > 1})
        raise ValueError(f"has duplicate items {dupes}")
    return items


Unique = AfterValidator(_unique)
PlaceKind = Literal[
    "home",
    "cafe",
    "park",
    "office",
    "shop",
    "school",
    "town_hall",
    "market",
    "bar",
    "newsroom",
    "clinic",
    "library",
    "restaurant",
    "bakery",
    "church",
    "square",
    "gym",
    "station",
    "factory",
    "farm",
]
TraitName = Literal["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"]
EffectField = Literal["affinity", "trust", "familiarity", "reputation", "goal_progress", "memory"]
RelationshipTag = Literal[
    "family",
    "friend",
    "rival",
    "coworker",
    "neighbor",
    "romantic",
    "ex",
    "classmate",
    "mentor",
    "student",
    "client",
    "acquaintance",
]
GoalKind = Literal[
    "befriend",
    "romance",
    "reconcile",
    "defeat_rival",
    "win_election",
    "get_promoted",
    "grow_business",
    "expose_scandal",
    "get_famous",
    "learn_skill",
    "help_someone",
    "keep_reputation",
    "organize_event",
]
TargetFilter = Literal[
    "any", "known", "friend", "rival", "family", "coworker", "romantic", "stranger"
]
Author = Literal["actor", "target", "witness", "journalist"]
DirectorKind = Literal[
    "weather", "market_day", "festival", "election", "scandal", "drama", "holiday", "accident"
]


class CatalogModel(BaseModel):
    """Base of every catalog model: unknown fields are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- world.json ----------------------------------------------------------------------------


class World(CatalogModel):
    """world.json: what the world is and when it starts."""

    name: Id = Field(description="World id, e.g. 'town'.")
    title: str = Field(min_length=1, max_length=120, description="Human-readable name.")
    description: str = Field(min_length=1, max_length=2000, description="What this world is.")
    start_weekday: Weekday = Field(description="Weekday of day 1.")
    memory_top_k: int = Field(3, ge=0, le=20, description="Memories that go into one prompt.")
    story_max_age_ticks: int = Field(
        288,
        ge=1,
        le=1_000_000,
        description="Ticks the impact stage remembers a story for re-scoring: a story older "
        "than this behind its run's newest event is forgotten, and a later reference to it "
        "re-scores nothing. The default (3 days of 15-minute ticks) is longer than any rule-"
        "made reference reaches back (a memory's salience decays below the reference weight "
        "within 241 ticks).",
    )


# ---- places.json ---------------------------------------------------------------------------


class Place(CatalogModel):
    """A location NPCs can be at."""

    id: Id
    name: str = Field(min_length=1, max_length=80)
    kind: PlaceKind
    capacity: int = Field(
        ge=1,
        le=100_000,
        description="NPCs it holds at once; more scheduled there in an hour are admitted staff "
        "first, then by a seeded ranking, and the rest go home (its own residents always fit).",
    )
    open_hour: int = Field(
        ge=0,
        le=24,
        description="Opens at this hour (0..24); before it, NPCs scheduled there go home and "
        "nothing happens there.",
    )
    close_hour: int = Field(
        ge=0,
        le=24,
        description="Closes at this hour; below open_hour means after midnight; equal to "
        "open_hour: never open. While closed, NPCs scheduled there go home.",
    )


# ---- npcs.json -----------------------------------------------------------------------------


class Traits(CatalogModel):
    """Big Five personality traits, each 0..1."""

    openness: float = Field(ge=0, le=1)
    conscientiousness: float = Field(ge=0, le=1)
    extraversion: float = Field(ge=0, le=1)
    agreeableness: float = Field(ge=0, le=1)
    neuroticism: float = Field(ge=0, le=1)


class ScheduleBlock(CatalogModel):
    """Where an NPC usually is between two hours of the day."""

    start_hour: int = Field(ge=0, le=23)
    end_hour: int = Field(ge=1, le=24)
    place: str = Field(
        min_length=1, max_length=64, description="A place id, or 'home' / 'work' for the NPC's own."
    )
    activity: str = Field(min_length=1, max_length=60)


class Style(CatalogModel):
    """How an NPC writes, beyond the free-text ``voice``: it shapes the prompt and the
    sampling, so that an NPC's posts are recognisably theirs."""

    manner: Literal["casual", "formal", "playful", "blunt", "warm"] = Field(
        "casual", description="Tone of address; told to the model."
    )
    length: Literal["terse", "short", "chatty"] = Field(
        "short", description="terse: one sentence; short: one or two; chatty: up to three."
    )
    emoji: bool = Field(False, description="Ends posts with an emoji now and then.")
    quirks: list[str] = Field(
        default_factory=list,
        max_length=3,
        description="Habits the model is asked to show, e.g. 'signs off with More soon.'",
    )
    temperature: float = Field(
        0.0, ge=-0.2, le=0.3, description="Added to every attempt's sampling temperature."
    )


class Npc(CatalogModel):
    """A person of the world."""

    id: Id
    handle: str = Field(pattern=r"^@[a-z0-9_]{2,30}$", description="@-style handle.")
    display_name: str = Field(min_length=1, max_length=80)
    age: int = Field(ge=0, le=120)
    occupation: str = Field(min_length=1, max_length=60)
    home: str = Field(description="Place id of their home.")
    work: str | None = Field(None, description="Place id of their work, or null.")
    traits: Traits
    interests: list[str] = Field(default_factory=list, max_length=12)
    voice: str = Field(min_length=5, max_length=300, description="How they write, for prompts.")
    style: Style = Field(default_factory=Style, description="Register, length, emoji, quirks.")
    fame: float = Field(ge=0, le=100)
    channels: Annotated[list[ChannelId], Unique] = Field(
        default_factory=list,
        json_schema_extra={"uniqueItems": True},
        description="Where they post.",
    )
    posting_propensity: float = Field(
        ge=0,
        le=1,
        description="Chance they write up an event on feed or chat when a channel rule names "
        "them author (a stable draw per event, author and channel); news is unaffected.",
    )
    schedule: list[ScheduleBlock] = Field(default_factory=list)


# ---- relationships.json / goals.json ---------------------------------------------------------


class Relationship(CatalogModel):
    """How ``source`` feels about ``target`` (directed)."""

    source: Id
    target: Id
    affinity: float = Field(ge=-100, le=100)
    trust: float = Field(ge=0, le=100)
    familiarity: float = Field(ge=0, le=100)
    tags: Annotated[list[RelationshipTag], Unique] = Field(
        default_factory=list, json_schema_extra={"uniqueItems": True}
    )


class Goal(CatalogModel):
    """Something an NPC wants."""

    npc: Id
    kind: GoalKind
    target: str | None = Field(
        None,
        description="NPC or place id the goal is about, or null. An NPC target draws the "
        "NPC's actions toward them when both are at one place; a place target makes them act "
        "more often there.",
    )
    progress: float = Field(0.0, ge=0, le=1)
    priority: int = Field(
        ge=1,
        le=5,
        description="5 is most important: how strongly an unfinished goal pulls choices "
        "(weight x(1 + priority/5) on actions that advance it or aim at its target).",
    )


# ---- event_types.json ------------------------------------------------------------------------


class Preconditions(CatalogModel):
    """When and where an event type can happen."""

    place_kinds: list[PlaceKind] = Field(default_factory=list, description="Empty: anywhere.")
    start_hour: int = Field(0, ge=0, le=23, description="Earliest hour (inclusive).")
    end_hour: int = Field(24, ge=1, le=24, description="Latest hour (exclusive).")
    min_affinity: float | None = Field(None, ge=-100, le=100, description="Actor->target.")
    max_affinity: float | None = Field(None, ge=-100, le=100, description="Actor->target.")


class EffectSpec(CatalogModel):
    """One state change an event causes."""

    who: Literal["actor", "target", "witnesses"] = Field(description="Whose state changes.")
    field: EffectField
    toward: Literal["actor", "target"] | None = Field(
        None, description="The other side of a relationship change."
    )
    delta: float = Field(0.0, ge=-100, le=100)
    goal_kind: GoalKind | None = Field(None, description="For goal_progress.")
    salience: float | None = Field(None, ge=0, le=1, description="For memory.")
    memory: str | None = Field(None, max_length=200, description="Memory text template.")


class Impact(CatalogModel):
    """Impact components of an event type, each 0..1."""

    novelty: float = Field(
        ge=0, le=1, description="Halved when the actor did this type in the last 96 ticks."
    )
    conflict: float = Field(
        ge=0,
        le=1,
        description="Scaled up by the actor's hostility to the target (negative affinity) "
        "and a rival tag: a quarrel between rivals is bigger news than between strangers.",
    )
    status: float = Field(
        ge=0,
        le=1,
        description="Half of the status score; the other half is the standing of the better "
        "known of actor (live reputation) and target (fame).",
    )
    cascade: float = Field(
        ge=0,
        le=1,
        description="Grows each time a later event refers to this one (re-scored: breaking).",
    )


class ChannelRule(CatalogModel):
    """When and how an event of this type becomes a post on one channel."""

    threshold: float = Field(ge=0, le=1, description="Impact score needed for a post.")
    template: Id = Field(description="Template id.")
    author: Author


class EventType(CatalogModel):
    """A kind of thing that can happen."""

    id: Id
    name: str = Field(min_length=1, max_length=80)
    summary: str = Field(
        min_length=1, max_length=200, description="Template: {actor} {target} {place}."
    )
    needs_target: bool
    target_filter: TargetFilter = "any"
    preconditions: Preconditions = Field(default_factory=Preconditions)
    base_weight: float = Field(ge=0, le=1000)
    trait_weights: dict[TraitName, float] = Field(
        default_factory=dict, description="Trait -> multiplier on the weight."
    )
    effects: list[EffectSpec] = Field(default_factory=list)
    impact: Impact
    channels: dict[ChannelId, ChannelRule] = Field(default_factory=dict)
    cooldown_ticks: int = Field(0, ge=0)
    valence: Literal["positive", "negative", "neutral", "mixed"] = Field(
        "neutral",
        description="How the event feels to those it happens to: a post's tone must fit it "
        "(no cheer about a collapse, no bitterness about a rescue).",
    )


# ---- channels.json / templates.json -----------------------------------------------------------


class Channel(CatalogModel):
    """A place where posts appear: feed, chat or news."""

    id: ChannelId
    name: str = Field(min_length=1, max_length=40)
    rate_limit_per_day: int = Field(ge=1, le=1000, description="Posts per author per sim day.")
    post_schema: dict[str, Any] = Field(description="JSON Schema of a finished post.")
    requires_place: bool = Field(
        False, description="A post here must name where its event happened (feed, news)."
    )


class Example(CatalogModel):
    """A worked example for a template: an event and the post written about it."""

    event: str = Field(min_length=1, max_length=300, description="What happened (one line).")
    post: str = Field(min_length=1, max_length=600, description="The post about it.")


class Template(CatalogModel):
    """A prompt template for one channel; placeholders in {braces}."""

    id: Id
    channel: ChannelId
    system: str = Field(min_length=1, max_length=1000)
    prompt: str = Field(min_length=1, max_length=2000)
    max_memories: int = Field(3, ge=0, le=10, description="Memories the prompt may include.")
    max_tokens: int = Field(80, ge=8, le=1024, description="Tokens the LLM may write.")
    examples: list[Example] = Field(
        default_factory=list,
        max_length=2,
        description="One or two worked examples (another event and its post), given to the "
        "model as earlier turns of the conversation: the form to copy, never the facts.",
    )


# ---- scheduled.json ------------------------------------------------------------------------------


class ScheduledEvent(CatalogModel):
    """An event that happens at a fixed day and time."""

    id: Id
    day: int = Field(ge=1, description="1-based day.")
    time: Hhmm
    type: Id = Field(description="Event type id.")
    actor: Id
    target: Id | None = None
    place: Id
    summary: str = Field(min_length=1, max_length=300)

    @property
    def sim_minute(self) -> int:
        """Simulated minutes since day 1 00:00."""
        hours, minutes = self.time.split(":")
        return (self.day - 1) * MINUTES_PER_DAY + int(hours) * 60 + int(minutes)

    def tick(self, step_minutes: int) -> int:
        """The tick in which this event happens (day 1 00:00 is tick 0)."""
        return self.sim_minute // step_minutes


# ---- director.json ----------------------------------------------------------------------


class ScheduleTrigger(CatalogModel):
    """Fire at a time on some days (on the tick whose span contains the time)."""

    type: Literal["schedule"]
    time: Hhmm = Field(description="Time of day it fires (HH:MM).")
    days: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="1-based simulated days it fires on; null: any."
    )
    weekdays: list[Weekday] | None = Field(
        None, description="Weekdays it fires on (see world.start_weekday); null: any."
    )


class ConditionTrigger(CatalogModel):
    """Fire when a tick-wide metric compares true to a value (checked every
    ``check_every_ticks``, never on tick 0).

    The metrics are inputs of the tick, summed by the clock from every shard's report,
    so they are the same whatever the partition count.
    """

    type: Literal["condition"]
    metric: Literal[
        "events_last_hour", "posts_last_hour", "mean_affinity", "active_npcs", "conflict_share"
    ] = Field(
        description="events_last_hour: events of the last simulated hour; posts_last_hour: "
        "render requests those events made at their base score; mean_affinity: mean affinity "
        "of every relationship (-100..100); active_npcs: NPCs awake this hour (schedules); "
        "conflict_share: share of NPCs with a relationship at affinity -30 or below (0..1)."
    )
    op: Literal["<", "<=", ">", ">="] = Field(description="How the metric compares to value.")
    value: float = Field(description="The value the metric is compared to.")
    check_every_ticks: int = Field(4, ge=1, description="Checked on ticks divisible by this.")
    start_hour: int = Field(0, ge=0, le=23, description="First hour of day it is checked.")
    end_hour: int = Field(24, ge=1, le=24, description="Hour of day checks stop (exclusive).")


class NpcSelector(CatalogModel):
    """Picks an NPC: a fixed id, or one with an occupation (or anyone), by a rule."""

    npc: Id | None = None
    occupation: str | None = None
    pick: Literal["random", "most_famous"] = "random"


class PlaceSelector(CatalogModel):
    """Picks a place: a fixed id, or one of a kind; both null: the actor's location."""

    place: Id | None = None
    kind: PlaceKind | None = None


class Participants(CatalogModel):
    """Who takes part in a director event."""

    actor: NpcSelector
    target: NpcSelector | None = None
    place: PlaceSelector = Field(default_factory=PlaceSelector)


class DirectorRule(CatalogModel):
    """A scheduled or conditional world event."""

    id: Id
    kind: DirectorKind
    description: str = Field(min_length=1, max_length=300)
    trigger: Annotated[ScheduleTrigger | ConditionTrigger, Field(discriminator="type")]
    event_type: Id
    participants: Participants
    probability: float = Field(1.0, ge=0, le=1, description="Chance it fires when due.")
    cooldown_ticks: int = Field(
        0, ge=0, description="Ticks after it fired during which it does not fire again."
    )
    summary: str | None = Field(None, max_length=300, description="Overrides the type's summary.")


# ---- decide.json --------------------------------------------------------------------------

DEFAULT_DECIDE_SYSTEM = (
    "You decide what one person in {world_title} does next. Answer with one JSON object "
    "and nothing else."
)
DEFAULT_DECIDE_PROMPT = (
    "You are {name}, {occupation}. {voice}\nIt is {time} at {place_name}.\n"
    "Goals: {goals}\nRecent memories: {memories}\nPeople here: {nearby}\n"
    "Relationships: {relationships}\nAllowed actions: {actions}\n"
    'Answer as {{"action": ..., "event_type": ..., "target": ..., "reason": ...}}.'
)


class DecideTemplate(CatalogModel):
    """The prompt that asks the LLM what a focal NPC (or a cohort) does next."""

    system: str = Field(DEFAULT_DECIDE_SYSTEM, min_length=1, max_length=1000)
    prompt: str = Field(
        DEFAULT_DECIDE_PROMPT,
        min_length=1,
        max_length=2000,
        description="Placeholders: {name} {occupation} {voice} {place_name} {time} {goals} "
        "{memories} {nearby} {relationships} {actions} {world_title}.",
    )
    max_memories: int = Field(3, ge=0, le=10, description="Memories the prompt may include.")
    max_nearby: int = Field(8, ge=0, le=50, description="People here the prompt may list.")
    max_tokens: int = Field(96, ge=16, le=1024, description="Tokens the LLM may write.")


class ActionKind(CatalogModel):
    """One kind of action the LLM may choose: the event types it maps to, and the JSON
    Schema of a decision of this kind (``action`` pinned to the kind's id)."""

    id: Id
    description: str = Field(min_length=1, max_length=200, description="What the prompt says.")
    event_types: Annotated[list[Id], Unique] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"uniqueItems": True},
        description="Event types this kind maps to (one is chosen); empty: do nothing.",
    )
    action_schema: dict[str, Any] = Field(
        description="JSON Schema (2020-12) of a decision of this kind: an object whose "
        "'action' is this kind's id (const) and that requires 'target' when its event types "
        "need one ('post' instead for a feed kind)."
    )
    feed: bool = Field(
        False,
        description="A reaction to a post the NPC read this tick (the feed loop): offered only "
        "when feed.json is on and the NPC read something; its event types are feed.json's "
        "reaction types, and a decision names the post ('post': its key) instead of a target "
        "(the post's author is the target).",
    )


class Decide(CatalogModel):
    """decide.json: how NPCs deliberate with the LLM (off unless a run asks for it)."""

    budget_per_tick: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Focal NPCs per tick across the world (the most salient); 0: none. A run "
        "may override it (WORLDFEED_DECIDE_BUDGET).",
    )
    deadline_ticks: int = Field(
        1, ge=1, le=96, description="A decision asked at tick t is applied at tick t+k."
    )
    min_salience: float = Field(
        0.5, ge=0, le=10, description="Salience an NPC needs to be focal at all."
    )
    cohort_min: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Focal NPCs sharing place, occupation and top goal kind are decided by one "
        "call when at least this many (0: never).",
    )
    template: DecideTemplate = Field(default_factory=DecideTemplate)
    actions: list[ActionKind] = Field(default_factory=list, max_length=64)

    def action(self, kind: str) -> ActionKind | None:
        """The action kind with this id, if any."""
        for a in self.actions:
            if a.id == kind:
                return a
        return None


# ---- feed.json ------------------------------------------------------------------------------

Recommender = Literal["chronological", "affinity", "popularity", "random"]


def _public_channels() -> list[ChannelId]:
    return ["feed", "news"]


class FeedReactions(CatalogModel):
    """The event types a reaction to a post is (catalog ids; their effects and impact apply)."""

    like: Id = Field("liked_post", description="Event type of a like.")
    reply: Id = Field("replied_post", description="Event type of a reply.")
    repost: Id = Field("reposted_post", description="Event type of a repost.")
    feud: Id = Field(
        "argued_online",
        description="Event type of a reply between rivals (tagged rivals, or in conflict): "
        "it can start a feud.",
    )


class Feed(CatalogModel):
    """feed.json: NPCs read the posts of the world and react to them (off unless enabled).

    The posts are the render requests the shards' events make at their base score (a
    deterministic quantity, not the rendered posts), so what an NPC reads depends only on
    the world at the start of the tick and the posts published before it.
    """

    enabled: bool = Field(False, description="Whether NPCs read and react to the feed.")
    recommender: Recommender = Field(
        "affinity",
        description="What an NPC reads: chronological (newest posts by people it follows), "
        "affinity (by its relationship to the author), popularity (by impact, likes and "
        "reposts) or random (a seeded baseline).",
    )
    channels: Annotated[list[ChannelId], Unique] = Field(
        default_factory=_public_channels,
        json_schema_extra={"uniqueItems": True},
        description="Channels whose posts are in the feed.",
    )
    posts_per_tick: int = Field(
        32, ge=1, le=1000, description="A tick's top posts (by base score) that enter the feed."
    )
    window_ticks: int = Field(4, ge=1, le=96, description="Ticks a post stays in the feed.")
    reads_per_tick: int = Field(3, ge=1, le=20, description="Posts a reader reads at once.")
    read_chance: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Chance per awake tick that an NPC with a posting habit (a channel to "
        "write on) reads the feed, times its posting_propensity.",
    )
    like_rate: float = Field(0.08, ge=0, le=1, description="Base chance to like a post read.")
    reply_rate: float = Field(0.02, ge=0, le=1, description="Base chance to reply.")
    repost_rate: float = Field(0.02, ge=0, le=1, description="Base chance to repost.")
    opinion_shift: float = Field(
        2.0,
        ge=0,
        le=50,
        description="Affinity a post moves its reader toward the person it is about (the "
        "event's actor): up for a positive event, down for a negative one, scaled by the "
        "reader's trust in the author.",
    )
    follow_min_affinity: float = Field(
        20,
        ge=-100,
        le=100,
        description="An NPC starts out following those it likes at least this much (and its "
        "family, friends and partners); it follows an author whose post it likes or reposts, "
        "and unfollows one it feuds with.",
    )
    reactions: FeedReactions = Field(default_factory=FeedReactions)


# ---- the files ------------------------------------------------------------------------------

CATALOG_FILES: dict[str, Any] = {
    "world.json": World,
    "places.json": list[Place],
    "npcs.json": list[Npc],
    "relationships.json": list[Relationship],
    "goals.json": list[Goal],
    "event_types.json": list[EventType],
    "channels.json": list[Channel],
    "templates.json": list[Template],
    "scheduled.json": list[ScheduledEvent],
    "director.json": list[DirectorRule],
    "decide.json": Decide,
    "feed.json": Feed,
}
OPTIONAL_FILES = frozenset({"feed.json"})  # a world without one has the defaults (off)


# ---- the loaded catalog ----------------------------------------------------------------------


class Catalog:
    """A validated world: every catalog file, indexed by id, plus a content digest."""

    def __init__(
        self,
        world: World,
        places: list[Place],
        npcs: list[Npc],
        relationships: list[Relationship],
        goals: list[Goal],
        event_types: list[EventType],
        channels: list[Channel],
        templates: list[Template],
        scheduled: list[ScheduledEvent],
        director: list[DirectorRule],
        decide: Decide | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.world = world
        self.places: dict[str, Place] = {p.id: p for p in sorted(places, key=_by_id)}
        # a Mapping and a Sequence: a world index restored from its cache (sim.worldcache)
        # builds profiles on first use and reads relationships.json only when asked
        self.npcs: Mapping[str, Npc] = {n.id: n for n in sorted(npcs, key=_by_id)}
        self.relationships: Sequence[Relationship] = list(relationships)
        self.goals = list(goals)
        self.event_types: dict[str, EventType] = {e.id: e for e in sorted(event_types, key=_by_id)}
        self.channels: dict[str, Channel] = {c.id: c for c in sorted(channels, key=_by_id)}
        self.templates: dict[str, Template] = {t.id: t for t in sorted(templates, key=_by_id)}
        self.scheduled = sorted(scheduled, key=lambda s: (s.sim_minute, s.id))
        self.director = list(director)
        self.decide = decide if decide is not None else Decide()
        self.feed = feed if feed is not None else Feed()
        self._digest: str | None = None

    @property
    def name(self) -> str:
        """World id, e.g. 'town'."""
        return self.world.name

    @property
    def digest(self) -> str:
        """sha256 of the normalized content: independent of file order, dict order, whitespace."""
        if self._digest is None:
            self._digest = content_digest(self.normalized())
        return self._digest

    def known_digest(self, digest: str) -> None:
        """Take the digest this content is known to have (a cache computed it from the same
        files) instead of computing it again."""
        self._digest = digest

    def normalized(self) -> dict[str, Any]:
        """The catalog with every order-free collection in a canonical order (for the digest)."""
        return {
            "world": self.world,
            "places": list(self.places.values()),  # dicts are sorted by id
            "npcs": list(self.npcs.values()),
            "relationships": sorted(self.relationships, key=lambda r: (r.source, r.target)),
            "goals": sorted(
                self.goals, key=lambda g: (g.npc, g.kind, g.target or "", g.priority, g.progress)
            ),
            "event_types": list(self.event_types.values()),
            "channels": list(self.channels.values()),
            "templates": list(self.templates.values()),
            "scheduled": sorted(self.scheduled, key=lambda s: s.id),
            "director": sorted(self.director, key=lambda d: d.id),
            "decide": self.decide,
            "feed": self.feed,
        }

    def files(self) -> dict[str, Any]:
        """The catalog as JSON-ready data, one entry per catalog file."""
        return {
            "world.json": self.world.model_dump(mode="json"),
            "places.json": [p.model_dump(mode="json") for p in self.places.values()],
            "npcs.json": [n.model_dump(mode="json") for n in self.npcs.values()],
            "relationships.json": [r.model_dump(mode="json") for r in self.relationships],
            "goals.json": [g.model_dump(mode="json") for g in self.goals],
            "event_types.json": [e.model_dump(mode="json") for e in self.event_types.values()],
            "channels.json": [c.model_dump(mode="json") for c in self.channels.values()],
            "templates.json": [t.model_dump(mode="json") for t in self.templates.values()],
            "scheduled.json": [s.model_dump(mode="json") for s in self.scheduled],
            "director.json": [d.model_dump(mode="json") for d in self.director],
            "decide.json": self.decide.model_dump(mode="json"),
            "feed.json": self.feed.model_dump(mode="json"),
        }

    def __repr__(self) -> str:
        return (
            f"Catalog(name={self.name!r}, places={len(self.places)}, npcs={len(self.npcs)}, "
            f"relationships={len(self.relationships)}, event_types={len(self.event_types)})"
        )


def _by_id(item: Any) -> str:
    return str(item.id)
