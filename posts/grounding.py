"""Is a post about its event, and true to the world? The grounding validator.

Schema checks and moderation pass fluent posts that are about nothing, or about a
world that does not exist. This module checks a post against what the world holds:

* **grounded**: it names the event's actor, or is written by the actor in the first
  person; it names the target when there is one (or is written by the target in the
  first person); it names the place when the channel needs it (``requires_place``);
* **no invented names**: every proper noun is a person, place or name the world knows;
* **no contradictions**: it gives no NPC another occupation or role ("Mayor Crane",
  "Victor Crane, the mayor"), names no kin the world does not have ("Walter's wife
  Lily Chen"), and does not move the event to another known place;
* **tone**: its sentiment (VADER, a lexicon model that ships with the package) does not
  clash with the event type's ``valence`` (cheerful on a collapse, bitter on a rescue);
* **form**: feed and chat posts do not open like a letter ("Lily Chen, I'm ...") and
  an author does not write about themselves in the third person; a news headline is not
  the event summary copied, and a news body has at least two paragraphs.

:func:`problems` returns every failed rule as ``"<rule>: <reason>"`` (the rule names
are the counters the render stage keeps, the reasons go back into the retry prompt).
Names are matched on word boundaries, case-sensitively for proper nouns.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from catalog.models import Catalog
from posts.output import TITLE_ABBREVIATIONS
from sim.world import WorldIndex

RULES = (
    "actor",
    "target",
    "place",
    "about",
    "invented",
    "role",
    "kin",
    "wrong_place",
    "tone",
    "letter",
    "third_person",
    "headline",
    "paragraphs",
)
"""Every rule :func:`problems` can fail, in the order it checks them."""

# Capitalised words a post may use that are not names of anything in the world.
COMMON_CAPITALISED = frozenset(
    """I I'm I've I'd I'll You We He She They It OK Okay Mr Mrs Ms Mx Dr Doctor Mayor
    Councillor Council Officer Coach Principal Nurse Editor Reporter Miss Sir Madam Aunt
    Uncle Grandma Grandpa Mom Mum Dad God Monday Tuesday Wednesday Thursday Friday Saturday
    Sunday January February March April May June July August September October November
    December Spring Summer Autumn Fall Winter Christmas Easter Halloween Town Hall Square
    Street Road Park River Festival Market Green School Clinic Bakery Cafe Café Bar Books
    Flats Cottages Row Houses Main Breaking Update News Local Today Tonight Tomorrow
    Yesterday PS Ps Btw BTW Lol LOL""".split()
)
# Words that start sentences (capitalised there only): never names.
SENTENCE_STARTERS = frozenset(
    """a about after again all also although always an and another any anyone anyway are
    as at back be because been before being best better big both but by can cannot come
    congrats congratulations could did do does don't done down during each either even ever
    every everybody everyone everything excited feeling few finally first for from funny
    get give glad go going good got great had happy hard has have having he heading her
    here hers herself hey hi him himself his honestly hope how however huge i if in indeed
    is isn't it it's its just last later let let's like little long look looks lots love
    lovely made make many maybe me meanwhile more most much must my never new next nice no
    nobody none nor not nothing now of oh on once one only or other our ours out over
    perhaps please poor proud quick quite rather really right sad said same saw see seems
    seriously she should since so some someone something sometimes soon sorry still such
    sure take thank thanks that that's the their them then there there's these they they're
    thing things this those though three through thrilled to today together tomorrow tonight
    too truly two under until up us very wait was wasn't watch we we're well went were
    what what's whatever when where which while who whoever why will with without wow
    yes yesterday yet you you're your yours amazing absolutely big breaking crazy
    definitely earlier everyone's exciting fantastic guess imagine incredible kind
    luckily sadly shocking so-called someday somehow terrible tough unbelievable update
    welcome whew word words ugh yikes oops sigh phew hmm meh yay ooh ah aw argh hooray
    alas ouch eek gosh geez jeez omg yep nope nah ok okay sure right""".split()
)
KIN = {
    "wife": "family",
    "husband": "family",
    "son": "family",
    "daughter": "family",
    "mother": "family",
    "father": "family",
    "mom": "family",
    "mum": "family",
    "dad": "family",
    "brother": "family",
    "sister": "family",
    "aunt": "family",
    "uncle": "family",
    "niece": "family",
    "nephew": "family",
    "grandson": "family",
    "granddaughter": "family",
    "grandfather": "family",
    "grandmother": "family",
    "cousin": "family",
}
TITLES = {"mayor", "dr", "doctor", "councillor", "officer", "coach", "principal", "nurse"}
FIRST_PERSON = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself|we|we're|our|us)\b")
NEGATIVE_TONE_MAX = 0.5  # VADER compound above this on a negative event: a tone mismatch
POSITIVE_TONE_MIN = -0.5  # below this on a positive event: a tone mismatch

_CAP_RUN = re.compile(
    r"(?<![\w'’])((?:[A-Z][\w'’.-]*)(?:\s+(?:of|the|&|de|van|von)?\s*[A-Z][\w'’.-]*)*)"
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")
_OPENER = re.compile(
    r"^\s*(?:(?:hi|hey|hello|dear)\s+)?([A-Z][\w.'’-]*(?:\s+[A-Z][\w'’-]*)?),", re.IGNORECASE
)
_SCAFFOLD = re.compile(
    r"\b(headline|the facts|paragraphs?|bugle's article|what happened)\b|^name\b"
)
_POSSESSIVE = re.compile(r"['’][sS]$")  # "Otto's", and SmolLM2's "Otto'S"


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][\w'’-]*", text)


def _clean(word: str) -> str:
    return _POSSESSIVE.sub("", word.strip(".,;:!?\"'’()[]-"))


@dataclass(frozen=True)
class _Person:
    npc_id: str
    full: str
    forms: tuple[str, ...]  # ways a post may name them
    occupation: str


class WorldNames:
    """What a post may name: people (full name, first name, title + surname), places
    (full name, without "The" or the town's name), and the world's other proper nouns."""

    def __init__(self, index: WorldIndex) -> None:
        catalog = index.catalog
        self.title = catalog.world.title
        self.people: dict[str, _Person] = {}
        tokens: set[str] = set(COMMON_CAPITALISED)
        person_words: set[str] = set()
        roles: set[str] = set()
        for npc_id, npc in index.cards.items():  # the directory: no profile is built
            full = npc.display_name
            parts = [_clean(p) for p in full.split()]
            names = [p for p in parts if p not in {"Dr", "Dr.", "Mr", "Mrs", "Ms"}]
            forms = {full, " ".join(names)}
            if names:
                forms.add(names[0])
                forms.add(names[-1])
                role = npc.occupation.split()[-1].capitalize()
                forms.add(f"{role} {names[-1]}")
                if full.startswith("Dr"):
                    forms.update({f"Dr. {names[-1]}", f"Dr {names[-1]}", f"Doctor {names[-1]}"})
            tokens.update(names)
            person_words.update(names)
            ordered = tuple(sorted(forms, key=len))
            self.people[npc_id] = _Person(npc_id, full, ordered, npc.occupation)
            roles.update(w.lower() for w in npc.occupation.split())
        self.places: dict[str, tuple[str, ...]] = {}
        for place in catalog.places.values():
            forms = {place.name}
            bare = re.sub(r"^(The|the)\s+", "", place.name)
            forms.add(bare)
            if bare.startswith(self.title + " ") and len(bare.split()) > 1:
                forms.add(bare[len(self.title) + 1 :])
            self.places[place.id] = tuple(sorted(forms, key=len))
            tokens.update(_clean(w) for w in _words(place.name))
        tokens.add(self.title)
        for channel in catalog.channels.values():
            tokens.update(_clean(w) for w in _words(channel.name))
        self.tokens = frozenset(t for t in tokens if t)
        self.person_words = frozenset(person_words)  # "Eleanor", "Hart": parts of names
        generic = {"owner", "vendor", "worker", "retired", "town", "clinic", "market", "bar"}
        self.roles = frozenset(r for r in roles if r not in generic and len(r) > 3)
        self.first_names: dict[str, set[str]] = {}
        for person in self.people.values():
            self.first_names.setdefault(person.forms[0].split()[0], set()).add(person.npc_id)
        self.by_form: dict[str, list[str]] = {}
        for person in self.people.values():
            for form in person.forms:
                self.by_form.setdefault(form, []).append(person.npc_id)
        self.family: set[tuple[str, str]] = {
            pair for pair, tags in index.tags.items() if "family" in tags
        }

    def mentions(self, text: str, npc_id: str) -> bool:
        """Whether ``text`` names this NPC (any of their forms, on word boundaries)."""
        return any(_has(text, form) for form in self.people[npc_id].forms)

    def names_place(self, text: str, place_id: str) -> bool:
        """Whether ``text`` names this place."""
        return any(_has(text, form, ignore_case=True) for form in self.places[place_id])

    def who(self, name: str) -> list[str]:
        """NPCs a name may refer to (full name, title + surname, first or last name)."""
        name = _clean(name)
        return [pid for pid, p in self.people.items() if name in p.forms]


def _has(text: str, form: str, ignore_case: bool = False) -> bool:
    flags = re.IGNORECASE if ignore_case else 0
    return re.search(rf"(?<![\w]){re.escape(form)}(?![\w])", text, flags) is not None


_NAMES: weakref.WeakKeyDictionary[Catalog, WorldNames] = weakref.WeakKeyDictionary()


def names_of(index: WorldIndex) -> WorldNames:
    """The world's names, built once per loaded catalog."""
    got = _NAMES.get(index.catalog)
    if got is None:
        got = _NAMES[index.catalog] = WorldNames(index)
    return got


@dataclass(frozen=True)
class Subject:
    """What a post must be about: the event's who, where and tone, and who writes it."""

    channel: str
    author: str
    actor: str
    target: str | None
    place: str | None
    summary: str
    valence: str
    requires_place: bool


@cache
def common_words() -> frozenset[str]:
    """~15k common English words (lower case): the vocabulary of the moderation
    classifier's vectorizer, which ships with ``alt-profanity-check``. Used only for the
    first word of a sentence, where a capital says nothing; it holds some names too
    (paris, sarah), so a sentence may open with one unnoticed, never a name mid-sentence."""
    import joblib  # type: ignore[import-untyped]
    import profanity_check

    path = Path(profanity_check.__file__).parent / "data" / "vectorizer.joblib"
    return frozenset(str(w) for w in joblib.load(path).vocabulary_)


def invented_names(text: str, names: WorldNames, vocabulary: Iterable[str] = ()) -> list[str]:
    """Proper nouns in ``text`` the world does not know (in order, without repeats).

    A capitalised word mid-sentence is a proper noun unless the prompt has it
    (``vocabulary``); at the start of a sentence it is one only if it is not a common
    word, a sentence opener or a word the prompt or the post uses. Hashtags, @handles and
    acronyms are not checked.
    """
    given = {v.lower() for v in vocabulary}
    lower = {w.lower() for w in _words(text) if w[:1].islower()} | given | common_words()
    out: list[str] = []
    for sentence in _SENTENCE_SPLIT.split(text):
        sentence = sentence.strip(" \"'“”‘’*-—–:(")
        for m in _CAP_RUN.finditer(sentence):
            run = m.group(1)
            prev = sentence[: m.start()].rstrip()
            if prev.endswith(("#", "@")):
                continue
            at_start = m.start() == 0 or prev.endswith((":", "—", "-", "–", '"', "“"))
            words = [_clean(w) for w in run.split() if w[:1].isupper()]
            for i, word in enumerate(words):
                if not word or word.isupper() or word in names.tokens:
                    continue
                low = word.lower()
                base = re.split(r"['’]", low)[0]
                if (
                    i == 0
                    and at_start
                    and (low in SENTENCE_STARTERS or low in lower or base in SENTENCE_STARTERS)
                ):
                    continue
                if low in lower and len(words) == 1 and at_start:
                    continue
                if low in given:
                    continue
                if word not in out:
                    out.append(word)
    return out


def _tells(text: str, summary: str, names: WorldNames) -> bool:
    """Whether ``text`` has a word of the event's summary (any form: "protest",
    "protesting"), other than a name or a function word."""
    said = [
        w.lower()
        for w in map(_clean, _words(summary))
        if len(w) > 3 and w not in names.tokens and w.lower() not in FUNCTION_WORDS
    ]
    told = {w.lower() for w in map(_clean, _words(text))}
    return any(_same_word(s, t) for s in said for t in told)


def _role_claims(text: str, names: WorldNames) -> list[str]:
    """Roles the post gives people that nobody of that name holds ("Mayor Crane",
    "Victor Crane, the mayor", "Victor Crane, who used to be the mayor")."""
    out = []
    for form, ids in names.by_form.items():
        if form not in text:
            continue
        own = {w.lower() for pid in ids for w in names.people[pid].occupation.split()}
        full = names.people[ids[0]].full if len(ids) == 1 else form
        occ = " or ".join(sorted({names.people[pid].occupation.lower() for pid in ids}))
        esc = re.escape(form)
        for m in re.finditer(rf"\b([A-Z][a-z]+)\.?\s+{esc}\b", text):
            role = m.group(1).lower()
            if (
                role in TITLES
                and role not in own
                and not (
                    role in {"dr", "doctor"}
                    and any(names.people[p].full.startswith("Dr") for p in ids)
                )
            ):
                out.append(f"{m.group(0)!r} ({full} is {occ})")
        for m in re.finditer(
            rf"\b{esc},?\s+(?:(?:who|which)\s+(?:is|was|used to be|has been)\s+|is\s+|was\s+)?"
            rf"(?:the|a|an|our|their)\s+([^,.;:!?\n]{{1,80}})",
            text,
        ):
            role = _appositive_role(m.group(1), names.roles - own)
            if role:
                out.append(f"{m.group(0)!r} ({full} is {occ})")
    return out


_APPOSITIVE_END = frozenset("of to with for at in from on by who whose that which".split())


def _appositive_role(phrase: str, roles: frozenset[str] | set[str]) -> str | None:
    """The first of ``roles`` an appositive gives ("a renowned physician and retired
    fisherman" -> fisherman), up to its sixth word; a possessive or a preposition ends it
    ("the mayor's rival", "a friend of the baker" give nobody a role)."""
    for word in re.findall(r"[A-Za-z]+(?:['’]s)?", phrase)[:6]:
        low = str(word).lower()
        if low.endswith(("'s", "’s")) or low in _APPOSITIVE_END:
            return None
        if low in roles:
            return low
    return None


def _kin_claims(text: str, names: WorldNames) -> list[str]:
    """Family ties the post gives people that the world does not have."""
    out = []
    kin = "|".join(KIN)
    for m in re.finditer(
        rf"\b([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)?)['’]s\s+({kin})\b,?\s+([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)?)",
        text,
    ):
        a_ids, b_ids = names.who(m.group(1)), names.who(m.group(3))
        if (
            a_ids
            and b_ids
            and not any(
                (a, b) in names.family or (b, a) in names.family for a in a_ids for b in b_ids
            )
        ):
            out.append(f"{m.group(0)!r} (they are not family)")
    return out


def _paragraphs(body: str) -> int:
    return len([p for p in re.split(r"\n\s*\n", body) if p.strip()])


_VADER = SentimentIntensityAnalyzer()


def tone(text: str) -> float:
    """VADER compound sentiment of ``text``: -1 (bitter) .. +1 (cheerful)."""
    return float(_VADER.polarity_scores(text)["compound"])


def problems(
    fields: dict[str, str],
    subject: Subject,
    names: WorldNames,
    vocabulary: Iterable[str] = (),
) -> list[str]:
    """Every grounding rule the post fails, as ``"<rule>: <reason>"`` (empty: none).

    ``vocabulary``: words known to be common (the prompt's lower-case words), so that a
    sentence opening with one is not taken for a name."""
    body = fields.get("body", "")
    title = fields.get("title") or ""
    text = f"{title}\n{body}" if title else body
    people = names.people
    out: list[str] = []
    first_person = FIRST_PERSON.search(body) is not None
    actor = people[subject.actor]
    names_actor = names.mentions(text, subject.actor)
    names_target = bool(subject.target) and names.mentions(text, str(subject.target))
    names_place = bool(subject.place) and names.names_place(text, str(subject.place))
    if not names_actor and not (subject.author == subject.actor and first_person):
        out.append(f"actor: does not name {actor.full}, who did it")
    if subject.target and not names_target:
        if not (subject.author == subject.target and first_person):
            out.append(f"target: does not name {people[subject.target].full}")
    if subject.place and subject.requires_place and not names_place:
        out.append(f"place: does not name {names.places[subject.place][-1]}, where it happened")
    if not (names_actor or names_target or names_place or _tells(text, subject.summary, names)):
        # the actor's own post in the first person, about something else
        out.append(f"about: does not say what happened ({subject.summary})")
    # a headline is in title case: its words are checked by headline_problems
    invented = invented_names(body, names, vocabulary)
    if invented:
        listed = ", ".join(invented[:4])
        out.append(f"invented: names {listed}, who or which is not in {names.title}")
    roles = _role_claims(text, names)
    if roles:
        out.append(f"role: {roles[0]}")
    kin = _kin_claims(text, names)
    if kin:
        out.append(f"kin: {kin[0]}")
    if subject.place and not names_place:
        elsewhere = [
            forms[-1]
            for pid, forms in names.places.items()
            if pid != subject.place and len(forms[-1]) > 4 and _has(text, forms[-1])
        ]
        if elsewhere:
            there = names.places[subject.place][-1]
            out.append(f"wrong_place: puts it at {elsewhere[0]}; it happened at {there}")
    score = tone(body)
    if subject.valence == "negative" and score > NEGATIVE_TONE_MAX:
        out.append(f"tone: cheerful ({score:+.2f}) about something bad: {subject.summary}")
    elif subject.valence == "positive" and score < POSITIVE_TONE_MIN:
        out.append(f"tone: bitter ({score:+.2f}) about something good: {subject.summary}")
    if subject.channel in ("feed", "chat"):
        opener = _OPENER.match(body)
        if opener and names.who(opener.group(1)):
            out.append(f"letter: opens like a letter ({opener.group(0).strip()!r})")
        author = people[subject.author]
        if _has(body, author.full) or (
            " " in author.full and _has(body, author.full.split()[-1] + " is")
        ):
            out.append(f"third_person: {author.full} writes about themselves in the third person")
    if subject.channel == "news":
        if not any(names.mentions(body, who) for who in (subject.actor, subject.target) if who):
            # the headline names them; an article that does not is about nothing
            out.append(f"actor: the article does not name {actor.full}, who did it")
        out.extend(_headline_form(title, subject))
        if _paragraphs(body) < 2:
            out.append(f"paragraphs: {_paragraphs(body)} paragraph(s), at least 2 wanted")
    return out


def title_invented(title: str, names: WorldNames, vocabulary: Iterable[str] = ()) -> list[str]:
    """Words of a headline (title case: every word capitalised) that look like names the
    world lacks: not a world name, not a common English word, not a word of the prompt."""
    given = {v.lower() for v in vocabulary} | common_words() | SENTENCE_STARTERS
    out = []
    for word in _words(title):
        word = _clean(word)
        low = word.lower()
        if not word or word.isupper() or word in names.tokens or low in given:
            continue
        if word[:1].islower() or any(stem in given for stem in _stems(re.split(r"['’-]", low)[0])):
            continue
        if word not in out:
            out.append(word)
    return out


def _stems(word: str) -> list[str]:
    """A word and what it may be inflected from ("blames" -> blame, "delayed" -> delay)."""
    out = [word]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            out.append(word[: -len(suffix)] + repl)
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            out += [word[: -len(suffix)] + "e", word[: -len(suffix)]]
    return out


def headline_problems(
    title: str,
    subject: Subject,
    names: WorldNames,
    vocabulary: Iterable[str] = (),
    examples: Iterable[str] = (),
) -> list[str]:
    """What is wrong with a news headline on its own: it names nobody of the event (actor
    or target), names someone or somewhere the world lacks, gives a wrong role, repeats
    five words in a row of a worked example (``examples``), or is the summary copied or
    not a headline."""
    out = []
    echoed = set().union(*(_ngrams(e) for e in examples)) & _ngrams(title)
    if echoed:
        out.append(f"headline: repeats the example ({' '.join(sorted(echoed)[0])!r})")
    who = [p for p in (subject.actor, subject.target) if p]
    if not any(names.mentions(title, p) for p in who):
        out.append(f"actor: does not name {names.people[subject.actor].full}, who did it")
    invented = title_invented(title, names, vocabulary)
    if invented:
        out.append(f"invented: names {', '.join(invented[:4])}, not in {names.title}")
    roles = _role_claims(title, names)
    if roles:
        out.append(f"role: {roles[0]}")
    repeated = _repeated(title, names)
    if repeated:
        out.append(f"headline: says {repeated!r} twice")
    unsupported = unsupported_words(title, subject, names)
    if len(unsupported) > 1:  # one word of its own is a headline's licence ("Homes")
        out.append(f"headline: says what the event does not ({', '.join(unsupported[:4])})")
    out.extend(_headline_form(title, subject))
    return out


def _repeated(title: str, names: WorldNames) -> str | None:
    """A word a headline says twice ("Councillor Councillor", "Protest With Protest"),
    other than a joining word or a name two people share (the Marchettis)."""
    seen: set[str] = set()
    for word in map(_clean, _words(title)):
        low = word.lower()
        if low in seen:
            return word
        if low not in FUNCTION_WORDS and word not in names.person_words:
            seen.add(low)
    return None


# Verbs a headline tells an event with in its own words ("argued" -> "Clash", "saved" ->
# "Rescues"): no fact of their own, unlike "Wins" or "Bridge".
HEADLINE_VERBS = frozenset(
    """clash spar row slam blast hit vow back quit probe hail urge face rescue save help
    meet warn call ask seek lead stage rally speak tell revive collapse argue""".split()
)


# Past tenses of the verbs event summaries use whose present ("led" -> "leads") shares
# no four letters with them; a headline tells the event in the present.
IRREGULAR_PAST = {
    "led": "leads", "gave": "gives", "threw": "throws", "took": "takes", "broke": "breaks",
    "went": "goes", "had": "has", "held": "holds", "sold": "sells", "taught": "teaches",
    "caught": "catches", "told": "tells", "made": "makes", "struck": "strikes",
    "spread": "spreads", "said": "says", "met": "meets", "won": "wins", "lost": "loses",
    "ran": "runs", "fell": "falls", "found": "finds", "brought": "brings", "left": "leaves",
    "began": "begins", "came": "comes", "saw": "sees", "got": "gets", "paid": "pays",
    "shut": "shuts", "hit": "hits", "put": "puts", "wrote": "writes", "spoke": "speaks",
    "sang": "sings", "stole": "steals", "fought": "fights", "bought": "buys",
    "kept": "keeps", "stood": "stands", "sent": "sends", "built": "builds", "drove": "drives",
}  # fmt: skip


def present_tense(word: str) -> str | None:
    """The third person present of a past tense ("collapsed" -> "collapses", "helped" ->
    "helps", "snapped" -> "snaps", "replied" -> "replies", "led" -> "leads"); None when
    ``word`` (lower case) is no past tense this knows."""
    if word in IRREGULAR_PAST:
        return IRREGULAR_PAST[word]
    if not word.endswith("ed") or len(word) < 5:
        return None
    if word.endswith("ied"):
        return word[:-3] + "ies"
    common = common_words()
    stem = word[:-2]
    if stem + "e" in common and stem not in common:  # collapsed, argued, saved
        return stem + "es"
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsfz":  # snapped
        stem = stem[:-1]
    if stem.endswith(("s", "sh", "ch", "x", "z")):  # kissed, pushed
        return stem + "es"
    return stem + "s"


# Headline verbs that tell an event of the summary's verbs more briefly ("argued" ->
# "Clashes"), keyed by the summary word's first four letters.
HEADLINE_SYNONYMS = {
    "argu": ("clashes", "spars"), "shou": ("clashes",), "save": ("rescues",),
    "revi": ("rescues",), "insu": ("slams",), "jab": ("slams",), "endo": ("backs",),
    "punc": ("hits",), "aske": ("asks", "urges"),
}  # fmt: skip


def _same_word(a: str, b: str) -> bool:
    """The same word, or forms of one: the first four letters ("leaks" and "leaked"), or
    a past tense and its present ("led" and "leads")."""
    return (
        a == b
        or (len(a) >= 4 and len(b) >= 4 and a[:4] == b[:4])
        or IRREGULAR_PAST.get(a) == b
        or IRREGULAR_PAST.get(b) == a
    )


def unsupported_words(title: str, subject: Subject, names: WorldNames) -> list[str]:
    """Words of a headline that say what the event does not: content words that are no
    world name or title, no headline verb and no form of a word of the event's summary
    ("Ines Alvarez Flames Win Election" for a speech: Flames, Win)."""
    said = [w.lower() for w in map(_clean, _words(subject.summary)) if w]
    out = []
    for word in map(_clean, _words(title)):
        low = word.lower()
        if not word or word in names.tokens or low in FUNCTION_WORDS or low in TITLES:
            continue
        if any(stem in HEADLINE_VERBS for stem in _stems(low)):
            continue
        if not any(_same_word(low, s) for s in said) and word not in out:
            out.append(word)
    return out


def _headline_form(title: str, subject: Subject) -> list[str]:
    """A headline that is missing, the event summary copied, or not a headline."""
    summary = subject.summary.strip().rstrip(".").lower()
    head = title.strip().rstrip(".").lower()
    said = set(_words(summary))
    words = _words(head)
    # every word the summary's (a verb in the present is the headline's own telling)
    copied = len(words) >= 4 and all(w in said for w in words)
    if not head or head == summary or (copied and len(words) >= 0.7 * len(said)):
        return ["headline: the headline is missing or is the event summary copied"]
    if len(head.split()) < 3 or head.endswith(":") or _SCAFFOLD.search(head):
        return [f"headline: {title.strip()!r} is not a headline"]
    glued = re.search(r"[a-z][A-Z]|\w-\w+-|-$|(?<!\w)-|'\w*'|\w-\d", title.strip())
    if glued:
        return [f"headline: {title.strip()!r} runs words together"]
    if _SENTENCE_LIKE.search(title):
        return [f"headline: {title.strip()!r} reads like a sentence, not a headline"]
    last = words[-1] if words else ""
    if (
        head.endswith((",", ";", "(", "-", "—"))
        or last in _DANGLING
        or head.count("(") != head.count(")")
    ):
        return [f"headline: {title.strip()!r} stops mid-phrase"]
    return []


# "Walter Pike is a retired fisherman who ...": a sentence (often the prompt's), no headline
_SENTENCE_LIKE = re.compile(r"\b(is|are|was|were|has been|had been) (a|an|the)\b", re.IGNORECASE)
# a headline's last word that leaves it unfinished ("... was interrupted by a")
_DANGLING = frozenset(
    """a an the of to by with and or but that who which whose was were is are has have
    had at in on for from as his her their its our my your be been being will would""".split()
)
# words that carry no fact of their own in a headline: those plus a few prepositions
FUNCTION_WORDS = _DANGLING | frozenset(
    "after over before into out up down off about amid than not no new".split()
)


_PARA_SPLIT = re.compile(r"\n\s*\n")
# whitespace after a sentence's end (not after "Dr." or "Mr.")
_SENTENCE_BREAK = re.compile(
    "".join(rf"(?<!\b{t}\.)" for t in TITLE_ABBREVIATIONS)
    + r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]”’]))\s+"
)
_NGRAM = 5  # words in a row shared with an example post: the example echoed
# the prompt's own instructions and labels, repeated in a post
_SCAFFOLD_ECHO = re.compile(
    r"\b(how it feels|your last draft|bear in mind|no other names|blank lines?|the article ends"
    r"|on your mind lately|what just happened|in the first person|paragraphs?|word count"
    r"|headlines?|this sentence|first sentence|1st person)\b"
    r"|\bthe article\s*:",
    re.IGNORECASE,
)


def _ngrams(text: str, n: int = _NGRAM) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _words(text)]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _split_sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_BREAK.split(paragraph) if s.strip()]


def sentence_faults(
    sentence: str,
    subject: Subject,
    names: WorldNames,
    vocabulary: Iterable[str] = (),
    echoes: set[tuple[str, ...]] | None = None,
) -> list[str]:
    """The rules one sentence breaks on its own (``invented``, ``role``, ``kin``,
    ``wrong_place``, ``third_person``, ``echo``, ``death``): a sentence that names someone
    the world lacks, gives a wrong role or kin, moves the event elsewhere, has a feed or
    chat author name themselves, repeats five words in a row of a worked example or the
    prompt's instructions ("How it feels: ...", "Your last draft was rejected"), or has
    someone die (nobody does in the world)."""
    out = []
    if invented_names(sentence, names, vocabulary):
        out.append("invented")
    if _role_claims(sentence, names):
        out.append("role")
    if _kin_claims(sentence, names):
        out.append("kin")
    if subject.place and not names.names_place(sentence, subject.place):
        for pid, forms in names.places.items():
            if pid != subject.place and len(forms[-1]) > 4 and _has(sentence, forms[-1]):
                out.append("wrong_place")
                break
    if subject.channel in ("feed", "chat") and _has(sentence, names.people[subject.author].full):
        out.append("third_person")
    if (echoes and _ngrams(sentence) & echoes) or _SCAFFOLD_ECHO.search(sentence):
        out.append("echo")
    if _DEATH.search(sentence):
        out.append("death")
    return out


# Nobody in the world dies or is killed: a sentence saying so invents it (SmolLM2 on a
# collapse: "90% of the people in the school died", "knocked down by a bomb").
_DEATH = re.compile(
    r"\b(died|dies|dead|death|deaths|killed|kills|murder(?:ed)?|funeral|passed away|bomb)\b",
    re.IGNORECASE,
)


def prune(
    fields: dict[str, str],
    subject: Subject,
    names: WorldNames,
    vocabulary: Iterable[str] = (),
    keep: str = "",
    examples: Iterable[str] = (),
) -> tuple[dict[str, str], list[str]]:
    """The post without its body's sentences that break a rule on their own
    (:func:`sentence_faults`), and the rules of the sentences dropped.

    A sentence starting with ``keep`` (the answer's given beginning) stays. Paragraphs
    left empty go. When nothing would be left, the post is returned as it is, so that
    the validator rejects it with its reasons, or emptied (rejected as too short) when
    an echo, which only pruning sees, was among them. The rest of the post is still judged by
    :func:`problems`: pruning can leave a post that no longer names the actor, and then
    it fails."""
    body = fields.get("body", "")
    echoes: set[tuple[str, ...]] = set()
    for example in examples:
        echoes |= _ngrams(example)
    vocabulary = list(vocabulary)
    dropped: list[str] = []
    paragraphs = []
    for para in _PARA_SPLIT.split(body):
        kept = []
        for sentence in _split_sentences(para):
            if keep and sentence.startswith(keep.strip()[:40]):
                kept.append(sentence)
                continue
            faults = sentence_faults(sentence, subject, names, vocabulary, echoes)
            if faults:
                dropped.extend(f for f in faults if f not in dropped)
            else:
                kept.append(sentence)
        if kept:
            paragraphs.append(" ".join(kept))
    if not dropped:
        return fields, []
    if not paragraphs:  # all of it broke a rule: an echo only pruning sees empties the post
        return ({**fields, "body": ""} if "echo" in dropped else fields), dropped
    return {**fields, "body": "\n\n".join(paragraphs)}, dropped


def rule_of(problem: str) -> str:
    """The rule a problem string names (``"actor: ..."`` -> ``"actor"``)."""
    return problem.split(":", 1)[0]
