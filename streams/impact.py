"""Impact: the agent that applies the impact rules (:mod:`sim.impact`) to the event stream.

Reads ``events``; writes ``render-requests`` and, for each re-score, the event with its
new impact on ``scored-events`` (the sink stores events from ``events`` directly and
keeps the highest score of each: storage migration 0005).
"""

from __future__ import annotations

import logging
from typing import Any

from sim.impact import StoryBook
from sim.world import load_world
from streams.app import Streams
from topics import EVENTS, RENDER_REQUESTS, SCORED_EVENTS
from topics.codec import DecodeError, decode_checked
from worldfeed import metrics

log = logging.getLogger(__name__)

BATCH = 1000  # events scored per step at most
BATCH_WITHIN_S = 0.01  # or what arrived within this long


def register(streams: Streams) -> None:
    """Register the impact agent."""
    book = StoryBook()

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
        if event.restored is not None:  # a parent's story, copied into a branch
            book.restore(EVENTS.adapter().validate_json(raw.value))
            return
        scored = book.add(index, event)
        if scored is None:
            return  # redelivered
        for req in scored.requests:
            streams.send_batched(RENDER_REQUESTS, req.author, req)  # see topics.RENDER_REQUESTS
        for earlier in scored.rescored:
            # the sink stores the base event from `events`; a re-score is stored over it
            streams.send_batched(SCORED_EVENTS, earlier.event_id, earlier)

    @streams.app.agent(streams.topic(EVENTS), name="score_impact")
    async def score_impact(stream: Any) -> None:
        """Score events, re-score the stories they reference, request renders.

        Takes the events in batches and produces what they yield as record batches,
        handed to the producer before the next batch is taken (faust flushes the
        producer before it commits those offsets: at least once).
        """
        handled = metrics.STAGE_MESSAGES.labels("impact")
        async for batch in streams.event_batches(stream, BATCH, BATCH_WITHIN_S):
            handled.inc(len(batch))
            for raw in batch:
                await score(raw)
            await streams.outbox.send()
