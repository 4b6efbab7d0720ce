"""Impact: the agent that applies the impact rules (:mod:`sim.impact`) to the event stream.

Reads ``events``; writes ``render-requests`` and, for each re-score, the event with its
new impact on ``scored-events`` (the sink stores events from ``events`` directly and
keeps the highest score of each: storage migration 0005).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from sim.impact import Story, render_requests, rescore
from sim.world import WorldIndex, load_world
from streams.app import Streams
from topics import EVENTS, RENDER_REQUESTS, SCORED_EVENTS
from topics.codec import DecodeError, decode_checked

log = logging.getLogger(__name__)

MAX_TRACKED_EVENTS = 200_000  # stories kept for re-scoring, oldest forgotten first
BATCH = 1000  # events scored per step at most
BATCH_WITHIN_S = 0.01  # or what arrived within this long


def register(streams: Streams) -> None:
    """Register the impact agent."""
    stories: OrderedDict[str, Story] = OrderedDict()

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
        async for batch in streams.event_batches(stream, BATCH, BATCH_WITHIN_S):
            for raw in batch:
                await score(raw)
            await streams.outbox.send()
