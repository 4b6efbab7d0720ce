"""Prompts from the catalog's templates, the author's profile and memories.

A 135M-parameter model copes best with short, concrete prompts written from the
author's point of view, so the event summary is re-voiced for the author ("You saved
Otto Brandt at Market Square" rather than "Ines Alvarez saved Otto Brandt at Market
Square at Market Square") and the place is named once. The facts come first, then how
the event feels (the event type's valence), one or two example posts about other things
(the form to copy), and the task naming who and where the post must name.

The prompt is rendered in the model's chat template (:mod:`llm.chat`), and may end
inside the answer: :func:`revise` builds the retries, with the grounding validator's
reasons added and the answer's first sentence given (the event, in the author's words)
so that the model only continues it; a news article's form
(headline, blank line, two paragraphs) is a grammar the server constrains decoding to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from catalog.models import Npc, Template
from llm.chat import DEFAULT, ChatTemplate
from posts.grounding import FUNCTION_WORDS, HEADLINE_SYNONYMS, present_tense
from sim.calendar import MINUTES_PER_HOUR, day_of, hour_of
from sim.world import WorldIndex
from topics.models import RenderRequested

MAX_PROMPT_CHARS = 3600  # ~900 tokens for SmolLM2's tokenizer on English text
NO_MEMORIES = "nothing in particular"


MOODS = {
    "negative": "this is bad news; sound upset, worried or annoyed, never cheerful",
    "positive": "this is good news; sound glad and warm",
    "mixed": "people will disagree about this; sound thoughtful, not cheerful",
    "neutral": "an ordinary moment; sound natural and matter-of-fact",
}
LENGTHS = {"terse": "one short sentence", "short": "one or two sentences"}
LENGTHS["chatty"] = "two or three sentences"
# Sentences a post may have, by the author's style (chat is one message: at most two).
MAX_SENTENCES = {"terse": 1, "short": 2, "chatty": 3}


def _title_words(most: int) -> str:
    """GBNF for a headline of 3 to ``most`` whole words (letters, digits, ' and -)."""
    return f"[A-Z] [A-Za-z0-9'-]{{1,15}} (\" \" [A-Za-z0-9'-]{{1,16}}){{2,{most - 1}}}"


# a news article's paragraphs end a sentence (GBNF: llama.cpp and vLLM's xgrammar); its
# headline is :func:`title_rules`, and :func:`news_grammar` puts them together
NEWS_BODY = 'para ::= [^\\n]{30,240} [.!?"]\n'
# a feed post or chat message is one line: SmolLM2 otherwise starts a second one with
# the prompt's facts or labels ("\nWalter Pike is a retired fisherman.\nHow it feels:")
ONE_LINE_GRAMMAR = 'root ::= "\\n"? [^\\n]+\n'
SAME_LINE_GRAMMAR = "root ::= [^\\n]+\n"
HEADLINE_MAX_TOKENS = 32


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for the LLM, plus what built it.

    ``prefill`` is the answer's beginning (the model continues it; the post includes
    it); ``grammar`` a GBNF grammar decoding is constrained to; ``temperature`` is added
    to every attempt's sampling temperature (the author's style).
    """

    system: str
    user: str
    max_tokens: int
    template: str
    prefill: str = ""
    grammar: str | None = None
    chat: ChatTemplate = DEFAULT
    temperature: float = 0.0
    shots: tuple[tuple[str, str], ...] = ()  # worked examples: (question, answer) turns

    @property
    def text(self) -> str:
        """The exact text the model sees: chat markup, system, examples, user, answer's start."""
        return self.chat.render(self.system, self.user, self.prefill, self.shots)

    @property
    def content(self) -> str:
        """System and user parts without the markup (what an echo would repeat)."""
        return f"{self.system}\n\n{self.user}"

    @property
    def stop(self) -> tuple[str, ...]:
        """Where generation stops: the chat template's end-of-turn markers."""
        return self.chat.stop


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:  # unknown placeholders stay visible, never crash
        return "{" + key + "}"


def _names(display_name: str) -> list[str]:
    """Ways a summary may name an NPC: full name, then first name ("Mayor Hart" stays)."""
    parts = display_name.split()
    return [display_name, parts[0]] if len(parts) > 1 else [display_name]


def voiced_summary(index: WorldIndex, req: RenderRequested, first_person: bool = True) -> str:
    """The event summary (from the author's point of view), with its place named once."""
    ev = req.event
    text = ev.summary.strip().rstrip(".")
    author = index.npc(req.author)
    for name in _names(author.display_name) if first_person else []:
        pattern = re.compile(rf"^{re.escape(name)}\b")
        if pattern.search(text):  # the author did it: "You saved ..."
            text = pattern.sub("You", text, count=1)
            break
    for name in _names(author.display_name) if first_person else []:
        if re.search(rf"\b{re.escape(name)}\b", text):  # the author is the object: "... you"
            text = re.sub(rf"\b{re.escape(name)}\b", "you", text, count=1)
            break
    place = index.place_name(ev.place)
    if ev.place and place.lower() not in text.lower():
        text = f"{text} at {place}"
    return text + "."


def _short(npc: Npc) -> str:
    """How a post may name someone briefly: the full name (never ambiguous)."""
    return npc.display_name


def must_name(index: WorldIndex, req: RenderRequested) -> list[str]:
    """Who (and where) the post must name: the actor and target unless the author is
    them, and the place where the channel needs it."""
    ev = req.event
    out = [
        _short(index.npc(who))
        for who in (ev.actor, ev.target)
        if who and (who != req.author or req.channel == "news")
    ]
    channel = index.catalog.channels.get(req.channel)
    if ev.place and channel is not None and channel.requires_place:
        out.append(index.place_name(ev.place))
    return out


def style_of(npc: Npc) -> str:
    """The author's style as prompt words (manner, emoji, quirks)."""
    st = npc.style
    parts = [f"Manner: {st.manner}."]
    if st.emoji:
        parts.append("You end posts with an emoji.")
    if st.quirks:
        parts.append("Habits: " + "; ".join(st.quirks) + ".")
    return " ".join(parts)


def who_is_who(index: WorldIndex, req: RenderRequested) -> list[str]:
    """Who is who, for the event's actor and target ("Walter Pike is a retired fisherman.")."""
    ev = req.event
    out = []
    for who in (ev.actor, ev.target):
        if who:
            npc = index.npc(who)
            out.append(f"{npc.display_name} is {_occupation(npc)}.")
    return out


def _occupation(npc: Npc) -> str:
    occ = npc.occupation
    occ = occ.lower() if occ[:1].isupper() and not occ.isupper() else occ
    return ("the " if occ in ("mayor", "editor", "principal") else "a ") + occ


def values_for(
    index: WorldIndex,
    req: RenderRequested,
    memories: list[str],
    template: Template | None = None,
) -> dict[str, str]:
    """Placeholder values for a request's template (the catalog's, unless given)."""
    author = index.npc(req.author)
    ev = req.event
    etype = index.catalog.event_types.get(ev.type)
    template = template or index.catalog.templates.get(req.template)
    names = must_name(index, req)
    who = who_is_who(index, req)
    return _Defaults(
        author_name=author.display_name,
        author_handle=author.handle,
        author_voice=author.voice,
        author_occupation=author.occupation.lower()
        if author.occupation[:1].isupper() and not author.occupation.isupper()
        else author.occupation,
        author_interests=", ".join(author.interests[:4]),
        event_summary=voiced_summary(index, req, first_person=req.channel != "news"),
        place_name=index.place_name(ev.place),
        actor_name=index.npc(ev.actor).display_name,
        target_name=index.npc(ev.target).display_name if ev.target else "",
        memories="; ".join(memories) if memories else NO_MEMORIES,
        channel=req.channel,
        day=str(day_of(ev.sim_minute)),
        time=f"{hour_of(ev.sim_minute):02d}:{ev.sim_minute % MINUTES_PER_HOUR:02d}",
        author_style=style_of(author),
        length=LENGTHS[author.style.length] if req.channel != "chat" else "one short message",
        who=" ".join(who),
        who_list="\n".join(f"- {w}" for w in who),
        mood=MOODS[etype.valence if etype else "neutral"],
        must_name=" and ".join(names) if names else "nobody else",
        **thread_values(index, req),
    )


NO_PARENT = "a post you read earlier"


def thread_values(index: WorldIndex, req: RenderRequested) -> dict[str, str]:
    """A reply's or repost's placeholders: who wrote the post it answers, what that post
    says (``req.parent``), and whether it is a reply or a repost."""
    parent = req.parent
    if parent is None:
        target = req.event.target
        return {
            "parent_author": index.npc(target).display_name if target else "someone",
            "parent_text": NO_PARENT,
            "relation": "reply",
        }
    author = index.catalog.npcs.get(parent.author)
    return {
        "parent_author": author.display_name if author else parent.author,
        "parent_text": parent.text.strip().rstrip("."),
        "relation": parent.relation,
    }


def build_prompt(
    index: WorldIndex,
    req: RenderRequested,
    template: Template,
    max_tokens: int | None = None,
    chat: ChatTemplate = DEFAULT,
) -> Prompt:
    """Fill the template; memories (the actor's most salient) are trimmed to fit the budget.

    ``max_tokens`` (``WORLDFEED_LLM_MAX_TOKENS``) caps the template's own ``max_tokens``;
    ``chat`` is the model's chat template (``WORLDFEED_LLM_CHAT_TEMPLATE``).
    """
    memories = (
        req.event.actor_memories[: template.max_memories] if req.author == req.event.actor else []
    )
    while True:
        values = values_for(index, req, memories, template)
        system = template.system.format_map(values)
        user = template.prompt.format_map(values)
        if len(system) + len(user) <= MAX_PROMPT_CHARS or not memories:
            break
        memories = memories[:-1]
    author = index.npc(req.author)
    grammar = news_grammar(index, req) if req.channel == "news" else ONE_LINE_GRAMMAR
    return Prompt(
        system=system,
        user=user[: MAX_PROMPT_CHARS - len(system)],
        max_tokens=min(template.max_tokens, max_tokens or template.max_tokens),
        template=template.id,
        grammar=grammar,
        chat=chat,
        temperature=author.style.temperature,
        shots=tuple((f"What happened: {e.event}", e.post) for e in template.examples),
    )


def lead_for(index: WorldIndex, req: RenderRequested) -> str:
    """The event as the answer's first sentence, in the author's words ("I made peace
    with Leo Marchetti at The Daily Grind."; news: the summary with its place)."""
    text = voiced_summary(index, req, first_person=req.channel != "news")
    if text.startswith("You "):
        text = "I " + text[4:]
    text = re.sub(r"\byou\b", "me", text)
    return text[:1].upper() + text[1:]


# A headline is asked for alone with the event's summary and these worked examples, in
# the words of a sub-editor: given the article's prompt (who is who, memories, the
# bakery example), SmolLM2-135M wrote "Walter Pike is a retired fisherman who ..." and
# glued words at the grammar's cap, and 0 of Day 1's 25 news requests got a headline;
# with these, 16 of 25 passed the headline rules (seeds 1 and 7, the same requests).
# Their names are of no world: a headline that copies one is caught as an echo.
HEADLINE_SYSTEM = (
    "You write newspaper headlines: who did what, in five to eight words."
    " Never 'is a', never a full sentence."
)
HEADLINE_SHOTS = (
    (
        "What happened: Tom Reed rescued a swimmer at Pine Lake",
        "Tom Reed Pulls Swimmer From Pine Lake",
    ),
    (
        "What happened: Ana Cruz argued with her landlord at the market",
        "Ana Cruz Clashes With Landlord At Market",
    ),
    (
        "What happened: Ben Holt collapsed at the bus stop and an ambulance was called",
        "Ben Holt Collapses At Bus Stop",
    ),
)


def headline_prompt(index: WorldIndex, req: RenderRequested, prompt: Prompt) -> Prompt:
    """The prompt for a news headline alone (the article's own failed the headline rules
    or its body fell back to the template): the event's summary and whom to name, with
    :data:`HEADLINE_SHOTS` as the earlier turns, decoded under a grammar of 3-9 words.
    The article prompt's chat template and sampling temperature are kept."""
    names = must_name(index, req)
    who = names[0] if names else index.npc(req.event.actor).display_name
    return replace(
        prompt,
        system=HEADLINE_SYSTEM,
        user=f"What happened: {req.event.summary}\nWrite the headline. Name {who}.",
        prefill="",
        grammar=headline_grammar(index, req),
        max_tokens=HEADLINE_MAX_TOKENS,
        shots=HEADLINE_SHOTS,
    )


# Function words a headline may join its words with (never its last word).
# ("After", "Over", "Amid" and "As" went: SmolLM2 put them anywhere, "Asks After Surveyors")
HEADLINE_JOINERS = ("At", "With", "In", "On", "For", "To", "Of", "And", "From", "About")


# Words of a summary that a headline's phrases do without (pronouns, conjunctions).
_NOT_HEADLINE_WORDS = frozenset(
    "it he she they him her them his its their this that until while when because so then"
    " very just also each other".split()
)


def headline_grammar(index: WorldIndex, req: RenderRequested) -> str:
    """GBNF for a news headline written alone (:func:`title_rules`)."""
    return "root ::= title\n" + title_rules(index, req)


def news_grammar(index: WorldIndex, req: RenderRequested, lead: str = "", then: str = "") -> str:
    """GBNF for a news article: its headline (:func:`title_rules`), a blank line and two
    paragraphs that end a sentence, the first opening with ``lead`` and the second with
    ``then`` when given."""
    start = f"{_gbnf_literal(lead + ' ')} " if lead else ""
    second = f"{_gbnf_literal(then + ' ')} " if then else ""
    root = f'root ::= title "\\n\\n" {start}para "\\n\\n" {second}para\n'
    return root + title_rules(index, req) + NEWS_BODY


def title_rules(index: WorldIndex, req: RenderRequested) -> str:
    """GBNF rule ``title``: a headline told from the event's own words: the actor's name, a verb the
    summary tells the actor's deed with (in the present, or a headline verb for it:
    "Clashes" for "argued"), then some of the summary's other words, the place's name or
    the target's, each at most once and in the summary's order, each optionally after a
    joining word ("At", "With").

    The model still writes the headline (which verb, which words, their order); what it
    can no longer write is a word the event does not say, which with SmolLM2-135M was
    most of the failed headlines ("Noah Fischer Confronted School", "Ines Alvarez Flames
    Win Election"). The actor leads so that the verb is theirs."""
    ev = req.event
    actor = index.npc(ev.actor).display_name
    target = index.npc(ev.target).display_name if ev.target else ""
    place = index.place_name(ev.place) if ev.place else ""
    own = {w for name in (actor, target, place) for w in _words(name)}
    verbs: dict[str, None] = {}
    for low in _deeds(ev.summary):
        verbs[str(present_tense(low)).capitalize()] = None
        for key, synonyms in HEADLINE_SYNONYMS.items():
            if low.startswith(key):
                verbs.update((v.capitalize(), None) for v in synonyms)
    if not verbs:  # a summary without a past tense this knows: 3-9 free words
        return f"title ::= {_title_words(9)}\n"
    first = ev.summary.split(";")[0]
    placed: list[tuple[int, str]] = []  # (where the summary says it, the phrase)
    for name in (target, place):
        if name:
            at = [
                m.start() for w in _words(name) for m in re.finditer(rf"\b{re.escape(w)}\b", first)
            ]
            placed.append((min(at, default=len(first)), name))
    world = index.catalog.world.title.lower()
    for m in re.finditer(_PHRASE, first):
        run = m.group(0).rstrip("'’-")
        words = _words(run)
        low = run.lower()
        if own & set(words) or low in _NOT_HEADLINE_WORDS or low in FUNCTION_WORDS:
            continue
        if low == world or (len(words) == 1 and present_tense(low)):
            continue
        placed.append((m.start(), run[:1].upper() + run[1:]))
    where: dict[str, int] = {}  # each phrase where the summary first says it, in order
    for pos, phrase in sorted(placed):
        where.setdefault(phrase, pos)
    phrases = list(where)[:MAX_HEADLINE_PHRASES]
    # each phrase at most once, in the summary's order (SmolLM2 otherwise loops: "Mia
    # Hart Leads Protest With Protest"): s<i> is a non-empty pick of phrases i..n
    n = len(phrases) - 1
    alt = " | ".join
    rules = [
        f'title ::= {_gbnf_literal(actor)} " " verb s0\n',
        f"verb ::= {alt(map(_gbnf_literal, verbs))}\n",
    ]
    for i, phrase in enumerate(phrases):
        # joined only by the word the summary puts before it ("about the surveyors")
        join = _joiner(first[: where[phrase]]) if where[phrase] < len(first) else "At"
        joined = f'"{join} "? ' if join else ""
        rules.append(f'p{i} ::= " " {joined}{_gbnf_literal(phrase)}\n')
        rules.append(f"s{i} ::= p{i} s{i + 1}? | s{i + 1}\n" if i < n else f"s{i} ::= p{i}\n")
    return "".join(rules)


MAX_HEADLINE_PHRASES = 8
_ARTICLES = frozenset("the a an her his their its our my".split())


def _joiner(before: str) -> str | None:
    """The joining word the summary puts right before a phrase, past an article ("...
    about the" -> "About"); None when there is none."""
    words = [w.lower() for w in _words(before)][-3:]
    while words and words[-1] in _ARTICLES:
        words.pop()
    join = words[-1].capitalize() if words else ""
    return join if join in HEADLINE_JOINERS else None


# a summary's words, its capitalised runs kept whole ("Summer River Festival", "Otto's")
_PHRASE = re.compile(r"[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*|[a-z][\w'’-]*")


_PASSIVE = frozenset("was were been being is are be".split())


def _deeds(summary: str) -> list[str]:
    """The past tenses that tell what the summary's subject did: the first one, and any
    right after "and" ("announced ... and promised"), in its first clause and not passive
    ("an ambulance was called" is nobody's deed)."""
    words = [w.lower() for w in _words(summary.split(";")[0])]
    out: list[str] = []
    for i, low in enumerate(words):
        if not present_tense(low) or (i and words[i - 1] in _PASSIVE):
            continue
        if not out or words[i - 1] == "and":
            out.append(low)
    return out


def _words(text: str) -> list[str]:
    """A text's words, without the punctuation around them ("Otto's" stays)."""
    return [w.strip("'’-") for w in re.findall(r"[A-Za-z][\w'’-]*", text) if w.strip("'’-")]


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def revise(index: WorldIndex, req: RenderRequested, prompt: Prompt, problems: list[str]) -> Prompt:
    """The prompt of a retry: the validator's reasons added to the task, and the answer
    started with the event (feed, chat: the first sentence is given; news: the first
    paragraph must open with it), so the model only continues it. Each retry asks again
    with other sampling (:data:`llm.cache.ATTEMPTS`)."""
    reasons = "; ".join(p.split(": ", 1)[-1] for p in problems[:3])
    user = f"{prompt.user}\nYour last draft was rejected ({reasons}). Write a new one."
    revised = replace(prompt, user=user[:MAX_PROMPT_CHARS])
    lead = lead_for(index, req)
    if req.channel == "news":  # the second paragraph opens with who is who
        return replace(revised, grammar=news_grammar(index, req, lead, who_is_who(index, req)[0]))
    # the model continues the given sentence on its line (from a new one it retold the
    # prompt's facts: "\nZoe Kim is a muralist.")
    return replace(revised, prefill=lead + " ", grammar=SAME_LINE_GRAMMAR)
