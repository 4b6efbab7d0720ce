"""Render: writes posts for render requests with the LLM served by Triton.

Per request: rate limits (per author, channel and simulated day, from the catalog) ->
prompt from the catalog template -> LLM budget gate (concurrency and tokens/s, highest
impact first) -> cache or Triton -> parse/repair -> channel JSON Schema and quality
checks -> retry with cooler sampling -> deterministic template fallback
(``source=template``, plus a dead letter saying why) -> moderation -> ``PostPublished``.
Every LLM call and cache hit is recorded on ``LLM_CALLS``.

Cache key and seeds: the sampling seed is derived from the prompt's hash and the
attempt number, not from the request id. Identical prompts then get identical sampling
parameters, so "same prompt + same sampling -> same answer" holds for the cache and
for the model alike, and a redelivered or repeated request (a replayed or branched run)
is answered from the cache. The cache key is sha256(model, prompt, sampling JSON).

Triton outage: the client retries transport errors with backoff; when it still gives
up (``LLMUnavailable``), the request waits with backoff and asks again, up to
``settings.llm_outage_s``; only then does it fall back to the template (and the DLQ).
The request's offset is not committed while it waits, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from posts.moderation import Moderator
from posts.output import headline_from, parse_output, quality_problems, schema_errors
from posts.prompt import Prompt, build_prompt
from sim.world import WorldIndex, load_world
from streams.app import Streams
from topics import LLM_CALLS, POSTS, RENDER_REQUESTS
from topics.models import LLMCalled, PostPublished, RenderRequested
from worldfeed.ids import derive_id, stable_hash64

log = logging.getLogger(__name__)

ATTEMPTS = (  # sampling for the first try and each retry: cooler as we go
    {"temperature": 0.3, "top_p": 0.9, "repetition_penalty": 1.15},
    {"temperature": 0.6, "top_p": 0.95, "repetition_penalty": 1.2},
    {"temperature": 0.1, "top_p": 0.8, "repetition_penalty": 1.25},
)
OUTAGE_BACKOFF_CAP_S = 10.0

Ledger = Callable[[LLMCalled], Awaitable[None]]


class OverBudget(Exception):
    """The LLM budget did not admit a request within its wait limit."""


@dataclass
class RenderStats:
    """Counters of the render stage (how posts were obtained, calls, cache, drops)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, n: int = 1) -> None:
        """Count one occurrence of ``name``."""
        self.counts[name] += n

    def summary(self) -> dict[str, Any]:
        """Counts plus the shares of posts valid first time / repaired / retried / fell back."""
        posts = self.counts["posts"]
        lookups = self.counts["cache_hits"] + self.counts["cache_misses"]
        out: dict[str, Any] = dict(sorted(self.counts.items()))
        for name in ("valid_first", "repaired", "retried", "fell_back"):
            out[f"share_{name}"] = round(self.counts[name] / posts, 4) if posts else 0.0
        out["cache_hit_rate"] = round(self.counts["cache_hits"] / lookups, 4) if lookups else 0.0
        return out


class LLMGate:
    """A global LLM budget: at most ``concurrency`` calls in flight and ``tokens_per_s``
    (prompt + output tokens, a token bucket with ``burst_s`` seconds of burst); waiting
    requests are admitted highest priority (impact score) first, ties in arrival order.

    ``acquire`` raises :class:`OverBudget` after ``wait_s``; the caller must count and
    dead-letter that request, never drop it silently.
    """

    def __init__(self, concurrency: int, tokens_per_s: float = 0.0, burst_s: float = 2.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self.rate = float(tokens_per_s)
        self.capacity = self.rate * burst_s if self.rate > 0 else 0.0
        self.tokens = self.capacity
        self.in_use = 0
        self.admitted: list[float] = []  # priorities in admission order (tests, metrics)
        self._heap: list[tuple[float, int]] = []
        self._seq = 0
        self._last = time.monotonic()
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def _refill(self) -> None:
        now = time.monotonic()
        if self.rate > 0:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self, priority: float, cost: int, wait_s: float) -> None:
        """Wait for a slot and ``cost`` tokens; raise OverBudget after ``wait_s``."""
        cond = self._condition()
        self._seq += 1
        entry = (-priority, self._seq)
        deadline = time.monotonic() + wait_s
        async with cond:
            heapq.heappush(self._heap, entry)
            try:
                while True:
                    self._refill()
                    need = min(float(cost), self.capacity)
                    first = self._heap[0] == entry
                    has_slot = self.in_use < self.concurrency
                    if first and has_slot and (self.rate <= 0 or self.tokens >= need):
                        heapq.heappop(self._heap)
                        self.in_use += 1
                        self.tokens -= cost if self.rate > 0 else 0
                        self.admitted.append(priority)
                        cond.notify_all()
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise OverBudget(
                            f"LLM budget: not admitted within {wait_s:g}s "
                            f"({self.in_use}/{self.concurrency} in flight, "
                            f"{len(self._heap)} waiting, {self.tokens:.0f} tokens left)"
                        )
                    if first and has_slot and self.rate > 0:
                        left = min(left, (need - self.tokens) / self.rate + 0.001)
                    try:
                        await asyncio.wait_for(cond.wait(), left)
                    except TimeoutError:
                        pass
            except BaseException:
                if entry in self._heap:
                    self._heap.remove(entry)
                    heapq.heapify(self._heap)
                    cond.notify_all()
                raise

    async def release(self, cost_correction: int = 0) -> None:
        """Free a slot; ``cost_correction`` = actual tokens minus the estimate acquired."""
        cond = self._condition()
        async with cond:
            self.in_use -= 1
            if self.rate > 0:
                self.tokens -= cost_correction
            cond.notify_all()


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
    cache_hits: int = 0


def template_fallback(index: WorldIndex, req: RenderRequested) -> dict[str, str]:
    """A deterministic post written without the LLM."""
    author = index.npc(req.author)
    ev = req.event
    if req.channel == "news":
        return {
            "title": headline_from(ev.summary),
            "body": f"{ev.summary}. Reported by {author.display_name}.",
        }
    if req.channel == "chat":
        return {"body": f"did you hear? {ev.summary}"[:500]}
    return {"body": f"{ev.summary}."[:500]}


def prompt_hash(prompt: Prompt) -> str:
    """sha256 of the prompt text (16 hex digits), as recorded in the cost ledger."""
    return hashlib.sha256(prompt.text.encode("utf-8")).hexdigest()[:16]


def sampling_for(prompt: Prompt, attempt: int) -> dict[str, Any]:
    """Sampling of an attempt; the seed depends on the prompt and attempt only (cacheable)."""
    return dict(
        ATTEMPTS[attempt - 1],
        max_tokens=prompt.max_tokens,
        seed=stable_hash64(prompt_hash(prompt), attempt) % (2**31),
    )


def cache_key(model: str, prompt: Prompt, sampling: dict[str, Any]) -> bytes:
    """Key of the completion cache: the model, the prompt and every sampling parameter."""
    blob = json.dumps([model, prompt.text, sampling], sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest().encode()


@dataclass
class Renderer:
    """Renders one request at a time against an LLM client, with cache, budget and ledger.

    Args:
        llm: Object with ``async generate(prompt, sampling) -> Completion`` and ``model``.
        cache: Mapping of :func:`cache_key` -> JSON completion (a faust table in the worker).
        gate: The LLM budget; None = unlimited.
        ledger: Receives an :class:`LLMCalled` for every call and cache hit.
        outage_s: How long a request waits for an unavailable Triton before falling back.
        budget_wait_s: How long a request waits for the budget before it is dropped.
    """

    llm: Any
    cache: MutableMapping[bytes, bytes] | None = None
    gate: LLMGate | None = None
    ledger: Ledger | None = None
    stats: RenderStats = field(default_factory=RenderStats)
    outage_s: float = 300.0
    budget_wait_s: float = 600.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def _record(self, req: RenderRequested, attempt: int, n: int, **kw: Any) -> None:
        if self.ledger is None:
            return
        await self.ledger(
            LLMCalled(
                call_id=derive_id("llm", req.request_id, attempt, n),
                run_id=req.run_id,
                request_id=req.request_id,
                attempt=attempt,
                at_ms=int(time.time() * 1000),
                **kw,
            )
        )

    async def _complete(
        self, req: RenderRequested, prompt: Prompt, attempt: int, n: int
    ) -> tuple[dict[str, Any], bool]:
        """One completion (cache first); returns it and whether it came from the cache."""
        from streams.llm import LLMFailure

        sampling = sampling_for(prompt, attempt)
        model = str(getattr(self.llm, "model", "llm"))
        key = cache_key(model, prompt, sampling)
        phash = prompt_hash(prompt)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.add("cache_hits")
                done = orjson.loads(hit)
                await self._record(
                    req, attempt, n, prompt_hash=phash, model=done.get("model"),
                    cache_hit=True, outcome="cached",
                )  # fmt: skip
                return done, True
            self.stats.add("cache_misses")
        estimate = len(prompt.text) // 4 + prompt.max_tokens
        if self.gate is not None:
            await self.gate.acquire(req.score, estimate, self.budget_wait_s)
        actual = estimate
        try:
            self.stats.add("llm_calls")
            c = await self.llm.generate(prompt.text, sampling)
            actual = c.tokens_in + c.tokens_out
        except LLMFailure as exc:
            self.stats.add("llm_errors")
            await self._record(
                req, attempt, n, prompt_hash=phash, model=model,
                outcome="unavailable" if type(exc).__name__ == "LLMUnavailable" else "error",
                error=str(exc)[:500],
            )  # fmt: skip
            raise
        finally:
            if self.gate is not None:
                await self.gate.release(actual - estimate)
        done = {
            "text": c.text,
            "tokens_in": c.tokens_in,
            "tokens_out": c.tokens_out,
            "latency_ms": c.latency_ms,
            "model": c.model,
        }
        self.stats.add("tokens_in", c.tokens_in)
        self.stats.add("tokens_out", c.tokens_out)
        if self.cache is not None:
            self.cache[key] = orjson.dumps(done)
        return done, False

    async def render(self, index: WorldIndex, req: RenderRequested, prompt: Prompt) -> Rendered:
        """Ask the LLM (retrying invalid output with other sampling) or fall back."""
        from streams.llm import LLMError, LLMUnavailable

        schema = index.catalog.channels[req.channel].post_schema
        title = headline_from(req.event.summary) if req.channel == "news" else None
        failure = None
        tokens_in = tokens_out = hits = 0
        latency = 0.0
        phash = prompt_hash(prompt)
        n = 0
        for attempt in range(1, len(ATTEMPTS) + 1):
            outage_started: float | None = None
            while True:
                n += 1
                try:
                    done, cached = await self._complete(req, prompt, attempt, n)
                    break
                except LLMUnavailable as exc:
                    now = time.monotonic()
                    outage_started = outage_started or now
                    waited = now - outage_started
                    if waited >= self.outage_s:
                        failure = f"llm unavailable for {waited:.0f}s: {exc}"
                        done = None
                        break
                    self.stats.add("outage_waits")
                    await self.sleep(min(OUTAGE_BACKOFF_CAP_S, 0.5 * 2 ** min(n, 8)))
                except LLMError as exc:
                    failure = f"llm error: {exc}"
                    done = None
                    break
            if done is None:
                if failure and failure.startswith("llm unavailable"):
                    break  # waited long enough: no point trying other sampling
                continue
            hits += cached
            if not cached:
                tokens_in += int(done["tokens_in"])
                tokens_out += int(done["tokens_out"])
                latency += float(done["latency_ms"])
            parsed = parse_output(req.channel, done["text"], schema, prompt.text, title)
            problems = schema_errors(parsed.fields, schema) or quality_problems(
                parsed.fields, prompt.text
            )
            if not cached:
                outcome = "invalid" if problems else ("repaired" if parsed.repaired else "valid")
                await self._record(
                    req, attempt, n, prompt_hash=phash, model=done.get("model"),
                    tokens_in=int(done["tokens_in"]), tokens_out=int(done["tokens_out"]),
                    latency_ms=round(float(done["latency_ms"]), 3), outcome=outcome,
                    error="; ".join(problems)[:500] or None,
                )  # fmt: skip
            if not problems:
                self._count(attempt, parsed.repaired)
                return Rendered(
                    parsed.fields, "llm", attempt, parsed.repaired, tokens_in, tokens_out,
                    latency, done.get("model"), None, hits,
                )  # fmt: skip
            failure = f"invalid: {'; '.join(problems)[:500]} (output {done['text'][:200]!r})"
        self._count(0, False)
        return Rendered(
            template_fallback(index, req), "template", len(ATTEMPTS), False, tokens_in,
            tokens_out, latency, None, failure, hits,
        )  # fmt: skip

    def _count(self, attempt: int, repaired: bool) -> None:
        self.stats.add("posts")
        if attempt == 0:
            self.stats.add("fell_back")
        elif attempt > 1:
            self.stats.add("retried")
        elif repaired:
            self.stats.add("repaired")
        else:
            self.stats.add("valid_first")


async def render_one(llm: Any, index: WorldIndex, req: RenderRequested, prompt: Prompt) -> Rendered:
    """Render one request without cache, budget or ledger (tools and tests)."""
    return await Renderer(llm).render(index, req, prompt)


def day_of(req: RenderRequested) -> int:
    """1-based simulated day of the request's event."""
    return req.event.sim_minute // 1440 + 1


def quota_key(req: RenderRequested, author: str) -> bytes:
    """Key of an author's post count on a channel on one simulated day of a run."""
    return f"{req.run_id}/{author}/{req.channel}/{day_of(req)}".encode()


def apply_rate_limit(
    index: WorldIndex, req: RenderRequested, quota: MutableMapping[bytes, bytes]
) -> tuple[RenderRequested | None, str | None]:
    """Charge the request to its author's daily quota for the channel.

    Returns the request to render (news may go to another journalist with room left,
    chosen deterministically), or ``(None, reason)`` when it is over the limit. The
    quota stores request ids, so a redelivered request is never charged twice.
    """
    limit = index.catalog.channels[req.channel].rate_limit_per_day
    candidates = [req.author]
    if req.channel == "news":
        others = sorted(
            (j for j in index.journalists if j != req.author),
            key=lambda j: stable_hash64(req.request_id, j),
        )
        candidates += others
    for author in candidates:
        key = quota_key(req, author)
        taken: list[str] = orjson.loads(quota.get(key) or b"[]")
        if req.request_id in taken:
            return req.model_copy(update={"author": author}), None
        if len(taken) < limit:
            quota[key] = orjson.dumps([*taken, req.request_id])
            return req.model_copy(update={"author": author}) if author != req.author else req, None
    return None, (
        f"rate limited: {req.author} already has {limit} {req.channel} posts on day "
        f"{day_of(req)} (catalog limit {limit}/day)"
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


def _raw_table(streams: Streams, name: str, help_: str) -> Any:
    """A changelog-backed table of raw bytes, partitioned like the render requests.

    Render requests are keyed by author, and a prompt includes its author, so identical
    prompts and one author's quota live on one partition: a plain, co-partitioned table
    suffices. (A GlobalTable was tried first: after a worker restart its recovery never
    let the render agent start again.)
    """
    return streams.app.Table(
        name,
        partitions=streams.settings.world_partitions,
        help=help_,
        # bytes make the table's serializers raw: changelog recovery decodes with those
        key_type=bytes,
        value_type=bytes,
    )


def register(streams: Streams) -> None:
    """Register the render agent (its concurrency feeds the LLM budget's priority queue)."""
    settings = streams.settings
    moderator = Moderator()
    streams.services["moderator"] = moderator
    cache = (
        _raw_table(streams, "llm-cache", "LLM completions by cache key")
        if (settings.llm_cache)
        else None
    )
    quota = _raw_table(streams, "render-quota", "Request ids per author/channel/day")
    stats = RenderStats()
    streams.services["render_stats"] = stats
    gate = LLMGate(settings.llm_concurrency, settings.llm_tokens_per_s)
    streams.services["llm_gate"] = gate

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

    async def ledger(call: LLMCalled) -> None:
        await streams.send(LLM_CALLS, call.request_id, call)

    @streams.app.agent(
        streams.topic(RENDER_REQUESTS), name="render_posts", concurrency=settings.render_concurrency
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
            limited, reason = apply_rate_limit(index, req, quota)
            if limited is None:
                stats.add("rate_limited")
                await streams.dead_letter("render", event, reason or "rate limited")
                continue
            req = limited
            prompt = build_prompt(index, req, template)
            renderer = Renderer(
                llm(), cache, gate, ledger, stats, settings.llm_outage_s, settings.llm_budget_wait_s
            )
            try:
                out = await renderer.render(index, req, prompt)
            except OverBudget as exc:
                stats.add("over_budget")
                await streams.dead_letter("render", event, f"dropped: {exc}")
                continue
            if out.failure:
                await streams.dead_letter("render", event, f"fell back to template: {out.failure}")
            verdict = moderator.review(" ".join(out.fields.values()))
            stats.add(f"moderation_{verdict[0]}")
            # the cache entry and quota of this post are in the changelogs before the post is
            # out: a worker killed right after publishing must not forget what it cached
            await streams.flush()
            await streams.send(POSTS, derive_id("post", req.request_id), to_post(req, out, verdict))
            if stats.counts["posts"] % 50 == 0:
                log.info("render stats: %s", stats.summary())
