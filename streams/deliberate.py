"""Deliberate: the stream processor that answers decision requests with the LLM.

The work is :func:`llm.decide.answer_request` (the prompt the shard rendered, the
answer schema as a constraint, parse/repair/validate, retry with other sampling, a
wall-clock deadline that records a timeout). This agent decodes, calls it, moderates the
model's reason (:func:`posts.moderation.moderate_decision`: a blocked one is withheld
before anything publishes it) and sends the decision to the ``decisions`` log and to the
shard inbox of every shard with an NPC it decides for (a cohort may span shards); the
shards hold the due tick until it is there. Garbage on the request topic goes to the
DLQ. Completions are cached in a changelog-backed table, and every LLM call goes to the
cost ledger.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from typing import Any

from llm.chat import template_named
from llm.complete import Completer
from llm.decide import answer_request
from posts.moderation import Moderator, moderate_decision
from sim.world import shard_of
from streams.app import Streams
from streams.changelog import ChangelogTable
from streams.inflight import in_flight_on
from streams.render import triton_completer
from topics import DECISION_REQUESTS, DECISIONS, SHARD_INBOX
from topics.models import DecisionMade, DecisionRequested
from worldfeed import metrics

log = logging.getLogger(__name__)


def _completer(streams: Streams) -> tuple[Completer, ChangelogTable | None]:
    settings = streams.settings
    # decision completions by cache key, partitioned like the requests (their agent awaits it)
    cache = None
    if settings.llm_cache:
        cache = streams.changelog_table("decide-cache", DECISION_REQUESTS)
    # an outage longer than the deadline: a timeout
    completer = triton_completer(
        streams, "deliberate", cache, settings.decide_timeout_s, settings.decide_timeout_s
    )
    return completer, cache


def register(streams: Streams) -> None:
    """Register the deliberate agent."""
    completer, cache = _completer(streams)
    settings = streams.settings
    chat = template_named(settings.llm_chat_template)
    moderator = Moderator()
    moderator.warm()
    counts: Counter[str] = Counter()
    inflight = in_flight_on(streams, DECISION_REQUESTS, "deliberate")

    async def decide(req: DecisionRequested) -> None:
        made = await answer_request(completer, req, settings.decide_timeout_s, chat=chat)
        # sending is not cancelled half-way (a moved partition cancels only the LLM call)
        await asyncio.shield(publish(req, moderate_decision(moderator, made)))

    async def publish(req: DecisionRequested, made: DecisionMade) -> None:
        counts[made.status] += 1
        await streams.send(DECISIONS, made.request_id, made)
        for shard in sorted({shard_of(n, req.n_shards) for n in req.npcs}):
            copy = made.model_copy(update={"shard": shard})
            await streams.send(SHARD_INBOX, str(shard), copy, shard)
        if sum(counts.values()) % 50 == 0:
            log.info("deliberate: decisions by status %s", dict(counts))

    @streams.app.agent(
        streams.topic(DECISION_REQUESTS),
        name="deliberate",
        concurrency=streams.settings.llm_concurrency,
    )
    async def deliberate(stream: Any) -> None:
        """Answer each decision request; send the decision to the log and its shards."""
        handled = metrics.STAGE_MESSAGES.labels("deliberate")
        async for event in streams.events(stream):  # acked once its decision is sent
            handled.inc()
            if cache is not None:  # restored after a rebalance
                await cache.ready(event.message.partition)
            req = await streams.decode_or_dead_letter("deliberate", DECISION_REQUESTS, event)
            if req is None:
                continue
            # a copy re-delivered after a rebalance joins the answer already in flight
            partition = event.message.partition
            await inflight.run(req.request_id, partition, functools.partial(decide, req))
