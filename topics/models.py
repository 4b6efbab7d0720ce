"""Message models of every topic. Event names are past tense.

These are the wire contract: the JSON Schemas in ``topics/schemas/`` are generated
from them (``worldfeed schemas``) and a test fails when they drift.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

UINT32_MAX = 2**32 - 1  # stored columns that are UInt32 (the engine would wrap a larger value)
MAX_START_MINUTE = 3650 * 1440  # a run can start on any day of its first ten years
AFFINITY_SCALE = 1000  # affinities are summed as integers in thousandths (fixed point)


class Message(BaseModel):
    """Base of every topic message: strict about unknown fields, so garbage is caught."""

    model_config = ConfigDict(extra="forbid", frozen=False)


# ---- run control -------------------------------------------------------------------------


class RunCommanded(Message):
    """An admin or the CLI asked the clock to do something with a run."""

    kind: Literal["run_commanded"] = "run_commanded"
    command: Literal["start", "pause", "resume", "stop", "inject", "speed", "snapshot"] = Field(
        description="What to do (snapshot: write a full-world snapshot after the next tick)."
    )
    run_id: str = Field(description="Run the command is for.", min_length=1, max_length=64)
    seed: int = Field(0, description="Run seed (start only).")
    world: str = Field("town", description="Catalog world name (start only).")
    days: float = Field(1.0, gt=0, le=3650, description="Simulated days to play (start only).")
    speed: float = Field(
        0.0,
        ge=0,
        description="0 = as fast as possible, N = N x real time (start, and speed: the new one).",
    )
    step_minutes: int = Field(15, ge=1, le=1440, description="Simulated minutes per tick.")
    start_minute: int = Field(
        0,
        ge=0,
        le=MAX_START_MINUTE,
        description="Simulated minute the run starts at, counted from day 1 00:00 "
        "(1440 = day 2 00:00; start only).",
    )
    event: InjectedEvent | None = Field(None, description="The event to inject (inject only).")
    catalog_digest: str | None = Field(
        None, description="sha256 of the world's catalog (start only)."
    )
    parent_run: str | None = Field(None, description="The run this one branched from (start only).")
    branch_tick: int | None = Field(
        None,
        ge=0,
        le=UINT32_MAX,
        description="The parent's tick this run continues from; its first tick is the next.",
    )
    base: ClockState | None = Field(
        None, description="The clock's state after branch_tick (a branch's start only)."
    )
    decide_budget: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Focal NPCs that deliberate with the LLM per tick (start only; 0: none).",
    )
    decide_deadline: int = Field(
        1, ge=1, le=96, description="Ticks from a decision's request to its application."
    )
    injected: list[InjectedEvent] = Field(
        default_factory=list,
        description="Events the run's first tick takes (start only: a what-if branch's change).",
    )


class ClockState(Message):
    """The clock's tick-wide inputs after a completed tick (see :mod:`sim.clock`): with the
    NPC states, what a run restored at that tick continues from."""

    tick: int = Field(ge=0, le=UINT32_MAX, description="The last completed tick.")
    recent_events: list[int] = Field(
        default_factory=list, description="Events of the last simulated hour's ticks."
    )
    recent_posts: list[int] = Field(
        default_factory=list, description="Render requests of the same ticks."
    )
    affinity_milli: int = 0
    relationships: int = Field(0, ge=0)
    in_conflict: int = Field(0, ge=0)
    npcs: int = Field(0, ge=0)
    focal: list[list[str]] = Field(
        default_factory=list, description="NPCs that deliberate on the next tick, by cohort."
    )
    director_last: dict[str, int] = Field(
        default_factory=dict, description="Director rule id -> last tick it fired."
    )
    feed_window: int = Field(
        0, ge=0, description="Ticks a post stays in the feed (0: no feed loop)."
    )
    feed_posts: list[FeedPost] = Field(
        default_factory=list,
        description="The posts in the feed after the tick, with their counts (the feed loop).",
    )


class FeedPost(Message):
    """A post as the world sees it: a render request its event made at its base score (so
    the same for any partition count, and known before the LLM writes it)."""

    key: str = Field(
        description="hash(event_id, channel, author): the post's content id, the same in every "
        "run that has the event (what NPC states and draws use)."
    )
    post_id: str = Field(description="Id of the post it becomes: hash(request id).")
    event_id: str
    tick: int = Field(ge=0, le=UINT32_MAX, description="Tick of its event.")
    channel: Literal["feed", "chat", "news"]
    author: str
    actor: str = Field(description="Who the post is about: its event's actor.")
    target: str | None = None
    type: str = Field(description="Its event's type.")
    score: float = Field(ge=0, le=1, description="Its event's base impact.")
    seen: int = Field(0, ge=0, description="Exposures so far.")
    likes: int = Field(0, ge=0)
    reposts: int = Field(0, ge=0)
    replies: int = Field(0, ge=0, description="Replies so far (arguments included).")


class InjectedEvent(Message):
    """An event an admin injects; it happens on the next tick."""

    type: str = Field(description="Event type id from the catalog.")
    actor: str = Field(description="Acting NPC id.")
    target: str | None = Field(None, description="Target NPC id.")
    place: str | None = Field(None, description="Place id; defaults to the actor's location.")
    summary: str | None = Field(None, description="Override of the generated summary.")


# ---- world shard inbox (clock -> shards, shards -> shards) -----------------------------------


class TickStarted(Message):
    """The clock started tick ``tick``; one copy goes to every world partition."""

    kind: Literal["tick_started"] = "tick_started"
    run_id: str
    seed: int
    world: str
    tick: int = Field(ge=0, description="0-based tick number.")
    sim_minute: int = Field(
        ge=0, description="Simulated minutes since the run's start (day 1 00:00)."
    )
    step_minutes: int = Field(ge=1)
    shard: int = Field(ge=0, description="Partition this copy is for.")
    n_shards: int = Field(ge=1, description="Partitions of the shard topics in this run.")
    injected: list[InjectedEvent] = Field(
        default_factory=list, description="Admin-injected events."
    )
    recent_events: int = Field(
        0, ge=0, description="Events in the last simulated hour (for director conditions)."
    )
    posts_last_hour: int = Field(
        0,
        ge=0,
        description="Render requests the last simulated hour's events made at their base "
        "score (for director conditions).",
    )
    mean_affinity: float | None = Field(
        None,
        ge=-100,
        le=100,
        description="Mean affinity of every relationship at the start of the tick; "
        "None before the first tick completed.",
    )
    conflict_share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of NPCs in conflict (a relationship at or below the conflict "
        "affinity) at the start of the tick; None before the first tick completed.",
    )
    director_last: dict[str, int] = Field(
        default_factory=dict,
        description="Director rule id -> last tick it fired (for cooldown_ticks).",
    )
    snapshot: bool = Field(
        False, description="Write a full-world snapshot after this tick's effects."
    )
    focal: list[list[str]] = Field(
        default_factory=list,
        description="NPCs that ask the LLM what to do on this tick (the world's most salient, "
        "chosen by the clock from the shards' reports), grouped by cohort key; each group "
        "sorted, groups by first member.",
    )
    decide_budget: int = Field(0, ge=0, description="Focal NPCs per tick (0: no deliberation).")
    decide_deadline: int = Field(
        1, ge=1, description="Decisions asked now apply this many ticks on."
    )
    feed: list[FeedPost] = Field(
        default_factory=list,
        description="The posts in the feed at the start of the tick, with their counts (the "
        "feed loop; empty when it is off).",
    )


class Effect(Message):
    """One change to one NPC's state, caused by an event."""

    event_id: str = Field(description="Event that caused it.")
    npc_id: str = Field(description="NPC whose state changes.")
    field: Literal[
        "affinity",
        "trust",
        "familiarity",
        "reputation",
        "goal_progress",
        "memory",
        "acted",
        "seen",
        "follow",
    ] = Field(
        description="What changes; 'acted' records that the NPC did an event type, 'seen' that "
        "it read a post (delta: the last tick the post is in the feed), 'follow' that it "
        "follows (delta 1) or unfollows (-1) another NPC."
    )
    other: str | None = Field(
        None,
        description="Other NPC (relationships, follow), goal kind (goals), event type (acted) "
        "or post key (seen).",
    )
    delta: float = Field(0.0, description="Change; for memory, the salience 0..1.")
    text: str | None = Field(None, description="Memory summary.")


class EffectsBatched(Message):
    """All effects that shard ``from_shard`` produced on tick ``tick`` for shard ``shard``.

    Every shard sends one (possibly empty) batch to every shard each tick, so a shard
    knows when it has all effects of a tick: that is the tick barrier.
    """

    kind: Literal["effects_batched"] = "effects_batched"
    run_id: str
    tick: int = Field(ge=0)
    shard: int = Field(ge=0)
    from_shard: int = Field(ge=0)
    n_shards: int = Field(ge=1)
    part: int = Field(0, ge=0, description="This message's part of the batch (0-based).")
    parts: int = Field(1, ge=1, description="Parts the batch was split into (message size).")
    effects: list[Effect] = Field(default_factory=list)


class StatesPart(Message):
    """Part of one shard's NPC states as of a tick (a snapshot's, or a branch's start)."""

    run_id: str
    tick: int = Field(ge=0, le=UINT32_MAX, description="The states are as of this tick's end.")
    shard: int = Field(ge=0)
    n_shards: int = Field(ge=1)
    part: int = Field(ge=0)
    parts: int = Field(ge=1, description="Parts of this shard's states.")
    states: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="NPC id -> state (sim.state: rep, rel, mem, goal, cool)."
    )


class StateRestored(StatesPart):
    """A branch's shard starts from these states (sent before the branch's first tick)."""

    kind: Literal["state_restored"] = "state_restored"
    world: str
    seed: int
    step_minutes: int = Field(ge=1)
    start_minute: int = Field(ge=0, le=MAX_START_MINUTE)


class SnapshotPart(Message):
    """One part of a full-world snapshot of a run after tick ``tick``.

    A snapshot is the clock's part (the run's start command and the clock's state) plus
    every shard's parts (its NPCs' states). Each part carries the sha256 of its payload
    (canonical JSON of ``states``, or of ``start`` and ``clock``), so a corrupt or
    truncated part is detected on restore.
    """

    kind: Literal["snapshot_part"] = "snapshot_part"
    run_id: str
    tick: int = Field(ge=0, le=UINT32_MAX)
    source: Literal["shard", "clock"]
    shard: int = Field(0, ge=0)
    n_shards: int = Field(ge=1)
    part: int = Field(0, ge=0)
    parts: int = Field(1, ge=1)
    states: dict[str, dict[str, Any]] = Field(default_factory=dict)
    start: RunCommanded | None = Field(None, description="The run's start (clock part).")
    clock: ClockState | None = Field(None, description="The clock after the tick (clock part).")
    sha256: str = Field(min_length=64, max_length=64)


class TickTallies(Message):
    """What a tick did to the world as a whole, in integers: a shard reports its part, the
    clock sums them (the same for any partition count) into the next tick's inputs."""

    render_requests: int = Field(
        0, ge=0, description="Render requests the tick's events make at their base score."
    )
    affinity_milli: int = Field(
        0, description="Sum of every relationship's affinity, in thousandths, after the tick."
    )
    relationships: int = Field(0, ge=0, description="Relationships summed in affinity_milli.")
    in_conflict: int = Field(0, ge=0, description="NPCs in conflict after the tick.")
    director_fired: list[str] = Field(
        default_factory=list, description="Director rules that fired on the tick (sorted ids)."
    )
    exposures: int = Field(0, ge=0, description="Posts read on the tick (the feed loop).")
    reactions: int = Field(0, ge=0, description="Likes, replies and reposts on the tick.")
    feed_window: int = Field(
        0, ge=0, description="Ticks a post stays in the feed (0: no feed loop)."
    )
    feed_posts: list[FeedPost] = Field(
        default_factory=list,
        description="The tick's top posts by base score (key order breaks ties), that enter "
        "the feed.",
    )
    feed_counts: dict[str, list[int]] = Field(
        default_factory=dict,
        description="Post key -> [exposures, likes, reposts, replies] of the tick.",
    )


class ShardTickDone(TickTallies):
    """A shard finished tick ``tick``: decided, emitted, and applied every effect."""

    kind: Literal["shard_tick_done"] = "shard_tick_done"
    run_id: str
    tick: int = Field(ge=0)
    shard: int = Field(ge=0)
    n_shards: int = Field(ge=1)
    npcs: int = Field(ge=0, description="NPCs the shard owns.")
    events: int = Field(ge=0, description="Events the shard emitted this tick.")
    effects: int = Field(ge=0, description="Effects the shard applied this tick.")
    state_digest: int = Field(ge=0, description="Sum mod 2**64 of the shard's NPC state hashes.")
    feed_top: int = Field(
        0, ge=0, description="The catalog's posts per tick: the clock keeps the world's top."
    )
    salient: list[tuple[int, str, str]] = Field(
        default_factory=list,
        description="The shard's most salient NPCs for the next tick: (salience in thousandths, "
        "NPC, cohort key), at most the run's decide budget; the clock picks the world's focal "
        "NPCs from them and groups them by cohort key.",
    )


# ---- world log ---------------------------------------------------------------------------------


class ImpactScore(Message):
    """How much an event matters, and why."""

    novelty: float = Field(ge=0, le=1)
    conflict: float = Field(ge=0, le=1)
    status: float = Field(ge=0, le=1)
    cascade: float = Field(ge=0, le=1)
    total: float = Field(ge=0, le=1, description="Weighted sum of the components.")


class StoryState(Message):
    """What the impact stage remembers about a story besides the event itself."""

    references: int = Field(0, ge=0, description="Later events that referred to it so far.")
    requested: list[str] = Field(
        default_factory=list, description="Channels already asked to write it up."
    )


class EventHappened(Message):
    """Something happened in the world."""

    kind: Literal["event_happened"] = "event_happened"
    event_id: str = Field(
        description="hash(tick, type, actor, target, place): the event's content id, the same"
        " in every run that has the same event (a replay, an unchanged branch)."
    )
    run_id: str
    world: str = Field("town", description="Catalog world of the run (name or path).")
    tick: int = Field(ge=0, le=UINT32_MAX)
    sim_minute: int = Field(ge=0, le=UINT32_MAX)
    type: str = Field(description="Event type id from the catalog.")
    actor: str
    target: str | None = None
    place: str | None = None
    witnesses: list[str] = Field(default_factory=list)
    summary: str = Field(description="One-line, human-readable description.")
    source: Literal["npc", "scheduled", "director", "admin", "llm", "feed"] = Field(
        "npc",
        description="Who chose it: the rules, the calendar, the director, an admin, an "
        "LLM decision the rules accepted, or a reaction to a post read (the feed loop).",
    )
    refs: list[str] = Field(default_factory=list, description="Earlier events this one reacts to.")
    actor_memories: list[str] = Field(
        default_factory=list, description="The actor's most salient memories at the tick's start."
    )
    effects: list[Effect] = Field(default_factory=list)
    impact: ImpactScore | None = Field(None, description="Set by the impact stage.")
    restored: StoryState | None = Field(
        None,
        description="Set only on a copy of an earlier story sent to a branch run, so that its"
        " impact stage can re-score it as the parent's would: not a new event (not stored, not"
        " written up).",
    )


ClockInbox = Annotated[RunCommanded | ShardTickDone, Field(discriminator="kind")]


class TickCompleted(TickTallies):
    """Every shard finished a tick; written by the clock, stored in ClickHouse."""

    kind: Literal["tick_completed"] = "tick_completed"
    run_id: str
    tick: int = Field(ge=0)
    sim_minute: int = Field(ge=0)
    state_hash: str = Field(description="16 hex digits; the same for the same seed and catalog.")
    npcs: int = Field(ge=0)
    events: int = Field(ge=0)
    effects: int = Field(ge=0)
    wall_ms: float = Field(ge=0, description="Wall time of the tick, barrier included.")
    last: bool = Field(False, description="True on the run's final tick.")
    focal: list[list[str]] = Field(
        default_factory=list,
        description="The NPCs that deliberate on the next tick, by cohort (chosen from the shards' "
        "reports; a recovering clock reads them back).",
    )
    injected: list[InjectedEvent] = Field(
        default_factory=list, description="The admin-injected events this tick took."
    )


# ---- rendering -------------------------------------------------------------------------------


ChannelName = Literal["feed", "chat", "news"]


class ParentPost(Message):
    """The post a reply or repost answers (the feed loop): which post it is, and what it
    says as the world knows it when the answer is requested."""

    post_id: str = Field(max_length=64, description="The parent post's id: hash(its request id).")
    relation: Literal["reply", "repost"] = Field(
        description="reply: the new post answers it (a feud is a reply); repost: passes it on."
    )
    author: str = Field(max_length=64, description="Who wrote the parent post.")
    channel: ChannelName
    event_id: str = Field(max_length=64, description="The parent post's event.")
    text: str = Field(
        min_length=1,
        max_length=600,
        description="What the parent post says, as known when the answer is requested: its "
        "event's summary (the parent's LLM text is written elsewhere and later, so a prompt "
        "built from it would depend on timing and partitions).",
    )


class RenderRequested(Message):
    """An event crossed a channel's threshold and should be written up."""

    kind: Literal["render_requested"] = "render_requested"
    request_id: str = Field(description="hash(run_id, event_id, channel, author).")
    run_id: str
    channel: Literal["feed", "chat", "news"]
    author: str = Field(description="NPC who writes the post.")
    template: str = Field(description="Prompt template id from the catalog.")
    score: float = Field(ge=0, le=1)
    event: EventHappened
    parent: ParentPost | None = Field(
        None, description="The post this one replies to or reposts (feed reactions); null else."
    )


class QuotaRestored(Message):
    """A branch starts with its parent's posting quota for the day of its branch tick:
    the requests the parent charged to one author's channel that day (sent before the
    branch's first tick, keyed by author like the requests)."""

    kind: Literal["quota_restored"] = "quota_restored"
    run_id: str
    author: str
    channel: Literal["feed", "chat", "news"]
    day: int = Field(ge=1, description="Simulated day (1-based).")
    request_ids: list[str] = Field(max_length=10_000)


RenderInbox = Annotated[RenderRequested | QuotaRestored, Field(discriminator="kind")]


class PostPublished(Message):
    """A post, chat message or news article, ready for the feed."""

    kind: Literal["post_published"] = "post_published"
    post_id: str = Field(description="hash(request_id); the same request never makes two posts.")
    request_id: str
    run_id: str
    event_id: str
    channel: Literal["feed", "chat", "news"]
    author: str
    tick: int = Field(ge=0)
    sim_minute: int = Field(ge=0)
    title: str | None = Field(None, description="Headline (news only).")
    body: str = Field(min_length=1)
    source: Literal["llm", "template"]
    moderation: Literal["published", "flagged", "blocked"] = "published"
    moderation_reason: str | None = None
    score: float = Field(ge=0, le=1)
    model: str | None = None
    tokens_in: int = Field(0, ge=0)
    tokens_out: int = Field(0, ge=0)
    latency_ms: float = Field(0.0, ge=0)
    reply_to: str | None = Field(
        None, max_length=64, description="The post this one replies to (a thread); null else."
    )
    repost_of: str | None = Field(
        None, max_length=64, description="The post this one reposts, with its comment; null else."
    )


class NpcSnapshotted(Message):
    """An NPC's full state at the end of a simulated hour (for the read side)."""

    kind: Literal["npc_snapshotted"] = "npc_snapshotted"
    run_id: str
    tick: int = Field(ge=0, description="Tick after whose effects the snapshot was taken.")
    npc_id: str
    place: str | None = Field(None, description="Where the NPC is at that hour (None: asleep).")
    reputation: float = Field(ge=0, le=100)
    relationships: dict[str, list[float]] = Field(
        default_factory=dict, description="other NPC -> [affinity, trust, familiarity]."
    )
    memories: list[list[Any]] = Field(
        default_factory=list, description="[tick, event_id, text, salience] entries."
    )
    goals: dict[str, float] = Field(default_factory=dict, description="goal kind -> progress.")
    follows: list[str] | None = Field(
        None, description="Whom the NPC follows (the feed loop); null when the loop is off."
    )
    state_hash: str = Field(description="16 hex digits of the NPC's state hash.")


class PostSeen(Message):
    """An NPC read a post in its feed (the feed loop): who saw which post at which tick, and
    what it did about it."""

    kind: Literal["post_seen"] = "post_seen"
    exposure_id: str = Field(description="hash(run, tick, reader, post key).")
    run_id: str
    tick: int = Field(ge=0, le=UINT32_MAX, description="Tick it was read at.")
    sim_minute: int = Field(ge=0, le=UINT32_MAX)
    npc_id: str = Field(description="The reader.")
    post_key: str = Field(description="The post's content id (FeedPost.key).")
    post_id: str
    event_id: str = Field(description="The post's event.")
    post_tick: int = Field(ge=0, le=UINT32_MAX)
    author: str
    channel: Literal["feed", "chat", "news"]
    recommender: Literal["chronological", "affinity", "popularity", "random"]
    rank: int = Field(ge=0, description="Its place in what the recommender chose (0: first).")
    reaction: Literal["like", "reply", "repost", "feud"] | None = Field(
        None, description="What the reader did: a reply between rivals is a feud."
    )
    reaction_event_id: str | None = Field(None, description="The reaction's event, if any.")


class LLMCalled(Message):
    """One LLM call (or cache hit) made while rendering: the cost ledger."""

    kind: Literal["llm_called"] = "llm_called"
    call_id: str = Field(description="hash(request_id, attempt).")
    run_id: str
    request_id: str
    attempt: int = Field(ge=1)
    prompt_hash: str
    model: str | None = None
    tokens_in: int = Field(0, ge=0)
    tokens_out: int = Field(0, ge=0)
    latency_ms: float = Field(0.0, ge=0)
    cache_hit: bool = False
    outcome: Literal["valid", "repaired", "invalid", "error", "unavailable", "cached"]
    error: str | None = None
    at_ms: int = Field(description="Wall-clock ms of the call (diagnostics only).")


class DeadLettered(Message):
    """A message a stage could not process, with the reason; never silently dropped."""

    kind: Literal["dead_lettered"] = "dead_lettered"
    stage: str = Field(description="Processor that rejected it.")
    topic: str
    partition: int = -1
    offset: int = -1
    key: str | None = None
    value: str = Field(description="The raw message (truncated to 64 KiB).")
    reason: str
    at_ms: int = Field(description="Wall-clock ms when it was rejected (diagnostics only).")


# ---- decisions (shards -> deliberate -> shards) -----------------------------------------------

DecisionStatus = Literal["ok", "repaired", "retried", "invalid", "timeout", "error"]
DecisionOutcome = Literal["accepted", "rejected", "fallback"]


class DecisionRequested(Message):
    """A shard asks what a focal NPC (or a cohort of similar ones) does at tick ``due_tick``."""

    kind: Literal["decision_requested"] = "decision_requested"
    request_id: str = Field(description="hash(run, tick, the NPCs asked about).")
    run_id: str
    world: str = "town"
    tick: int = Field(ge=0, le=UINT32_MAX, description="Tick the request was made at.")
    due_tick: int = Field(ge=0, le=UINT32_MAX, description="Tick the decision applies at.")
    shard: int = Field(ge=0)
    n_shards: int = Field(ge=1)
    npcs: list[str] = Field(min_length=1, description="The NPC asked about, or a cohort (sorted).")
    cohort: str | None = Field(None, description="Cohort key (place|occupation|goal), or null.")
    situation: dict[str, Any] = Field(
        description="What the NPC knows: profile, place and time, memories, goals, "
        "relationships, people nearby, the actions allowed here and now."
    )
    system: str
    prompt: str
    answer_schema: dict[str, Any] = Field(description="JSON Schema an answer must satisfy.")
    max_tokens: int = Field(96, ge=1, le=4096)
    prompt_hash: str = Field(description="16 hex digits of hash(system, prompt, schema).")

    def decided(self, status: DecisionStatus, **answer: Any) -> DecisionMade:
        """This request's decision with ``status`` (``answer``: the answer fields of
        :class:`DecisionMade`, none for a recorded failure)."""
        return DecisionMade(
            request_id=self.request_id,
            run_id=self.run_id,
            tick=self.tick,
            due_tick=self.due_tick,
            shard=self.shard,
            npcs=self.npcs,
            prompt_hash=self.prompt_hash,
            status=status,
            **answer,
        )


class DecisionMade(Message):
    """The answer to a decision request, or its recorded failure: the log, not the LLM,
    decides the run (a replay reads these and never asks again)."""

    kind: Literal["decision_made"] = "decision_made"
    request_id: str
    run_id: str
    tick: int = Field(ge=0, le=UINT32_MAX)
    due_tick: int = Field(ge=0, le=UINT32_MAX)
    shard: int = Field(ge=0)
    npcs: list[str] = Field(min_length=1)
    prompt_hash: str
    status: DecisionStatus = Field(
        description="ok: schema-valid first try; repaired: valid after JSON repair; retried: "
        "valid after another sampling; invalid: never valid; timeout: not back by the "
        "deadline; error: the LLM failed."
    )
    answer: dict[str, Any] | None = Field(None, description="The parsed answer, if any.")
    reason: str | None = Field(None, max_length=400, description="The model's short reason.")
    reason_moderation: str | None = Field(
        None,
        description="Moderation's verdict on the reason when not published as is: "
        "'blocked: <why>' (the reason withheld, here and in the answer) or 'flagged: <why>'.",
    )
    attempts: int = Field(0, ge=0)
    latency_ms: float = Field(0.0, ge=0, description="Wall time (diagnostics only).")


class DecisionResolved(Message):
    """What the engine did with one NPC's decision at its due tick."""

    kind: Literal["decision_resolved"] = "decision_resolved"
    decision_id: str = Field(description="hash(request, NPC).")
    request_id: str
    run_id: str
    tick: int = Field(ge=0, le=UINT32_MAX, description="Tick it applied at (the due tick).")
    asked_tick: int = Field(ge=0, le=UINT32_MAX)
    sim_minute: int = Field(ge=0, le=UINT32_MAX)
    npc_id: str
    cohort: bool = False
    prompt_hash: str
    status: DecisionStatus
    outcome: DecisionOutcome = Field(
        description="accepted: the rules took the LLM's choice; rejected: they refused it "
        "(reason_code) and the rules chose; fallback: no usable answer, the rules chose."
    )
    reason_code: str | None = Field(None, description="Why it was rejected or fell back.")
    action: str | None = None
    event_type: str | None = None
    target: str | None = None
    model_reason: str | None = Field(None, max_length=400)
    event_id: str | None = Field(None, description="The event the NPC caused, if any.")
    post_id: str | None = Field(
        None, description="An accepted reaction (a feed kind): the post the NPC reacted to."
    )
    reaction: Literal["like", "reply", "repost", "feud"] | None = Field(
        None, description="An accepted reaction: what it is (a reply to a rival is a feud)."
    )


ShardInbox = Annotated[
    TickStarted | EffectsBatched | StateRestored | DecisionMade, Field(discriminator="kind")
]
"""The shard inbox: ticks, effect batches, a branch's states, and decisions due."""

RunCommanded.model_rebuild()
ClockState.model_rebuild()
