"""Impact: decides which events get written up, and re-scores stories as they spread.

Reads ``events``; writes ``render-requests`` and, for each re-score, the event with its
new impact on ``scored-events`` (the sink stores events from ``events`` directly and
keeps the highest score of each: storage migration 0005).

Each event arrives with its base impact (computed by its shard from static data and
state at the start of the tick). When a later event references it (gossip about a
scandal, a reaction to a speech), the referenced event's cascade component grows and
it is re-scored: a story can cross the news threshold later ("breaking").
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sim.decide import score
from sim.world import WorldIndex, load_world
from streams.app import Streams
from streams.codec import DecodeError, decode_checked
from topics import EVENTS, RENDER_REQUESTS, SCORED_EVENTS
from topics.models import EventHappened, RenderRequested
from worldfeed.ids import derive_id, stable_hash64

log = logging.getLogger(__name__)

CASCADE_PER_REFERENCE = 0.25
MAX_TRACKED_EVENTS = 200_000


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


def render_requests(index: WorldIndex, story: Story) -> list[RenderRequested]:
    """Requests for every channel whose threshold the event's score passes, not yet requested."""
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
        if author is None:
            continue
        story.requested.add(channel)
        out.append(
            RenderRequested(
                request_id=derive_id("rq", event.event_id, channel, author),
                run_id=event.run_id,
                channel=channel,
                author=author,
                template=rule.template,
                score=event.impact.total,
                event=story.model(),
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


BATCH = 1000  # events scored per step at most
BATCH_WITHIN_S = 0.01  # or what arrived within this long


def register(streams: Streams) -> None:
    """Register the impact agent."""
    stories: OrderedDict[str, Story] = OrderedDict()
    streams.services["stories"] = stories

    def request_renders(index: WorldIndex, story: Story) -> None:
        for req in render_requests(index, story):
            streams.send_batched(RENDER_REQUESTS, req.author, req)  # see topics.RENDER_REQUESTS

    async def score(raw: Any) -> None:
        try:  # strict and fast: no model built (Story.model builds it if it is published)
            event = decode_checked(EVENTS, raw.value)
        except DecodeError as exc:
            await streams.dead_letter("impact", raw, str(exc))
            return
        if event.impact is None:
            await streams.dead_letter("impact", raw, "event has no base impact")
            return
        try:
            index = load_world(event.world)
        except Exception as exc:  # noqa: BLE001 - an event naming an unknown world is bad input
            await streams.dead_letter("impact", raw, f"world {event.world!r}: {exc}")
            return
        if event.event_id in stories:
            return  # redelivered
        story = Story(event)
        stories[event.event_id] = story
        if len(stories) > MAX_TRACKED_EVENTS:
            stories.popitem(last=False)
        request_renders(index, story)
        for ref in event.refs:
            earlier = stories.get(ref)
            if earlier is None:
                continue
            rescore(earlier)
            # the sink stores the base event from `events`; a re-score is stored over it
            streams.send_batched(SCORED_EVENTS, earlier.event.event_id, earlier.model())
            request_renders(index, earlier)

    @streams.app.agent(streams.topic(EVENTS), name="score_impact")
    async def score_impact(stream: Any) -> None:
        """Score events, re-score the stories they reference, request renders.

        Takes the events in batches and produces what they yield as record batches,
        handed to the producer before the next batch is taken (faust flushes the
        producer before it commits those offsets: at least once).
        """
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            for raw in batch:
                await score(raw)
            await streams.outbox.send()
