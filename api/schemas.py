"""Response models of the API (``XPublic``); they mirror the ClickHouse rows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


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
    world: str | None = None
    days: float | None = None
    speed: float | None = None
    step_minutes: int | None = None
    created_at: datetime | None = None
    ticks: int = Field(description="Completed ticks stored.")
    last_tick: int | None = None
    last_sim_minute: int | None = None
    finished: bool


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


class StatsPublic(BaseModel):
    """Row counts per table, posts per channel and moderation status, LLM usage."""

    tables: dict[str, int]
    posts_per_channel: dict[str, dict[str, int]]
    post_tokens: PostTokensPublic
    llm_calls: LlmCallsPublic


class HealthPublic(BaseModel):
    """``ok`` when every dependency answered; each check says ``ok`` or ``error: ...``."""

    status: Literal["ok", "degraded"]
    checks: dict[str, str]
