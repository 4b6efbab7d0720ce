"""Deliberate: the stream processor that answers decision requests with the LLM.

The work is :func:`llm.decide.answer_request` (the prompt the shard rendered, the
answer schema as a constraint, parse/repair/validate, retry with other sampling, a
wall-clock deadline that records a timeout). This agent decodes, calls it, and sends
the decision to the ``decisions`` log and to the shard inbox of every shard with an
NPC it decides for (a cohort may span shards); the shards hold the due tick until it
is there. Garbage on the request topic goes to the DLQ. Completions are cached in a
changelog-backed table, and every LLM call goes to the cost ledger.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from llm.complete import Completer
from llm.decide import answer_request
from llm.gate import LLMGate
from sim.world import shard_of
from streams.app import Streams
from streams.changelog import ChangelogTable
from topics import DECISION_REQUESTS, DECISIONS, LLM_CALLS, SHARD_INBOX
from topics.models import LLMCalled

log = logging.getLogger(__name__)


def _completer(streams: Streams) -> tuple[Completer, ChangelogTable | None]:
    from llm.client import TritonLLM  # only a worker with this role needs the gRPC stack

    settings = streams.settings

    async def ledger(call: LLMCalled) -> None:
        await streams.send(LLM_CALLS, call.request_id, call)

    client = TritonLLM(
        settings.triton_grpc_url,
        settings.triton_model,
        settings.llm_concurrency,
        settings.llm_timeout_s,
        settings.llm_retries,
    )
    # decision completions by cache key, partitioned like the requests (their agent awaits it)
    cache = (
        streams.changelog_table("decide-cache", DECISION_REQUESTS) if settings.llm_cache else None
    )
    completer = Completer(
        client,
        cache=cache,
        gate=LLMGate(settings.llm_concurrency, settings.llm_tokens_per_s),
        ledger=ledger,
        outage_s=settings.decide_timeout_s,  # an outage longer than the deadline: a timeout
        budget_wait_s=settings.decide_timeout_s,
    )
    return completer, cache


def register(streams: Streams) -> None:
    """Register the deliberate agent."""
    completer, cache = _completer(streams)
    counts: Counter[str] = Counter()

    @streams.app.agent(
        streams.topic(DECISION_REQUESTS),
        name="deliberate",
        concurrency=streams.settings.llm_concurrency,
    )
    async def deliberate(stream: Any) -> None:
        """Answer each decision request; send the decision to the log and its shards."""
        async for event in streams.events(stream):  # acked once its decision is sent
            if cache is not None:  # restored after a rebalance
                await cache.ready(event.message.partition)
            req = await streams.decode_or_dead_letter("deliberate", DECISION_REQUESTS, event)
            if req is None:
                continue
            made = await answer_request(completer, req, streams.settings.decide_timeout_s)
            counts[made.status] += 1
            await streams.send(DECISIONS, made.request_id, made)
            for shard in sorted({shard_of(n, req.n_shards) for n in req.npcs}):
                copy = made.model_copy(update={"shard": shard})
                await streams.send(SHARD_INBOX, str(shard), copy, shard)
            if sum(counts.values()) % 50 == 0:
                log.info("deliberate: decisions by status %s", dict(counts))
