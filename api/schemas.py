"""Response models of the API (``XPublic``); they mirror the ClickHouse rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from api.worlds import display_name


class PostPublic(BaseModel):
    """A post, chat message or news article."""

    post_id: str
    request_id: str
    run_id: str
    event_id: str
    channel: Literal["feed", "chat", "news"]
    author: str
    tick: int
    sim_minute: int
    title: str | None = None
    body: str
    source: Literal["llm", "template"]
    moderation: Literal["published", "flagged"]
    moderation_reason: str | None = None
    score: float
    model: str | None = None
    tokens_in: int
    tokens_out: int
    latency_ms: float
    reply_to: str | None = Field(None, description="The post this one replies to (a thread).")
    repost_of: str | None = Field(None, description="The post this one reposts, with a comment.")


class PostPagePublic(BaseModel):
    """A page of posts; pass ``next_cursor`` as ``cursor`` for the next page (null: last page)."""

    items: list[PostPublic]
    next_cursor: str | None = None


class EffectPublic(BaseModel):
    """One change to one NPC's state."""

    event_id: str
    npc_id: str
    field: str
    other: str | None = None
    delta: float
    text: str | None = None


class ImpactPublic(BaseModel):
    """Impact score of an event and its components."""

    novelty: float
    conflict: float
    status: float
    cascade: float
    total: float


class EventPublic(BaseModel):
    """Something that happened in the world."""

    event_id: str
    run_id: str
    tick: int
    sim_minute: int
    type: str
    actor: str
    target: str | None = None
    place: str | None = None
    witnesses: list[str]
    summary: str
    source: str
    refs: list[str]
    effects: list[EffectPublic]
    impact: ImpactPublic | None = None


class EventPagePublic(BaseModel):
    """A page of events in log order."""

    items: list[EventPublic]
    next_cursor: str | None = None


class RunPublic(BaseModel):
    """A run and how far it got."""

    run_id: str
    seed: int | None = None
    world: str | None = Field(None, description="World name.")
    days: float | None = None
    speed: float | None = None
    step_minutes: int | None = None
    created_at: datetime | None = None
    start_minute: int | None = Field(None, description="Simulated minute the run starts at.")
    catalog_digest: str | None = Field(None, description="sha256 of the catalog it ran with.")
    parent_run: str | None = Field(None, description="The run it branched from.")
    branch_tick: int | None = Field(None, description="The parent's tick it continues after.")
    branches: list[str] | None = Field(
        None, description="Runs branched from this one (on /runs/{id} only)."
    )
    ticks: int = Field(description="Completed ticks stored.")
    last_tick: int | None = None
    last_sim_minute: int | None = None
    finished: bool

    @field_validator("world")
    @classmethod
    def _name_only(cls, world: str | None) -> str | None:
        """A run that recorded a world directory shows its name, not a server path."""
        return display_name(world)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, at: datetime | None) -> datetime | None:
        """The engine hands back naive UTC times: mark them UTC (RFC 3339 needs an offset)."""
        return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


class TickPublic(BaseModel):
    """A completed tick with its state hash."""

    run_id: str
    tick: int
    sim_minute: int
    state_hash: str
    npcs: int
    events: int
    effects: int
    wall_ms: float
    last: bool


class PostTokensPublic(BaseModel):
    """Token totals over stored posts."""

    tokens_in: int
    tokens_out: int
    llm_posts: int
    template_posts: int


class LlmCallsPublic(BaseModel):
    """Totals over recorded LLM calls."""

    calls: int
    cache_hits: int
    tokens_in: int
    tokens_out: int
    avg_latency_ms: float | None = None


class FeedIndexPublic(BaseModel):
    """Whether every run's feed pages are served from memory yet."""

    state: Literal["filling", "ready", "off"]
    posts: int = Field(description="Posts visible in the index.")
    filled: int = Field(description="Posts read from ClickHouse by the fill so far.")
    fill_s: float | None = Field(None, description="How long the fill took, once done.")


class HealthPublic(BaseModel):
    """``ok`` when every dependency answered; each check says ``ok`` or ``error: ...``."""

    status: Literal["ok", "degraded"]
    checks: dict[str, str]
    lag: dict[str, dict[str, int]] | None = Field(
        None,
        description="Consumer lag of this process's consumers (the embedded sink's): "
        "group -> topic -> messages not yet fetched. Absent when it runs none.",
    )
    last_tick: int | None = Field(
        None,
        description="The last completed tick this process stored (its embedded sink), of the "
        "run it stored a tick of last. Absent before the first.",
    )
    feed_index: FeedIndexPublic | None = Field(
        None, description="The post index (api/postindex.py), where the API runs the sink."
    )


class LlmCallsOutcomesPublic(LlmCallsPublic):
    """Totals over recorded LLM calls, with calls per outcome."""

    outcomes: dict[str, int] = Field(default_factory=dict)


class RatesPublic(BaseModel):
    """Rates from the stored ticks (null when there is nothing to divide by)."""

    ticks: int
    sim_hours: float
    wall_s: float
    events_per_tick: float | None = None
    events_per_sim_hour: float | None = None
    posts_per_sim_hour: float | None = None
    ticks_per_wall_s: float | None = None
    tokens_per_llm_post: float | None = None


# ---- NPCs --------------------------------------------------------------------------------


class NpcSummaryPublic(BaseModel):
    """An NPC in a listing."""

    npc_id: str
    handle: str
    display_name: str
    occupation: str
    age: int
    home: str
    work: str | None = None
    fame: float
    channels: list[str]


class NpcPagePublic(BaseModel):
    """A page of NPCs (sorted by id); ``total`` counts every match."""

    items: list[NpcSummaryPublic]
    total: int
    offset: int


class RelationshipPublic(BaseModel):
    """A directed relationship: how this NPC feels about ``other_id``."""

    other_id: str
    handle: str | None = None
    display_name: str | None = None
    affinity: float
    trust: float
    familiarity: float
    tags: list[str] = Field(default_factory=list)


class MemoryPublic(BaseModel):
    """Something the NPC remembers."""

    tick: int
    event_id: str
    text: str
    salience: float


class GoalPublic(BaseModel):
    """A goal and how far along it is."""

    kind: str
    target: str | None = None
    priority: int | None = None
    progress: float


class NpcStatePublic(BaseModel):
    """An NPC's state in a run: from its latest snapshot, or the catalog's start values."""

    run_id: str | None = None
    tick: int | None = Field(None, description="Tick of the snapshot; null: the catalog's start.")
    place: str | None = None
    reputation: float | None = None
    relationships: list[RelationshipPublic]
    memories: list[MemoryPublic]
    goals: list[GoalPublic]
    follows: list[str] | None = Field(
        None, description="Whom the NPC follows (the feed loop); null when it is off."
    )


class NpcPublic(NpcSummaryPublic):
    """An NPC's profile (catalog) and current state (latest snapshot)."""

    traits: dict[str, float]
    interests: list[str]
    voice: str
    posting_propensity: float
    state: NpcStatePublic


class TimelineItemPublic(BaseModel):
    """An event the NPC took part in, or a post they wrote."""

    kind: Literal["event", "post"]
    tick: int
    role: Literal["actor", "target", "witness", "author"]
    event: EventPublic | None = None
    post: PostPublic | None = None


class TimelinePublic(BaseModel):
    """An NPC's events and posts, newest first."""

    npc_id: str
    items: list[TimelineItemPublic]


# ---- admin -------------------------------------------------------------------------------


class CommandAcceptedPublic(BaseModel):
    """A run command was written to the clock's inbox; the clock applies it in order."""

    run_id: str
    command: str
    topic: str
    partition: int
    offset: int


class WorldCreatedPublic(BaseModel):
    """A synthetic world was written; pass ``name`` as ``world`` to start a run on it."""

    name: str
    npcs: int
    places: int
    relationships: int


class DecisionPublic(BaseModel):
    """An LLM decision as the engine resolved it at its due tick."""

    decision_id: str
    request_id: str
    run_id: str
    tick: int = Field(description="The tick it applied at (its due tick).")
    asked_tick: int = Field(description="The tick it was asked at.")
    sim_minute: int
    npc_id: str
    cohort: bool = Field(description="Decided by one call for a cohort of similar NPCs.")
    prompt_hash: str
    status: str = Field(description="ok, repaired, retried, invalid, timeout or error.")
    outcome: Literal["accepted", "rejected", "fallback"]
    reason_code: str | None = Field(None, description="Why it was rejected or fell back.")
    action: str | None = None
    event_type: str | None = None
    target: str | None = None
    model_reason: str | None = Field(None, description="The model's short reason.")
    event_id: str | None = Field(None, description="The event the NPC caused, if any.")


class DecisionPagePublic(BaseModel):
    """A page of decisions in log order."""

    items: list[DecisionPublic]
    next_cursor: str | None = None


class DecisionCountsPublic(BaseModel):
    """Decisions by outcome."""

    total: int
    accepted: int
    accepted_first_try: int
    repaired: int
    retried: int
    rejected: int
    rejected_by_reason: dict[str, int]
    timed_out: int
    fallback: int
    fallback_by_cause: dict[str, int]


class ReachTickPublic(BaseModel):
    """What a post's readers did on one tick."""

    tick: int
    seen: int = Field(description="Readers (exposures) on the tick.")
    likes: int
    reposts: int
    replies: int = Field(description="Replies, feuds included.")
    feuds: int = Field(description="Replies between rivals.")


class ReachPublic(BaseModel):
    """A post's reach in the world (the feed loop): how many read it, and reactions over time."""

    post_id: str
    seen: int
    likes: int
    reposts: int
    replies: int
    feuds: int
    by_tick: list[ReachTickPublic]


class FeedCountsPublic(BaseModel):
    """The feed loop: posts read, and what the readers did about them."""

    exposures: int = Field(description="Posts read (one per reader and post).")
    reactions: int = Field(description="Likes, replies, reposts and feuds.")
    reactions_by_kind: dict[str, int] = Field(description="like, reply, repost, feud -> count.")


class StatsPublic(BaseModel):
    """Row counts per table, posts per channel and moderation status, LLM usage, rates."""

    tables: dict[str, int]
    posts_per_channel: dict[str, dict[str, int]]
    post_tokens: PostTokensPublic
    llm_calls: LlmCallsOutcomesPublic
    rates: RatesPublic
    decisions: DecisionCountsPublic
    feed: FeedCountsPublic


class ThreadNodePublic(BaseModel):
    """One post of a thread, where it hangs, and what the town did about it."""

    post: PostPublic
    parent_id: str | None = Field(description="The post it answers (null: the root).")
    relation: Literal["root", "reply", "repost"]
    depth: int = Field(description="Replies and reposts between it and the root (root: 0).")
    seen: int = Field(description="Readers (the feed loop's exposures).")
    likes: int
    reposts: int = Field(description="Reposts counted from the exposures.")
    replies: int = Field(description="Replies counted from the exposures (feuds included).")


class ThreadPublic(BaseModel):
    """A post's thread: its root, the reply chains and the repost tree under the root,
    breadth first (oldest first within a level), bounded by ``depth`` and ``limit``."""

    post_id: str = Field(description="The post asked about.")
    root_id: str = Field(description="The root of its thread (itself if it answers nothing).")
    path: list[str] = Field(description="Post ids from the root down to the post asked about.")
    nodes: list[ThreadNodePublic]
    truncated: bool = Field(
        description="More posts hang below the depth or past the node limit (or above the "
        "asked post's ancestors, past the depth): what is shown is not the whole thread."
    )
    depth: int = Field(description="The depth limit applied.")
    limit: int = Field(description="The node limit applied.")


class SpreadTickPublic(BaseModel):
    """A story's reach after one tick."""

    tick: int
    new_readers: int = Field(description="NPCs who read a post about it for the first time.")
    readers: int = Field(description="NPCs who have read a post about it so far.")
    share: float | None = Field(description="readers / the town's NPCs (null: size unknown).")


class SpreadPublic(BaseModel):
    """How a post's story (its event) spread across the town, tick by tick: the share of
    the town that had read a post about it (any channel, any author), from the exposures."""

    post_id: str
    run_id: str
    event_id: str = Field(description="The story: the post's event.")
    town: int | None = Field(description="NPCs in the run (null before its first tick).")
    readers: int = Field(description="NPCs who read a post about it.")
    share: float | None
    by_tick: list[SpreadTickPublic]
