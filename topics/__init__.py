"""Every topic, declared once, beside its message model.

A :class:`TopicSpec` holds the name (without the run's prefix), the model, what the
key is, the partition count and retention. Processors, the API and the CLI import
``TOPICS``; no topic name string appears anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from pydantic import BaseModel, TypeAdapter

from topics.fastcheck import decoder_for
from topics.models import (
    ClockInbox,
    DeadLettered,
    DecisionMade,
    DecisionRequested,
    DecisionResolved,
    EventHappened,
    LLMCalled,
    NpcSnapshotted,
    PostPublished,
    PostSeen,
    RenderInbox,
    RunCommanded,
    ShardInbox,
    SnapshotPart,
    TickCompleted,
)

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """Declaration of one topic."""

    name: str
    model: Any  # a pydantic model or an Annotated union (ShardInbox)
    key: str
    description: str
    partitions: int | None = None  # None = settings.world_partitions
    config: dict[str, str] = field(default_factory=dict)

    def adapter(self) -> TypeAdapter[Any]:
        """Validates raw JSON into the model (cached per spec)."""
        return _adapter(self.name, self.model)

    def checker(self) -> msgspec.json.Decoder[Any]:
        """A strict check of raw JSON, ~3x faster than :meth:`adapter` (cached).

        A msgspec decoder derived from the model (:mod:`topics.fastcheck`): it refuses what
        the model refuses in strict mode, and builds no model. For consumers that only need
        to know a message is valid, such as the sink, which stores the JSON itself. Its
        errors are ``msgspec.MsgspecError``; for the reason to report, use :meth:`adapter`.
        Only topics whose model is one class have one (``TypeError`` otherwise).
        """
        if self.name not in _CHECKERS:
            _CHECKERS[self.name] = decoder_for(self.model)
        return _CHECKERS[self.name]

    def partition_count(self, world_partitions: int) -> int:
        """Partitions of this topic for a deployment with ``world_partitions`` shards."""
        return self.partitions if self.partitions is not None else world_partitions


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _adapter(name: str, model: Any) -> TypeAdapter[Any]:
    if name not in _ADAPTERS:
        _ADAPTERS[name] = TypeAdapter(model)
    return _ADAPTERS[name]


_CHECKERS: dict[str, msgspec.json.Decoder[Any]] = {}


_RETAIN = {"retention.ms": str(WEEK_MS)}
_FOREVER = {"retention.ms": "-1"}

CLOCK_INBOX = TopicSpec(
    "clock-inbox",
    ClockInbox,
    "run_id",
    "The clock's single ordered input: run commands (start, pause, resume, stop, inject) and"
    " shards' tick-done reports.",
    1,
    _RETAIN,
)
RUNS = TopicSpec(
    "runs", RunCommanded, "run_id", "Accepted run commands, as the clock applied them.", 1, _FOREVER
)
SHARD_INBOX = TopicSpec(
    "shard-inbox",
    ShardInbox,
    "shard number",
    "Ticks (clock -> every shard) and effect batches (shard -> shard), partition = shard.",
    None,
    _RETAIN,
)
TICKS = TopicSpec(
    "ticks",
    TickCompleted,
    "run_id",
    "Completed ticks with state hash: the run's clock log.",
    1,
    _FOREVER,
)
EVENTS = TopicSpec(
    "events",
    EventHappened,
    "run_id",
    "Every event in the world, as emitted by the shards.",
    None,
    _FOREVER,
)
SCORED_EVENTS = TopicSpec(
    "scored-events",
    EventHappened,
    "event_id",
    "Re-scored events: an event with its raised impact, each time a later event references it.",
    None,
    _FOREVER,
)
RENDER_REQUESTS = TopicSpec(
    "render-requests",
    RenderInbox,
    "author",
    "Events to write up, one per channel. Keyed by author, so one author's requests -- and"
    " so identical prompts, and the author's daily quota -- share a partition. A branch's"
    " quotas restored from its parent come the same way, before its first request.",
    None,
    _FOREVER,
)
POSTS = TopicSpec("posts", PostPublished, "post_id", "Rendered, moderated posts.", None, _FOREVER)
NPC_SNAPSHOTS = TopicSpec(
    "npc-snapshots",
    NpcSnapshotted,
    "npc_id",
    "Each NPC's state at the end of every sim hour.",
    None,
    _RETAIN,
)
LLM_CALLS = TopicSpec(
    "llm-calls",
    LLMCalled,
    "request_id",
    "Every LLM call and cache hit, with tokens and latency.",
    None,
    _FOREVER,
)
SNAPSHOTS = TopicSpec(
    "snapshots",
    SnapshotPart,
    "run_id",
    "Full-world snapshots: after a snapshot tick, the clock's part and every shard's NPC"
    " states, in parts, each with its sha256. Branches restore from them.",
    1,
    {**_FOREVER, "max.message.bytes": str(2 * 1024 * 1024)},
)
DECISION_REQUESTS = TopicSpec(
    "decision-requests",
    DecisionRequested,
    "request_id",
    "Focal NPCs' situations and prompts: what the deliberate stage asks the LLM.",
    None,
    _RETAIN,
)
DECISIONS = TopicSpec(
    "decisions",
    DecisionMade,
    "request_id",
    "The LLM's decisions and recorded failures (timeouts, invalid answers): part of a run's "
    "log; replay and branches read them instead of asking again.",
    None,
    _FOREVER,
)
DECISION_OUTCOMES = TopicSpec(
    "decision-outcomes",
    DecisionResolved,
    "run_id",
    "What the engine did with each decision at its due tick: accepted, rejected (reason) or "
    "fallback, and the event it caused.",
    None,
    _FOREVER,
)
EXPOSURES = TopicSpec(
    "exposures",
    PostSeen,
    "npc_id",
    "Who read which post at which tick, chosen by the feed's recommender, and the reaction "
    "(the feed loop; written by the shards, part of a run's log).",
    None,
    _FOREVER,
)
DLQ = TopicSpec(
    "dlq", DeadLettered, "stage", "Dead letters: rejected messages with the reason.", 1, _FOREVER
)

TOPICS: tuple[TopicSpec, ...] = (
    CLOCK_INBOX,
    RUNS,
    SHARD_INBOX,
    TICKS,
    EVENTS,
    SCORED_EVENTS,
    RENDER_REQUESTS,
    POSTS,
    NPC_SNAPSHOTS,
    LLM_CALLS,
    SNAPSHOTS,
    DECISION_REQUESTS,
    DECISIONS,
    DECISION_OUTCOMES,
    EXPOSURES,
    DLQ,
)


def schema_of(spec: TopicSpec) -> dict[str, Any]:
    """JSON Schema of a topic's message model."""
    if isinstance(spec.model, type) and issubclass(spec.model, BaseModel):
        return spec.model.model_json_schema()
    return TypeAdapter(spec.model).json_schema()
