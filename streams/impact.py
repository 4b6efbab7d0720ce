"""Impact: the agent that applies the impact rules (:mod:`sim.impact`) to the event stream.

Reads ``events``; writes ``render-requests`` and, for each re-score, the event with its
new impact on ``scored-events`` (the sink stores events from ``events`` directly and
keeps the highest score of each: storage migration 0005).

The story book lives in memory and in the changelog-backed table ``stories``
(:class:`~streams.changelog.ChangelogTable`, partitioned like ``events``: a run's
events, keyed by run id, and so its stories are on one partition). Every story an event
adds or re-scores is written (:func:`sim.impact.encode_story`), every story the book
forgets (its age bound, its count bound) is a tombstone. When a partition is revoked its
runs' stories leave memory; when it is (re)loaded they are rebuilt from the table before
its next event is scored, so a worker that replaces a dead one re-scores the stories its
predecessor kept.
"""

from __future__ import annotations

import logging
from typing import Any

from sim.impact import Scored, StoryBook, encode_story, load_stories, story_key
from sim.world import load_world
from streams.app import Streams
from topics import EVENTS, RENDER_REQUESTS, SCORED_EVENTS
from topics.codec import DecodeError, decode_checked
from worldfeed import metrics

log = logging.getLogger(__name__)

BATCH = 1000  # events scored per step at most
BATCH_WITHIN_S = 0.01  # or what arrived within this long


def register(streams: Streams) -> None:
    """Register the impact agent and its story table."""
    book = StoryBook()
    # restored by streams.changelog; the book is the in-memory copy
    table = streams.changelog_table("stories", EVENTS, keep_values=False)
    runs_on: dict[int, set[str]] = {}  # partition of `events` -> the runs whose stories we hold

    def rebuild(partition: int, records: dict[bytes, bytes]) -> None:
        """The partition's stories, as the table now holds them (after a restore)."""
        book.drop_runs(runs_on.pop(partition, set()))
        loaded = load_stories(book, records.items(), load_world)
        for key, reason in loaded.skipped:
            log.warning(
                "impact: story %r in %s partition %s skipped: %s",
                key[:200],
                table.topic,
                partition,
                reason,
            )
        for run_id, event_id in loaded.forgotten:  # older than the age bound allows now
            table.delete(partition, story_key(run_id, event_id))
        runs_on[partition] = loaded.runs
        log.info(
            "impact: partition %s: %s stories of %s runs restored, %s skipped, %s forgotten",
            partition,
            loaded.kept,
            len(loaded.runs),
            len(loaded.skipped),
            len(loaded.forgotten),
        )

    table.on_restored.append(rebuild)

    @streams.app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types only sender/signal
    async def forget_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        # another worker may score these runs now; rebuilt from the table if they return
        for tp in revoked:
            if tp.topic == table.source_topic:
                book.drop_runs(runs_on.pop(tp.partition, set()))

    def persist(partition: int, scored: Scored) -> None:
        for story in scored.changed:
            event = story.event
            table.put(partition, story_key(event.run_id, event.event_id), encode_story(story))
        for run_id, event_id in scored.forgotten:
            table.delete(partition, story_key(run_id, event_id))

    async def score(raw: Any) -> Scored | None:
        try:  # strict and fast: no model built (Story.model builds it if it is published)
            event = decode_checked(EVENTS, raw.value)
        except DecodeError as exc:
            await streams.dead_letter("impact", raw, str(exc))
            return None
        if event.impact is None:
            await streams.dead_letter("impact", raw, "event has no base impact")
            return None
        try:
            index = load_world(event.world)
        except Exception as exc:  # noqa: BLE001 - an event naming an unknown world is bad input
            await streams.dead_letter("impact", raw, f"world {event.world!r}: {exc}")
            return None
        runs_on.setdefault(raw.message.partition, set()).add(event.run_id)
        if event.restored is not None:  # a parent's story, copied into a branch
            return book.restore(index, EVENTS.adapter().validate_json(raw.value))
        scored = book.add(index, event)
        if scored is None:
            return None  # redelivered
        for req in scored.requests:
            streams.send_batched(RENDER_REQUESTS, req.author, req)  # see topics.RENDER_REQUESTS
        for earlier in scored.rescored:
            # the sink stores the base event from `events`; a re-score is stored over it
            streams.send_batched(SCORED_EVENTS, earlier.event_id, earlier)
        return scored

    @streams.app.agent(streams.topic(EVENTS), name="score_impact")
    async def score_impact(stream: Any) -> None:
        """Score events, re-score the stories they reference, request renders.

        Takes the events in batches and produces what they yield as record batches,
        handed to the producer before the next batch is taken (faust flushes the
        producer before it commits those offsets: at least once). The stories a batch
        changed are written to the table only once its render requests and re-scores are
        acknowledged: a story the table holds is one whose output is out, so a worker
        that restores it skips its event when it is delivered again, and loses nothing.
        """
        handled = metrics.STAGE_MESSAGES.labels("impact")
        async for batch in streams.event_batches(stream, BATCH, BATCH_WITHIN_S):
            handled.inc(len(batch))
            for partition in sorted({raw.message.partition for raw in batch}):
                await table.ready(partition)  # its stories, restored if it moved
            writes: list[tuple[int, Scored]] = []
            for raw in batch:
                scored = await score(raw)
                if scored is not None:
                    writes.append((raw.message.partition, scored))
            if writes:
                await streams.flush()
            for partition, scored in writes:
                persist(partition, scored)
            await streams.outbox.send()
