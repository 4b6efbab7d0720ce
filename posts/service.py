"""The render service: one render request in, what to publish and what to dead-letter out.

Per request: the world and template it names -> the author's daily quota (news may go
to another journalist) -> prompt from the catalog template -> the LLM loop (the
channel's JSON Schema, post quality checks and the grounding validator; a rejected
answer is retried with the validator's reasons in the prompt, the last time with the
answer's first sentence given) -> deterministic template fallback (``source=template``,
plus a dead letter saying why) -> moderation -> ``PostPublished``. Every failed rule is
counted (``grounding_<rule>``), and so is the attempt that passed (``attempt_<n>``).
The LLM is injected (an :class:`llm.complete.Completer`), so the service runs without
Kafka or Triton; the stream processor only moves messages.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

from llm.chat import DEFAULT, ChatTemplate
from llm.complete import Answer, Ask, CallCounts, Completer, Expect
from llm.gate import OverBudget
from llm.parse import Parsed
from posts.grounding import Subject, headline_problems, names_of, prune, rule_of
from posts.grounding import problems as grounding_problems
from posts.moderation import Moderator, Verdict
from posts.output import headline_from, parse_output, quality_problems
from posts.prompt import (
    HEADLINE_SHOTS,
    Prompt,
    build_prompt,
    headline_prompt,
    lead_for,
    revise,
    voiced_summary,
    who_is_who,
)
from posts.quota import apply_rate_limit
from sim.world import WorldIndex, load_world
from topics.models import PostPublished, RenderRequested
from worldfeed.ids import derive_id


def stats_summary(stats: CallCounts) -> dict[str, Any]:
    """Counts plus the shares of posts valid first time / repaired / retried / fell back."""
    counts = stats.counts
    posts = counts["posts"]
    lookups = counts["cache_hits"] + counts["cache_misses"]
    out: dict[str, Any] = dict(sorted(counts.items()))
    for name in ("valid_first", "repaired", "retried", "fell_back"):
        out[f"share_{name}"] = round(counts[name] / posts, 4) if posts else 0.0
    out["cache_hit_rate"] = round(counts["cache_hits"] / lookups, 4) if lookups else 0.0
    return out


@dataclass(frozen=True)
class Rendered:
    """The outcome of rendering one request: the LLM loop's answer and the post's fields
    (the answer's, or the template's when it has none)."""

    answer: Answer
    fields: dict[str, str]
    source: str  # "llm" or "template"

    @property
    def attempts(self) -> int:
        """LLM attempts made."""
        return self.answer.attempts

    @property
    def failure(self) -> str | None:
        """Why the LLM's answer was not used (None when it was)."""
        return self.answer.failure

    @property
    def model(self) -> str | None:
        """The model that wrote the post (None for the template)."""
        return self.answer.model


@dataclass(frozen=True)
class Outcome:
    """What to do with one request: dead-letter ``dead_letter``, then publish ``post``."""

    post: PostPublished | None = None
    dead_letter: str | None = None


def template_fallback(index: WorldIndex, req: RenderRequested) -> dict[str, str]:
    """A deterministic post written without the LLM."""
    author = index.npc(req.author)
    ev = req.event
    if req.channel == "news":  # two paragraphs: the event where it happened; who is who
        who = " ".join(who_is_who(index, req))
        return {
            "title": headline_from(ev.summary),
            "body": f"{lead_for(index, req)}\n\n{who} Reported by {author.display_name}.",
        }
    if req.channel == "chat":
        return {"body": f"did you hear? {ev.summary}"[:500]}
    if req.parent is not None:  # a reply or repost quotes what it answers
        return {"body": f'{ev.summary}: "{req.parent.text.strip()}"'[:500]}
    return {"body": f"{ev.summary}."[:500]}


def subject_of(index: WorldIndex, req: RenderRequested) -> Subject:
    """What a request's post must be about (for the grounding validator)."""
    ev = req.event
    etype = index.catalog.event_types.get(ev.type)
    return Subject(
        channel=req.channel,
        author=req.author,
        actor=ev.actor,
        target=ev.target,
        place=ev.place,
        summary=ev.summary,
        valence=etype.valence if etype else "neutral",
        requires_place=index.catalog.channels[req.channel].requires_place
        if req.channel in index.catalog.channels
        else False,
    )


def vocabulary_of(prompt: Prompt) -> frozenset[str]:
    """The prompt's words (a sentence may open with one without it being a name)."""
    return frozenset(w.strip(".,;:!?\"'()") for w in prompt.content.split())


def examples_of(index: WorldIndex, req: RenderRequested) -> list[str]:
    """The texts of the request template's worked examples (events and posts): what a post
    must not repeat."""
    shown = index.catalog.templates[req.template].examples
    return [text for e in shown for text in (e.event, e.post)]


def expected_post(
    index: WorldIndex, req: RenderRequested, prompt: Prompt, stats: CallCounts | None = None
) -> Expect:
    """What a usable answer is for this request: the channel's post, schema-valid, good
    and grounded; a retry's prompt carries the reasons (:func:`posts.prompt.revise`).
    ``stats`` counts every failed grounding rule as ``grounding_<rule>``."""
    schema = index.catalog.channels[req.channel].post_schema
    lead = lead_for(index, req)
    subject = subject_of(index, req)
    names = names_of(index)
    vocabulary = vocabulary_of(prompt)

    examples = examples_of(index, req)

    # news without a usable headline line is judged on its body; its headline is then
    # written alone (PostRenderer._title), the summary standing in until then
    untitled = headline_from(req.event.summary) if req.channel == "news" else None

    def parse(text: str) -> Parsed:
        parsed = parse_output(req.channel, text, schema, prompt.content, untitled, keep=lead)
        given = {k: str(v) for k, v in parsed.fields.items()}
        fields, dropped = prune(given, subject, names, vocabulary, lead, examples)
        if fields == given:  # nothing pruned (or all of it wrong: the checks say why)
            return parsed
        if stats is not None:
            for rule in dropped:
                stats.add(f"pruned_{rule}")
        return Parsed(fields, repaired=True)

    # an echo of the prompt is its scaffolding or other facts repeated, not the event retold
    echo_source = prompt.content
    for told in (voiced_summary(index, req, req.channel != "news"), req.event.summary):
        echo_source = echo_source.replace(told.rstrip("."), "")

    def check(fields: dict[str, Any]) -> list[str]:
        body = str(fields.get("body", ""))
        if body.startswith(lead):  # the given start repeats the prompt: judge what follows
            fields = {**fields, "body": body[len(lead) :].strip()}
        found = quality_problems(fields, echo_source)
        fields = {**fields, "body": body}
        if found:
            return found
        found = grounding_problems(
            {k: str(v) for k, v in fields.items()}, subject, names, vocabulary
        )
        if req.channel == "news":  # a bad headline is rewritten alone (PostRenderer.render)
            found = [p for p in found if rule_of(p) != "headline"]
        if stats is not None:
            for problem in found:
                stats.add(f"grounding_{rule_of(problem)}")
        return found

    def retry(_attempt: int, problems: list[str]) -> Prompt:
        return revise(index, req, prompt, problems)

    return Expect(schema, parse, check, retry)


HEADLINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string", "minLength": 10, "maxLength": 120}},
}


def expected_headline(index: WorldIndex, req: RenderRequested, prompt: Prompt) -> Expect:
    """A usable headline: one line, its own words (not the summary), naming someone of
    the event, no name the world lacks (:func:`posts.grounding.headline_problems`)."""
    subject = subject_of(index, req)
    names = names_of(index)
    vocabulary = vocabulary_of(prompt)
    examples = examples_of(index, req) + [text for shot in HEADLINE_SHOTS for text in shot]

    def parse(text: str) -> Parsed:
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        title = headline_from(line.strip(" *\"'#"), 120)
        return Parsed({"title": title}, repaired=title != line)

    def check(fields: dict[str, Any]) -> list[str]:
        return headline_problems(str(fields["title"]), subject, names, vocabulary, examples)

    def retry(_attempt: int, problems: list[str]) -> Prompt:
        reasons = "; ".join(p.split(": ", 1)[-1] for p in problems[:3])
        asked = headline_prompt(index, req, prompt)
        return replace(asked, user=f"{asked.user}\nYour last headline was rejected ({reasons}).")

    return Expect(HEADLINE_SCHEMA, parse, check, retry)


def to_post(req: RenderRequested, out: Rendered, verdict: Verdict) -> PostPublished:
    """The post for a rendered request (a reply or repost names the post it answers)."""
    parent = req.parent
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
        source=out.source,
        moderation=verdict[0],
        moderation_reason=verdict[1],
        score=req.score,
        model=out.model,
        tokens_in=out.answer.tokens_in,
        tokens_out=out.answer.tokens_out,
        latency_ms=round(out.answer.latency_ms, 3),
        reply_to=parent.post_id if parent and parent.relation == "reply" else None,
        repost_of=parent.post_id if parent and parent.relation == "repost" else None,
    )


@dataclass
class PostRenderer:
    """Turns render requests into posts with an injected LLM loop.

    The stage counts into the loop's counters, so one :func:`stats_summary` covers LLM
    calls and posts alike: ``posts`` and how each was obtained (``valid_first``,
    ``repaired``, ``retried``, ``fell_back``), ``rate_limited``, ``over_budget`` and
    ``moderation_<verdict>``.

    Args:
        llm: The LLM loop, with its client, cache, gate and ledger.
        quota: Mapping of :func:`posts.quota.quota_key` -> request ids (a changelog
            table in the worker).
        moderator: Gives every post its verdict.
        load: Loads the world a request names.
        max_tokens: Cap on a template's ``max_tokens`` (``WORLDFEED_LLM_MAX_TOKENS``);
            None = the templates decide.
        chat: The model's chat template (``WORLDFEED_LLM_CHAT_TEMPLATE``).
    """

    llm: Completer
    quota: MutableMapping[bytes, bytes] = field(default_factory=dict)
    moderator: Moderator = field(default_factory=Moderator)
    load: Callable[[str], WorldIndex] = load_world
    max_tokens: int | None = None
    chat: ChatTemplate = DEFAULT

    @property
    def stats(self) -> CallCounts:
        """The counters of the stage (shared with the LLM loop)."""
        return self.llm.stats

    async def handle(self, req: RenderRequested) -> Outcome:
        """Quota, prompt, LLM or template, moderation: the post and/or the dead letter."""
        try:
            index = self.load(req.event.world)
            template = index.catalog.templates[req.template]
            if req.author not in index.catalog.npcs:
                raise KeyError(f"unknown author {req.author!r}")
        except Exception as exc:  # noqa: BLE001 - a request naming unknown things is bad input
            return Outcome(dead_letter=f"{type(exc).__name__}: {exc}")
        limited, reason = apply_rate_limit(index, req, self.quota)
        if limited is None:
            self.stats.add("rate_limited")
            return Outcome(dead_letter=reason or "rate limited")
        req = limited
        prompt = build_prompt(index, req, template, self.max_tokens, self.chat)
        try:
            out = await self.render(index, req, prompt)
        except OverBudget as exc:
            self.stats.add("over_budget")
            return Outcome(dead_letter=f"dropped: {exc}")
        verdict = self.moderator.review(" ".join(out.fields.values()))
        self.stats.add(f"moderation_{verdict[0]}")
        return Outcome(
            post=to_post(req, out, verdict),
            dead_letter=f"fell back to template: {out.failure}" if out.failure else None,
        )

    async def render(self, index: WorldIndex, req: RenderRequested, prompt: Prompt) -> Rendered:
        """Ask the LLM (retrying invalid output with other sampling) or fall back."""
        ask = Ask(req.request_id, req.run_id, req.score)
        answer = await self.llm.complete(ask, prompt, expected_post(index, req, prompt, self.stats))
        if answer.fields is not None:
            self._count(answer.attempts, answer.repaired)
            fields, source = dict(answer.fields), "llm"
        else:
            self._count(0, False)
            fields, source = template_fallback(index, req), "template"
        if req.channel == "news":
            fields["title"] = await self._title(index, req, prompt, fields, source)
        return Rendered(answer, fields, source)

    async def _title(
        self,
        index: WorldIndex,
        req: RenderRequested,
        prompt: Prompt,
        fields: dict[str, Any],
        source: str,
    ) -> str:
        """A news post's headline: the article's own when it passes the headline rules,
        else one the LLM writes alone, else the summary (each outcome counted)."""
        subject = subject_of(index, req)
        vocabulary = vocabulary_of(prompt)
        own = str(fields.get("title") or "")
        wrong = headline_problems(
            own, subject, names_of(index), vocabulary, examples_of(index, req)
        )
        if source == "llm" and not wrong:
            self.stats.add("headline_own")
            return own
        title = await self.headline(index, req, prompt)
        self.stats.add("headline_llm" if title else "headline_template")
        if title:
            return title
        # the article's own headline if it is at least a headline, else the summary
        usable = source == "llm" and own and all(rule_of(p) != "headline" for p in wrong)
        return own if usable else headline_from(req.event.summary)

    async def headline(self, index: WorldIndex, req: RenderRequested, prompt: Prompt) -> str | None:
        """An LLM-written headline for a news post whose body fell back to the template
        (None: no attempt passed, the summary stays the headline). Its calls are in the
        ledger under ``<request id>/headline``."""
        ask = Ask(f"{req.request_id}/headline", req.run_id, req.score)
        answer = await self.llm.complete(
            ask, headline_prompt(index, req, prompt), expected_headline(index, req, prompt)
        )
        return str(answer.fields["title"]) if answer.fields is not None else None

    def _count(self, attempt: int, repaired: bool) -> None:
        self.stats.add("posts")
        self.stats.add(f"attempt_{attempt}" if attempt else "attempt_fallback")
        if attempt == 0:
            self.stats.add("fell_back")
        elif attempt > 1:
            self.stats.add("retried")
        elif repaired:
            self.stats.add("repaired")
        else:
            self.stats.add("valid_first")
