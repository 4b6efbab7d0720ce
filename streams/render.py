"""Render: writes posts for render requests with the LLM served by Triton.

Prompt from the catalog template -> Triton -> parse/repair -> channel JSON Schema ->
retry with adjusted sampling -> deterministic template fallback (``source=template``,
plus a dead letter saying why) -> moderation -> ``PostPublished``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from posts.moderation import Moderator
from posts.output import parse_output, schema_errors
from posts.prompt import Prompt, build_prompt
from sim.world import WorldIndex, load_world
from streams.app import Streams
from topics import POSTS, RENDER_REQUESTS
from topics.models import PostPublished, RenderRequested
from worldfeed.ids import derive_id, stable_hash64

log = logging.getLogger(__name__)

ATTEMPTS = (  # sampling for the first try and each retry: cooler and shorter as we go
    {"temperature": 0.8, "top_p": 0.95},
    {"temperature": 0.5, "top_p": 0.9},
    {"temperature": 0.2, "top_p": 0.8},
)


@dataclass
class Rendered:
    """The outcome of rendering one request."""

    fields: dict[str, str]
    source: str
    attempts: int
    repaired: bool
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    model: str | None = None
    failure: str | None = None


def template_fallback(index: WorldIndex, req: RenderRequested) -> dict[str, str]:
    """A deterministic post written without the LLM."""
    author = index.npc(req.author)
    ev = req.event
    if req.channel == "news":
        return {
            "title": ev.summary[:120],
            "body": f"{ev.summary}. Reported by {author.display_name}.",
        }
    if req.channel == "chat":
        return {"body": f"did you hear? {ev.summary}"[:500]}
    return {"body": f"{ev.summary}."[:500]}


async def render_one(llm: Any, index: WorldIndex, req: RenderRequested, prompt: Prompt) -> Rendered:
    """Ask the LLM (with retries on invalid output) and fall back to the template."""
    from streams.llm import LLMFailure

    schema = index.catalog.channels[req.channel].post_schema
    failure = None
    tokens_in = tokens_out = 0
    latency = 0.0
    for attempt, sampling in enumerate(ATTEMPTS, start=1):
        params = dict(
            sampling,
            max_tokens=prompt.max_tokens,
            seed=stable_hash64(req.request_id, attempt) % (2**31),
        )
        try:
            done = await llm.generate(prompt.text, params)
        except LLMFailure as exc:
            failure = f"llm: {exc}"
            break  # the client already retried transport errors with backoff
        tokens_in, tokens_out = tokens_in + done.tokens_in, tokens_out + done.tokens_out
        latency += done.latency_ms
        parsed = parse_output(req.channel, done.text, schema)
        errors = schema_errors(parsed.fields, schema)
        if not errors:
            return Rendered(
                parsed.fields,
                "llm",
                attempt,
                parsed.repaired,
                tokens_in,
                tokens_out,
                latency,
                done.model,
            )
        failure = f"schema: {'; '.join(errors)[:500]} (output {done.text[:200]!r})"
    return Rendered(
        template_fallback(index, req),
        "template",
        len(ATTEMPTS),
        False,
        tokens_in,
        tokens_out,
        latency,
        None,
        failure,
    )


def to_post(req: RenderRequested, out: Rendered, verdict: tuple[str, str | None]) -> PostPublished:
    """The post for a rendered request."""
    return PostPublished(
        post_id=derive_id("post", req.request_id),
        request_id=req.request_id,
        run_id=req.run_id,
        event_id=req.event.event_id,
        channel=req.channel,
        author=req.author,
        tick=req.event.tick,
        sim_minute=req.event.sim_minute,
        title=out.fields.get("title"),
        body=out.fields["body"],
        source=out.source,  # type: ignore[arg-type]
        moderation=verdict[0],  # type: ignore[arg-type]
        moderation_reason=verdict[1],
        score=req.score,
        model=out.model,
        tokens_in=out.tokens_in,
        tokens_out=out.tokens_out,
        latency_ms=round(out.latency_ms, 3),
    )


def register(streams: Streams) -> None:
    """Register the render agent (concurrent up to the LLM concurrency)."""
    settings = streams.settings
    moderator = Moderator()

    def llm() -> Any:
        client = streams.services.get("llm")
        if client is None:
            from streams.llm import TritonLLM

            client = streams.services["llm"] = TritonLLM(
                settings.triton_grpc_url,
                settings.triton_model,
                settings.llm_concurrency,
                settings.llm_timeout_s,
                settings.llm_retries,
            )
        return client

    @streams.app.agent(
        streams.topic(RENDER_REQUESTS), name="render_posts", concurrency=settings.llm_concurrency
    )
    async def render_posts(stream: Any) -> None:
        """Write a post for each render request and publish it."""
        async for event in stream.events():
            req = await streams.decode_or_dead_letter("render", RENDER_REQUESTS, event)
            if req is None:
                continue
            try:
                index = load_world(req.event.world)
                template = index.catalog.templates[req.template]
                if req.author not in index.catalog.npcs:
                    raise KeyError(f"unknown author {req.author!r}")
            except Exception as exc:  # noqa: BLE001 - a request naming unknown things is bad input
                await streams.dead_letter("render", event, f"{type(exc).__name__}: {exc}")
                continue
            prompt = build_prompt(index, req, template)
            out = await render_one(llm(), index, req, prompt)
            if out.failure:
                await streams.dead_letter("render", event, f"fell back to template: {out.failure}")
            verdict = moderator.review(" ".join(out.fields.values()))
            await streams.send(POSTS, derive_id("post", req.request_id), to_post(req, out, verdict))
