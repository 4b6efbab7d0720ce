"""Posts in log order, one post by id, and why a post exists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from api.deps import (
    Channel,
    Cursor,
    Limit,
    RunId,
    SettingsDep,
    StorageDep,
    TickFrom,
    TickTo,
)
from api.schemas import EventPublic, PostPagePublic, PostPublic
from api.worlds import UnknownWorld, WorldCatalogs
from catalog import Catalog
from storage import queries, run_in_thread, views

router = APIRouter(prefix="/posts", tags=["posts"])


@router.get("", response_model=PostPagePublic)
async def read_posts(
    storage: StorageDep,
    run_id: RunId = None,
    channel: Channel = None,
    author: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    event_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tick_from: TickFrom = None,
    tick_to: TickTo = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PostPagePublic:
    """Posts oldest first (tick, post_id ascending); blocked posts never appear."""
    page = await run_in_thread(
        queries.posts,
        storage.client,
        storage.database,
        run_id=run_id,
        channel=channel,
        author=author,
        event_id=event_id,
        tick_from=tick_from,
        tick_to=tick_to,
        limit=limit,
        cursor=cursor,
    )
    return PostPagePublic.model_validate(page, from_attributes=True)


@router.get("/{post_id}", response_model=PostPublic, responses={404: {"description": "Unknown"}})
async def read_post(
    storage: StorageDep, post_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> PostPublic:
    """One post by id; 404 if unknown (or blocked)."""
    row = await run_in_thread(queries.post_by_id, storage.client, storage.database, post_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"post {post_id!r} not found")
    return PostPublic.model_validate(row)


class ChannelRulePublic(BaseModel):
    """The catalog rule that made the event a render request on the post's channel."""

    channel: str
    threshold: float = Field(description="Impact score the event needed on this channel.")
    score: float = Field(description="The event's impact score when the post was requested.")
    passed: bool = Field(description="score >= threshold.")
    template: str = Field(description="Prompt template id.")
    author_rule: str = Field(description="actor, target, witness or journalist.")
    rate_limit_per_day: int | None = Field(None, description="Posts per author per sim day.")


class AuthorWhyPublic(BaseModel):
    """Who wrote the post, and why this NPC."""

    npc_id: str
    handle: str | None = None
    display_name: str | None = None
    reason: str
    posting_propensity: float | None = Field(
        None, description="Feed and chat: the chance the author writes an event up at all."
    )


class RenderAttemptPublic(BaseModel):
    """One LLM call (or cache hit) made to render the post, with the validator's verdict."""

    call_id: str
    attempt: int
    outcome: str = Field(description="valid, repaired, invalid, error, unavailable or cached.")
    error: str | None = None
    cache_hit: bool
    model: str | None = None
    prompt_hash: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    at: datetime


class PostWhyPublic(BaseModel):
    """Why a post exists: its event, the rule it passed, its author, its render attempts."""

    post: PostPublic
    event: EventPublic | None = Field(None, description="The event behind the post.")
    refers_to: list[EventPublic] = Field(description="Earlier events this one refers back to.")
    rescored_by: list[EventPublic] = Field(description="Later events that re-scored it.")
    world: str | None = None
    rule: ChannelRulePublic | None = None
    author: AuthorWhyPublic
    attempts: list[RenderAttemptPublic]
    notes: list[str] = Field(description="What could not be explained, and why.")


AUTHOR_REASONS = {
    "actor": "the event's actor writes it up",
    "target": "the event's target writes it up",
    "witness": "the event's first witness writes it up",
    "journalist": "a journalist (an NPC who writes news) other than the actor and the "
    "target, picked by a stable hash of the event id",
}


def _rule(
    catalog: Catalog | None, event: dict[str, Any] | None, post: dict[str, Any], notes: list[str]
) -> ChannelRulePublic | None:
    if catalog is None or event is None:
        return None
    event_type = catalog.event_types.get(event["type"])
    rule = event_type.channels.get(post["channel"]) if event_type is not None else None
    if rule is None:
        notes.append(
            f"the world's event type {event['type']!r} has no {post['channel']} rule "
            "(an injected or director event, or the catalog changed since the run)"
        )
        return None
    channel = catalog.channels.get(post["channel"])
    return ChannelRulePublic(
        channel=post["channel"],
        threshold=rule.threshold,
        score=post["score"],
        passed=post["score"] >= rule.threshold,
        template=rule.template,
        author_rule=rule.author,
        rate_limit_per_day=channel.rate_limit_per_day if channel is not None else None,
    )


@router.get(
    "/{post_id}/why", response_model=PostWhyPublic, responses={404: {"description": "Unknown"}}
)
async def why_post(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    post_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> PostWhyPublic:
    """Why this post: the event and its impact, the threshold it passed, why this author,
    and every render attempt (validator verdict, tokens, cache)."""
    db, client = storage.database, storage.client
    catalogs: WorldCatalogs = request.app.state.catalogs
    post = await run_in_thread(queries.post_by_id, client, db, post_id)
    if post is None:
        raise HTTPException(status_code=404, detail=f"post {post_id!r} not found")
    notes: list[str] = []
    event = await run_in_thread(queries.event_by_id, client, db, post["event_id"], post["run_id"])
    if event is None:
        notes.append(f"event {post['event_id']} is not stored (yet)")
    refers_to = []
    for ref in (event or {}).get("refs", [])[:50]:
        earlier = await run_in_thread(queries.event_by_id, client, db, ref)
        if earlier is not None:
            refers_to.append(EventPublic.model_validate(earlier))
    rescored = await run_in_thread(
        views.events_referring_to, client, db, post["run_id"], post["event_id"]
    )
    run = await run_in_thread(queries.run_by_id, client, db, post["run_id"])
    world = run["world"] if run else None
    catalog: Catalog | None = None
    try:
        catalog = await catalogs.of_run(world, settings.catalog_dir)
    except UnknownWorld as exc:
        notes.append(f"the run's world is not available here: {exc}")
    rule = _rule(catalog, event, post, notes)
    npc = catalog.npcs.get(post["author"]) if catalog is not None else None
    reason = AUTHOR_REASONS.get(rule.author_rule, rule.author_rule) if rule else "unknown"
    propensity = npc.posting_propensity if npc is not None else None
    if rule is not None and post["channel"] in ("feed", "chat") and propensity is not None:
        reason += (
            f"; on {post['channel']} only with chance {propensity:g} (their posting "
            "propensity, a stable draw from the event's content), and the draw said yes"
        )
    calls = await run_in_thread(views.llm_calls_for_request, client, db, post["request_id"])
    if not calls:
        notes.append(
            "no LLM call is stored for this post's request"
            + (" (written from the template)" if post["source"] == "template" else "")
        )
    return PostWhyPublic(
        post=PostPublic.model_validate(post),
        event=EventPublic.model_validate(event) if event else None,
        refers_to=refers_to,
        rescored_by=[EventPublic.model_validate(e) for e in rescored],
        world=world,
        rule=rule,
        author=AuthorWhyPublic(
            npc_id=post["author"],
            handle=npc.handle if npc else None,
            display_name=npc.display_name if npc else None,
            reason=reason,
            posting_propensity=propensity,
        ),
        attempts=[RenderAttemptPublic.model_validate(c) for c in calls],
        notes=notes,
    )
