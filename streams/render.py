"""Render: the stream processor that turns render requests into posts.

The work is :class:`posts.service.PostRenderer` (quota, prompt, the LLM loop of
:mod:`llm.complete`, template fallback, moderation); this agent decodes, calls it,
dead-letters what it says to, and publishes the post. Completions are cached and
quotas kept in changelog-backed tables, and every LLM call and cache hit goes to
``LLM_CALLS``. While Triton is down a request waits inside the service, so its offset
is not committed and nothing is lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from llm.chat import template_named
from llm.complete import CallCounts, Completer
from llm.gate import LLMGate
from llm.pool import connect
from posts.quota import restore_quota
from posts.service import Outcome, PostRenderer, stats_summary
from streams.app import Streams
from streams.changelog import ChangelogTable
from streams.inflight import in_flight_on
from topics import LLM_CALLS, POSTS, RENDER_REQUESTS
from topics.models import LLMCalled, QuotaRestored, RenderRequested
from worldfeed import metrics

log = logging.getLogger(__name__)

STATS_EVERY_POSTS = 50
SLOW_RENDER_S = 180.0


def _raw_table(streams: Streams, name: str) -> ChangelogTable:
    """A changelog-backed table of raw bytes, partitioned like the render requests.

    Render requests are keyed by author, and a prompt includes its author, so identical
    prompts and one author's quota live on one partition: a plain, co-partitioned table
    suffices. Not a GlobalTable: after a worker restart its recovery never let the
    render agent start again.
    """
    return streams.changelog_table(name, RENDER_REQUESTS)


def triton_completer(
    streams: Streams,
    stage: str,
    cache: ChangelogTable | None,
    outage_s: float,
    budget_wait_s: float,
) -> Completer:
    """A :class:`~llm.complete.Completer` on the settings' Triton server(s), with the LLM
    budget, the cost ledger (to ``llm-calls``) and the stage's metrics: what every stage
    that asks the LLM uses."""
    settings = streams.settings

    async def ledger(call: LLMCalled) -> None:
        await streams.send(LLM_CALLS, call.request_id, call)

    # one client, or a pool when the setting lists several instances (llm/pool.py)
    urls = settings.triton_grpc_urls
    client = connect(
        urls,
        settings.triton_model,
        settings.llm_concurrency,
        settings.llm_timeout_s,
        settings.llm_retries,
    )
    gate = LLMGate(settings.llm_concurrency * len(urls), settings.llm_tokens_per_s)
    metrics.watch_llm_gate(stage, gate)
    return Completer(
        client,
        cache=cache,
        gate=gate,
        ledger=ledger,
        stats=CallCounts(observe=metrics.llm_observer(stage)),
        outage_s=outage_s,
        budget_wait_s=budget_wait_s,
    )


def _service(streams: Streams) -> tuple[PostRenderer, list[ChangelogTable]]:
    """The render service wired to Triton, the budget, the tables and the cost ledger."""
    settings = streams.settings
    cache = _raw_table(streams, "llm-cache") if settings.llm_cache else None  # by cache key
    completer = triton_completer(
        streams, "render", cache, settings.llm_outage_s, settings.llm_budget_wait_s
    )
    quota = _raw_table(streams, "render-quota")  # request ids per author/channel/day
    tables = [quota] if cache is None else [quota, cache]
    chat = template_named(settings.llm_chat_template)
    return PostRenderer(completer, quota, max_tokens=settings.llm_max_tokens, chat=chat), tables


def register(streams: Streams) -> None:
    """Register the render agent (its concurrency feeds the LLM budget's priority queue)."""
    service, tables = _service(streams)
    service.moderator.warm()

    inflight = in_flight_on(streams, RENDER_REQUESTS, "render")

    async def answer(req: RenderRequested, event: Any) -> None:
        m = event.message  # a render still going after SLOW_RENDER_S says so (where it is)
        slow = asyncio.get_running_loop().call_later(
            SLOW_RENDER_S, log.warning, "render: %s (%s[%d]@%d) in flight for %.0fs",
            req.request_id, m.topic, m.partition, m.offset, SLOW_RENDER_S,
        )  # fmt: skip
        try:
            out = await service.handle(req)
        finally:
            slow.cancel()
        # publishing is not cancelled half-way (a moved partition cancels only the render)
        await asyncio.shield(publish(out, event))

    async def publish(out: Outcome, event: Any) -> None:
        if out.dead_letter is not None:
            await streams.dead_letter("render", event, out.dead_letter)
        if out.post is None:
            return
        # the cache entry and quota of this post are in the changelogs before the post is
        # out: a worker killed right after publishing must not forget what it cached
        await streams.flush()
        await streams.send(POSTS, out.post.post_id, out.post)
        if service.stats.counts["posts"] % STATS_EVERY_POSTS == 0:
            log.info("render stats: %s", stats_summary(service.stats))

    @streams.app.agent(
        streams.topic(RENDER_REQUESTS),
        name="render_posts",
        concurrency=streams.settings.render_concurrency,
    )
    async def render_posts(stream: Any) -> None:
        """Write a post for each render request and publish it."""
        handled = metrics.STAGE_MESSAGES.labels("render")
        async for event in streams.events(stream):  # acked once answered
            handled.inc()
            partition = event.message.partition
            for table in tables:  # restored after a rebalance
                await table.ready(partition)
            req = await streams.decode_or_dead_letter("render", RENDER_REQUESTS, event)
            if req is None:
                continue
            if isinstance(req, QuotaRestored):  # a branch's inherited quota, before its requests
                restore_quota(service.quota, req)
                continue
            # a copy re-delivered after a rebalance joins the render already in flight
            await inflight.run(req.request_id, partition, functools.partial(answer, req, event))
