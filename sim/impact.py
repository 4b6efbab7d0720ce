"""Impact rules: which events get written up, by whom, and how a story grows as it spreads.

Each event arrives with its base impact (computed by its shard from static data and
state at the start of the tick). When a later event references it (gossip about a
scandal, a reaction to a speech), the referenced event's cascade component grows and
it is re-scored: a story can cross the news threshold later ("breaking").

Pure: the impact agent (:mod:`streams.impact`) feeds it events and sends what it returns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from sim.decide import score
from sim.feed import post_key
from sim.world import WorldIndex
from topics.models import EventHappened, ParentPost, RenderRequested, StoryState
from worldfeed.ids import derive_id, stable_hash64

CASCADE_PER_REFERENCE = 0.25  # cascade added to a story each time a later event refers to it


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
    npc = index.catalog.npcs.get(author)
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


MAX_STORIES = 200_000  # stories kept for re-scoring, oldest forgotten first


@dataclass
class Scored:
    """What one event yields: render requests, and the stories it re-scored (to publish)."""

    requests: list[RenderRequested] = field(default_factory=list)
    rescored: list[EventHappened] = field(default_factory=list)


@dataclass
class StoryBook:
    """The impact stage's memory: every run's stories, by (run, event id), for re-scoring.

    Pure: :mod:`streams.impact` feeds it the event stream; a branch derives the parent's
    book as of its branch tick from the parent's events (:func:`book_of`), and sends the
    stories still open to the branch's impact stage (:meth:`restore`).
    """

    max_stories: int = MAX_STORIES
    stories: OrderedDict[tuple[str, str], Story] = field(default_factory=OrderedDict)

    def add(self, index: WorldIndex, event: Any) -> Scored | None:
        """Take one event (model or checked struct); None if it was seen (a redelivery)."""
        key = (event.run_id, event.event_id)
        if key in self.stories:
            return None
        story = self._keep(key, Story(event))
        out = Scored(self._requests(index, story))
        for ref in event.refs:
            earlier = self.stories.get((event.run_id, ref))
            if earlier is None:
                continue
            rescore(earlier)
            out.rescored.append(earlier.model())
            out.requests.extend(self._requests(index, earlier))
        return out

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

    def restore(self, event: EventHappened) -> None:
        """Remember a story copied from a parent run (``event.restored`` is its state)."""
        state = event.restored or StoryState()
        plain = event.model_copy(update={"restored": None})
        story = Story(plain, state.references, set(state.requested))
        self._keep((event.run_id, event.event_id), story)

    def state_of(self, run_id: str, event_id: str) -> tuple[EventHappened, StoryState] | None:
        """A story's event (current impact) and state, if remembered."""
        story = self.stories.get((run_id, event_id))
        if story is None:
            return None
        return story.model(), StoryState(
            references=story.references, requested=sorted(story.requested)
        )

    def _keep(self, key: tuple[str, str], story: Story) -> Story:
        self.stories[key] = story
        if len(self.stories) > self.max_stories:
            self.stories.popitem(last=False)
        return story


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
