"""The one way to ask the LLM: cache, budget, call, parse/repair, validate, retry, ledger.

Per ask: for each sampling in :data:`llm.cache.ATTEMPTS` -> completion cache, or the
budget gate (priority = the ask's) and the model -> the caller's parser (repair) ->
the caller's JSON Schema and extra checks -> next sampling if invalid. Every call and
cache hit is recorded in the cost ledger as an :class:`LLMCalled`. The loop knows
nothing about what it asks for; the caller falls back when no answer is valid.

Outage: the client retries transport errors with backoff; when it still gives up
(:class:`LLMUnavailable`), the ask waits with backoff and asks again, up to
``outage_s``; only then does it give up. A stream processor's offset stays uncommitted
while it waits, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llm.base import LLM, LLMError, LLMFailure, LLMUnavailable
from llm.cache import ATTEMPTS, LLMPrompt, cache_key, prompt_hash, sampling_for
from llm.gate import LLMGate
from llm.parse import Parsed, parse_json, schema_errors
from topics.models import LLMCalled
from worldfeed.ids import derive_id

OUTAGE_BACKOFF_CAP_S = 10.0

Ledger = Callable[[LLMCalled], Awaitable[None]]


@dataclass
class CallCounts:
    """Counters of LLM use: calls, errors, tokens, cache hits and misses, outage waits.

    ``observe``, when set, is told every count and timing as well (``name, value``): a
    worker passes :func:`worldfeed.metrics.llm_observer` to export them.
    """

    counts: Counter[str] = field(default_factory=Counter)
    observe: Callable[[str, float], None] | None = None

    def add(self, name: str, n: int = 1) -> None:
        """Count one occurrence of ``name``."""
        self.counts[name] += n
        if self.observe is not None:
            self.observe(name, n)

    def timed(self, name: str, seconds: float) -> None:
        """Report one timing (only to ``observe``: the counters keep no timings)."""
        if self.observe is not None:
            self.observe(name, seconds)


def _no_problems(_fields: dict[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class Expect:
    """What a valid answer is: parsed (and repaired) from the text, then valid against a
    JSON Schema, then free of the caller's extra problems (empty list = none).

    ``revise`` gives the prompt of a retry from the attempt number (2, 3, ...) and the
    previous answer's problems (the caller puts the reasons into the prompt, or
    constrains the answer more); None = every attempt asks the same prompt.
    """

    schema: dict[str, Any]
    parse: Callable[[str], Parsed] = parse_json
    check: Callable[[dict[str, Any]], list[str]] = _no_problems
    revise: Callable[[int, list[str]], LLMPrompt] | None = None

    def judge(self, text: str) -> tuple[Parsed, list[str]]:
        """The parsed answer and what is wrong with it (schema errors first)."""
        parsed = self.parse(text)
        return parsed, schema_errors(parsed.fields, self.schema) or self.check(parsed.fields)


@dataclass(frozen=True)
class Ask:
    """Who asks: the id the ledger records calls under, its run, its priority at the gate."""

    request_id: str
    run_id: str
    priority: float


@dataclass
class Answer:
    """The outcome of one ask: valid ``fields``, or None and the ``failure``."""

    fields: dict[str, Any] | None
    attempts: int
    repaired: bool
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    model: str | None = None
    failure: str | None = None
    cache_hits: int = 0


@dataclass
class Completer:
    """Asks an LLM for an answer that passes the caller's checks, with cache, budget and ledger.

    Each attempt uses the next sampling of :data:`~llm.cache.ATTEMPTS` (seeded by the
    prompt, so answers are cacheable); an invalid answer or a model error moves on to
    the next; an unavailable model is waited for up to ``outage_s`` before the ask gives
    up. :class:`~llm.gate.OverBudget` from the gate propagates: the caller must count
    and dead-letter it.

    Args:
        llm: The client (``model`` and ``async generate(prompt, sampling)``).
        cache: Mapping of :func:`~llm.cache.cache_key` -> JSON completion (a changelog
            table in a worker); None = no cache.
        gate: The LLM budget; None = unlimited.
        ledger: Receives an :class:`LLMCalled` for every call and cache hit.
        stats: Counters; the loop adds ``cache_hits``, ``cache_misses``, ``llm_calls``,
            ``llm_errors``, ``tokens_in``, ``tokens_out`` and ``outage_waits``.
        outage_s: How long an ask waits for an unavailable model before giving up.
        budget_wait_s: How long an ask waits for the budget before OverBudget.
        sleep: The wait between outage retries (tests pass a no-op).
    """

    llm: LLM
    cache: MutableMapping[bytes, bytes] | None = None
    gate: LLMGate | None = None
    ledger: Ledger | None = None
    stats: CallCounts = field(default_factory=CallCounts)
    outage_s: float = 300.0
    budget_wait_s: float = 600.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def complete(self, ask: Ask, prompt: LLMPrompt, expect: Expect) -> Answer:
        """Ask (retrying invalid answers with other sampling) until one passes ``expect``."""
        failure = None
        tokens_in = tokens_out = hits = 0
        latency = 0.0
        n = 0  # calls made for this ask, across attempts: numbers the ledger records
        problems: list[str] = []
        for attempt in range(1, len(ATTEMPTS) + 1):
            if attempt > 1 and expect.revise is not None and problems:
                prompt = expect.revise(attempt, problems)
            phash = prompt_hash(prompt)
            outage_started: float | None = None
            gave_up = False
            done: dict[str, Any] | None = None
            while True:
                n += 1
                try:
                    done, cached = await self._call(ask, prompt, attempt, n)
                    break
                except LLMUnavailable as exc:
                    now = time.monotonic()
                    outage_started = outage_started or now
                    waited = now - outage_started
                    if waited >= self.outage_s:
                        failure = f"llm unavailable for {waited:.0f}s: {exc}"
                        gave_up = True
                        break
                    self.stats.add("outage_waits")
                    await self.sleep(min(OUTAGE_BACKOFF_CAP_S, 0.5 * 2 ** min(n, 8)))
                except LLMError as exc:
                    failure = f"llm error: {exc}"
                    break
            if gave_up:
                break  # waited long enough: no point trying other sampling
            if done is None:
                continue
            hits += cached
            if not cached:
                tokens_in += int(done["tokens_in"])
                tokens_out += int(done["tokens_out"])
                latency += float(done["latency_ms"])
            # the answer includes its given beginning (the prompt's prefill, if any)
            parsed, problems = expect.judge(str(getattr(prompt, "prefill", "")) + done["text"])
            if not cached:
                outcome = "invalid" if problems else ("repaired" if parsed.repaired else "valid")
                await self._record(
                    ask, attempt, n, prompt_hash=phash, model=done.get("model"),
                    tokens_in=int(done["tokens_in"]), tokens_out=int(done["tokens_out"]),
                    latency_ms=round(float(done["latency_ms"]), 3), outcome=outcome,
                    error="; ".join(problems)[:500] or None,
                )  # fmt: skip
            if not problems:
                return Answer(
                    parsed.fields, attempt, parsed.repaired, tokens_in, tokens_out, latency,
                    done.get("model"), None, hits,
                )  # fmt: skip
            failure = f"invalid: {'; '.join(problems)[:500]} (output {done['text'][:200]!r})"
        return Answer(
            None, len(ATTEMPTS), False, tokens_in, tokens_out, latency, None, failure, hits
        )

    async def _record(self, ask: Ask, attempt: int, n: int, **kw: Any) -> None:
        if self.ledger is None:
            return
        await self.ledger(
            LLMCalled(
                call_id=derive_id("llm", ask.request_id, attempt, n),
                run_id=ask.run_id,
                request_id=ask.request_id,
                attempt=attempt,
                at_ms=int(time.time() * 1000),
                **kw,
            )
        )

    async def _call(
        self, ask: Ask, prompt: LLMPrompt, attempt: int, n: int
    ) -> tuple[dict[str, Any], bool]:
        """One completion (cache first); returns it and whether it came from the cache."""
        sampling = sampling_for(prompt, attempt)
        model = str(self.llm.model)
        key = cache_key(model, prompt, sampling)
        phash = prompt_hash(prompt)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.add("cache_hits")
                done: dict[str, Any] = orjson.loads(hit)
                await self._record(
                    ask, attempt, n, prompt_hash=phash, model=done.get("model"),
                    cache_hit=True, outcome="cached",
                )  # fmt: skip
                return done, True
            self.stats.add("cache_misses")
        estimate = len(prompt.text) // 4 + prompt.max_tokens
        if self.gate is not None:
            await self.gate.acquire(ask.priority, estimate, self.budget_wait_s)
        actual = estimate
        try:
            self.stats.add("llm_calls")
            c = await self.llm.generate(prompt.text, sampling)
            actual = c.tokens_in + c.tokens_out
        except LLMFailure as exc:
            self.stats.add("llm_errors")
            await self._record(
                ask, attempt, n, prompt_hash=phash, model=model,
                outcome="unavailable" if isinstance(exc, LLMUnavailable) else "error",
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
        self.stats.timed("latency_s", c.latency_ms / 1000)
        self.stats.add("tokens_in", c.tokens_in)
        self.stats.add("tokens_out", c.tokens_out)
        if self.cache is not None:
            self.cache[key] = orjson.dumps(done)
        return done, False
