"""Impact rules: which events get written up, by whom, and how a story grows as it spreads.

Each event arrives with its base impact (computed by its shard from static data and
state at the start of the tick). When a later event references it (gossip about a
scandal, a reaction to a speech), the referenced event's cascade component grows and
it is re-scored: a story can cross the news threshold later ("breaking"). A reference to
a reply or a repost also re-scores the story at the root of its thread: a repost of a
repost spreads the original story.

Pure: the impact agent (:mod:`streams.impact`) feeds it events and sends what it returns.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from sim.decide import score
from sim.feed import post_key
from sim.world import WorldIndex
from topics.fastcheck import struct_for
from topics.models import EventHappened, ParentPost, RenderRequested, StoryState
from worldfeed.ids import derive_id, stable_hash64

CASCADE_PER_REFERENCE = 0.25  # cascade added to a story each time a later event refers to it
MAX_THREAD_DEPTH = 32  # replies and reposts followed up to a thread's root, at most


@dataclass
class Story:
    """An event the impact stage remembers, for re-scoring.

    ``event`` is the model, or, for an event that passed the strict check, the checker's
    struct (the same fields, ~6x cheaper to get): :meth:`model` builds the model when
    the event is published (a render request, a re-score), which few events are.
    """

    event: Any  # EventHappened, or the struct of EVENTS.checker()
    references: int = 0
    requested: set[str] = field(default_factory=set)

    def model(self) -> EventHappened:
        """The event as its model (built once, from the struct)."""
        if not isinstance(self.event, EventHappened):
            self.event = EventHappened.model_validate(msgspec.to_builtins(self.event))
        return self.event


def choose_author(index: WorldIndex, event: EventHappened, who: str) -> str | None:
    """The NPC who writes about an event on a channel, by the channel rule's ``author``."""
    if who == "actor":
        return event.actor
    if who == "target":
        return event.target
    if who == "witness":
        return event.witnesses[0] if event.witnesses else None
    if who == "journalist":
        pool = [j for j in index.journalists if j not in (event.actor, event.target)]
        if not pool:
            return None
        return pool[stable_hash64(event.event_id, "journalist") % len(pool)]
    return None


PROPENSITY_CHANNELS = frozenset({"feed", "chat"})  # news is a journalist's job, not a whim
TWO64 = float(1 << 64)


def willing(index: WorldIndex, event: EventHappened, channel: str, author: str) -> bool:
    """Whether ``author`` writes this event up on ``channel``: on feed and chat, with
    chance ``posting_propensity`` (0 never, 1 always); news always.

    The draw is a stable hash of the event's content (tick, type, actor, target, place,
    not the run id), the author and the channel: the same on replay, on a branch and on
    every re-score of the story.
    """
    if channel not in PROPENSITY_CHANNELS:
        return True
    npc = index.cards.get(author)
    if npc is None:
        return True
    if npc.posting_propensity >= 1.0:
        return True
    draw = stable_hash64(
        "post",
        event.tick,
        event.type,
        event.actor,
        event.target or "",
        event.place or "",
        author,
        channel,
    )
    return draw / TWO64 < npc.posting_propensity


Relation = Literal["reply", "repost"]


def relation_of(index: WorldIndex, event: Any) -> Relation | None:
    """``reply`` or ``repost`` for a feed reaction that is a post of its own (a reply, a
    feud, a repost), the rules' or an LLM decision's; None for any other event."""
    if event.source not in ("feed", "llm") or not event.refs:
        return None
    kinds = index.catalog.feed.reactions
    if event.type in (kinds.reply, kinds.feud):
        return "reply"
    if event.type == kinds.repost:
        return "repost"
    return None


PARENT_TEXT_CHARS = 600


def parent_post(index: WorldIndex, reaction: Any, parent: EventHappened) -> ParentPost | None:
    """The post a reply or repost answers: of the posts ``parent`` made on the feed's
    channels, the one whose content id the reaction's event id was derived from
    (:func:`sim.feed.reaction_event`); None if none matches (the catalog changed).
    The text is the parent event's summary: the parent's LLM text is written later and
    elsewhere, and a prompt built from it would depend on timing and partitions."""
    relation = relation_of(index, reaction)
    etype = index.catalog.event_types.get(parent.type)
    if relation is None or etype is None:
        return None
    for channel, rule in sorted(etype.channels.items()):
        if channel not in index.catalog.feed.channels:
            continue
        author = choose_author(index, parent, rule.author)
        if author is None or author != reaction.target:
            continue
        key = post_key(parent.event_id, channel, author)
        made = derive_id("ev", reaction.tick, reaction.type, reaction.actor, author, key)
        if made != reaction.event_id:
            continue
        request_id = derive_id("rq", parent.run_id, parent.event_id, channel, author)
        return ParentPost(
            post_id=derive_id("post", request_id),
            relation=relation,
            author=author,
            channel=channel,
            event_id=parent.event_id,
            text=parent.summary.strip()[:PARENT_TEXT_CHARS] or parent.type,
        )
    return None


def render_requests(
    index: WorldIndex, story: Story, parent: ParentPost | None = None
) -> list[RenderRequested]:
    """Requests for every channel whose threshold the event's score passes, not yet requested,
    whose author is willing (:func:`willing`); ``parent``: the post a reply or repost
    answers (:func:`parent_post`)."""
    event = story.event
    assert event.impact is not None  # noqa: S101 - shards always set it
    etype = index.catalog.event_types.get(event.type)
    if etype is None:
        return []
    out = []
    for channel, rule in sorted(etype.channels.items()):
        if channel in story.requested or event.impact.total < rule.threshold:
            continue
        author = choose_author(index, event, rule.author)
        if author is None or not willing(index, event, channel, author):
            continue
        story.requested.add(channel)
        out.append(
            RenderRequested(
                request_id=derive_id("rq", event.run_id, event.event_id, channel, author),
                run_id=event.run_id,
                channel=channel,
                author=author,
                template=rule.template,
                score=event.impact.total,
                event=story.model(),
                parent=parent,
            )
        )
    return out


def rescore(story: Story) -> None:
    """Raise a story's cascade component for one more reference and recompute its total."""
    story.references += 1
    event = story.model()
    imp = event.impact
    assert imp is not None  # noqa: S101
    event.impact = score(imp.novelty, imp.conflict, imp.status, imp.cascade + CASCADE_PER_REFERENCE)


MAX_STORIES = 200_000  # a safety net beside the age bound: the oldest added is forgotten first
COMPACT_SLACK = 1024  # age heaps are rebuilt once they hold this many more entries than stories

Key = tuple[str, str]  # (run id, event id)


@dataclass
class Scored:
    """What one event yields: render requests, the stories it re-scored (to publish), the
    stories it added or changed (to persist, the new one first) and the stories it made the
    book forget (by age or by the count bound: to tombstone)."""

    requests: list[RenderRequested] = field(default_factory=list)
    rescored: list[EventHappened] = field(default_factory=list)
    changed: list[Story] = field(default_factory=list)
    forgotten: list[Key] = field(default_factory=list)


@dataclass
class StoryBook:
    """The impact stage's memory: every run's stories, by (run, event id), for re-scoring.

    Pure: :mod:`streams.impact` feeds it the event stream (and persists what :meth:`add`
    says changed); a branch derives the parent's book as of its branch tick from the
    parent's events (:func:`book_of`), and sends the stories still open to the branch's
    impact stage (:meth:`restore`).

    Bounded by age: when a run's newest event reaches tick ``t``, its stories of ticks
    before ``t - story_max_age_ticks`` (the world's ``world.json``) are forgotten, before
    that event's references are looked up; so an event of tick ``t`` re-scores only
    stories of ticks ``>= t - story_max_age_ticks``, whatever the order of the events
    within a tick. The stream and every in-process use (:func:`book_of`, replay, branches)
    apply this same rule. ``max_stories`` is a safety net over all runs (the first added
    is forgotten first).
    """

    max_stories: int = MAX_STORIES
    stories: OrderedDict[Key, Story] = field(default_factory=OrderedDict)
    newest: dict[str, int] = field(default_factory=dict)  # run -> newest event tick seen
    _ages: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # run -> (tick, id) heap
    _entries: int = 0  # entries in all age heaps (some of stories already forgotten)
    _dropped: list[Key] = field(default_factory=list)  # forgotten since the last _take_dropped

    def add(self, index: WorldIndex, event: Any) -> Scored | None:
        """Take one event (model or checked struct); None if it was seen (a redelivery),
        or is older than its run's age bound (a redelivery of a story already forgotten)."""
        key = (event.run_id, event.event_id)
        if key in self.stories:
            return None
        max_age = index.catalog.world.story_max_age_ticks
        if self._too_old(event.run_id, event.tick, max_age):
            return None
        self._advance(event.run_id, event.tick, max_age)
        story = self._keep(key, Story(event))
        out = Scored(self._requests(index, story))
        changed = {key: story}
        for ref in event.refs:
            earlier = self.stories.get((event.run_id, ref))
            if earlier is None:
                continue
            for spread in self._spread(index, earlier):
                rescore(spread)
                out.rescored.append(spread.model())
                out.requests.extend(self._requests(index, spread))
                changed[(event.run_id, spread.event.event_id)] = spread
        out.changed = list(changed.values())
        out.forgotten = self._take_dropped()
        return out

    def _spread(self, index: WorldIndex, story: Story) -> list[Story]:
        """The stories a reference to ``story`` spreads: the story itself and, when it is a
        reply or repost, the story at the root of its thread (a repost of a repost passes
        the original story on, so a repost chain can make it news). The chain is followed
        through remembered stories only, at most :data:`MAX_THREAD_DEPTH` steps."""
        root, seen = story, {story.event.event_id}
        for _ in range(MAX_THREAD_DEPTH):
            if relation_of(index, root.event) is None:
                break
            up = self.stories.get((root.event.run_id, root.event.refs[0]))
            if up is None or up.event.event_id in seen:
                break
            root = up
            seen.add(root.event.event_id)
        return [story] if root is story else [story, root]

    def _requests(self, index: WorldIndex, story: Story) -> list[RenderRequested]:
        """:func:`render_requests`, with the parent post of a reply or repost (from the
        story it refers to, if remembered: else it is written up without its thread)."""
        event = story.event
        parent = None
        if relation_of(index, event) is not None:
            earlier = self.stories.get((event.run_id, event.refs[0]))
            if earlier is not None:
                parent = parent_post(index, event, earlier.model())
        return render_requests(index, story, parent)

    def restore(self, index: WorldIndex, event: EventHappened) -> Scored:
        """Remember a story copied from a parent run (``event.restored`` is its state);
        what it changed and forgot, as :meth:`add` says."""
        state = event.restored or StoryState()
        plain = event.model_copy(update={"restored": None})
        return self.load(index, Story(plain, state.references, set(state.requested)))

    def load(self, index: WorldIndex, story: Story) -> Scored:
        """Remember a story as it was (restored from a changelog or a parent run), under the
        age bound of ``index``'s world: a story already too old is not kept (it is in
        ``forgotten``)."""
        event = story.event
        key = (event.run_id, event.event_id)
        max_age = index.catalog.world.story_max_age_ticks
        if self._too_old(event.run_id, event.tick, max_age):
            self.stories.pop(key, None)
            return Scored(forgotten=[key])
        self._advance(event.run_id, event.tick, max_age)
        self.stories.pop(key, None)  # a newer state of a story: it replaces the old one
        self._keep(key, story)
        return Scored(changed=[story], forgotten=self._take_dropped())

    def drop_runs(self, run_ids: Iterable[str]) -> int:
        """Forget every story of these runs from memory (their partition moved away: not
        tombstones, the changelog keeps them for the next owner); how many were dropped."""
        runs = set(run_ids)
        if not runs:
            return 0
        gone = [key for key in self.stories if key[0] in runs]
        for key in gone:
            del self.stories[key]
        for run in runs:
            self.newest.pop(run, None)
            self._entries -= len(self._ages.pop(run, ()))
        return len(gone)

    def state_of(self, run_id: str, event_id: str) -> tuple[EventHappened, StoryState] | None:
        """A story's event (current impact) and state, if remembered."""
        story = self.stories.get((run_id, event_id))
        if story is None:
            return None
        return story.model(), StoryState(
            references=story.references, requested=sorted(story.requested)
        )

    def _too_old(self, run_id: str, tick: int, max_age: int) -> bool:
        newest = self.newest.get(run_id)
        return newest is not None and tick < newest - max_age

    def _advance(self, run_id: str, tick: int, max_age: int) -> None:
        """A story of ``tick`` arrives: forget the run's stories too old for it."""
        if tick <= self.newest.get(run_id, -1):
            return
        self.newest[run_id] = tick
        heap = self._ages.get(run_id)
        while heap and heap[0][0] < tick - max_age:
            _, event_id = heapq.heappop(heap)
            self._entries -= 1
            if self.stories.pop((run_id, event_id), None) is not None:
                self._dropped.append((run_id, event_id))

    def _keep(self, key: tuple[str, str], story: Story) -> Story:
        self.stories[key] = story
        heapq.heappush(self._ages.setdefault(key[0], []), (story.event.tick, key[1]))
        self._entries += 1
        while len(self.stories) > max(1, self.max_stories):
            self._dropped.append(self.stories.popitem(last=False)[0])
        if self._entries > 2 * len(self.stories) + COMPACT_SLACK:
            self._compact()
        return story

    def _compact(self) -> None:
        """Rebuild the age heaps from the stories remembered (entries of stories forgotten
        by the count bound pile up otherwise)."""
        ages: dict[str, list[tuple[int, str]]] = {}
        for (run, event_id), story in self.stories.items():
            ages.setdefault(run, []).append((story.event.tick, event_id))
        for heap in ages.values():
            heapq.heapify(heap)
        self._ages = ages
        self._entries = len(self.stories)

    def _take_dropped(self) -> list[Key]:
        out, self._dropped = self._dropped, []
        return out


# ---- the stories' changelog encoding (streams.impact persists every story it changes) -------

STORY_FORMAT = 1  # the first byte of an encoded story; a value of another format is skipped


class StoryDecodeError(ValueError):
    """A stored story that cannot be read back (says what is wrong with it)."""


_Stored = msgspec.defstruct(
    "StoredStory",
    [
        ("references", Annotated[int, msgspec.Meta(ge=0)]),
        ("requested", list[str]),
        ("event", struct_for(EventHappened)),
    ],
    array_like=True,
)
_DECODER = msgspec.msgpack.Decoder(_Stored)
_ENCODER = msgspec.msgpack.Encoder()


def story_key(run_id: str, event_id: str) -> bytes:
    """A story's key in the changelog: ``<run id>/<event id>``."""
    return f"{run_id}/{event_id}".encode()


def encode_story(story: Story) -> bytes:
    """A story as one changelog value: the format byte, then MessagePack of
    ``[references, requested channels (sorted), event]`` (the event with its current
    impact, its fields by name: what a render request about it carries). A town story is
    ~1.0 KB (its JSON ~1.15 KB); encoding takes ~4 us from the checked struct, ~40 us
    from a model (a story already published)."""
    event = story.event
    if isinstance(event, EventHappened):
        event = event.model_dump(mode="json", exclude={"restored"})
    body = [story.references, sorted(story.requested), event]
    return bytes((STORY_FORMAT,)) + _ENCODER.encode(body)


def decode_story(value: bytes | None) -> Story:
    """A story from :func:`encode_story`'s bytes, checked as strictly as an event on the
    topic is; raises :class:`StoryDecodeError` with the reason."""
    if not value:
        raise StoryDecodeError("empty value")
    if value[0] != STORY_FORMAT:
        raise StoryDecodeError(f"format {value[0]}, expected {STORY_FORMAT}")
    try:
        stored: Any = _DECODER.decode(value[1:])  # a _Stored (a struct built at run time)
    except msgspec.MsgspecError as exc:
        raise StoryDecodeError(f"format {STORY_FORMAT}: {exc}") from exc
    event = stored.event
    if event.impact is None:
        raise StoryDecodeError(f"event {event.event_id} has no impact")
    if event.restored is not None:
        event.restored = None
    return Story(event, stored.references, set(stored.requested))


@dataclass
class Loaded:
    """What :func:`load_stories` did: the stories it kept, those it forgot at once (too
    old: to tombstone) and the records it skipped, each with the reason."""

    kept: int = 0
    runs: set[str] = field(default_factory=set)  # the runs of the stories kept
    forgotten: list[Key] = field(default_factory=list)
    skipped: list[tuple[bytes, str]] = field(default_factory=list)


def load_stories(
    book: StoryBook,
    records: Iterable[tuple[bytes, bytes]],
    index_of: Callable[[str], WorldIndex],
) -> Loaded:
    """Put stories read back from the changelog (key, value) into ``book``; a record that
    cannot be read, names another key or an unknown world is skipped with the reason."""
    out = Loaded()
    for key, value in records:
        try:
            story = decode_story(value)
            event = story.event
            if story_key(event.run_id, event.event_id) != key:
                raise StoryDecodeError(f"holds story {event.run_id}/{event.event_id}")
            try:
                index = index_of(event.world)
            except Exception as exc:  # a world that no longer loads: the story is bad data
                raise StoryDecodeError(f"world {event.world!r}: {exc}") from exc
        except StoryDecodeError as exc:
            out.skipped.append((key, str(exc)))
            continue
        loaded = book.load(index, story)
        if loaded.changed:
            out.kept += 1
            out.runs.add(event.run_id)
        out.forgotten.extend(loaded.forgotten)
    return out


def book_of(
    index: WorldIndex, events: Iterable[EventHappened]
) -> tuple[StoryBook, list[RenderRequested]]:
    """The story book after these events (in tick order), as the impact stage built it,
    and the render requests it made on the way (the events themselves are not changed)."""
    book = StoryBook()
    requests: list[RenderRequested] = []
    for ev in sorted(events, key=lambda e: e.tick):  # stable: within a tick, log order
        # a copy: a re-score replaces the copy's impact (never mutates it in place)
        scored = book.add(index, ev.model_copy())
        if scored is not None:
            requests.extend(scored.requests)
    return book, requests
