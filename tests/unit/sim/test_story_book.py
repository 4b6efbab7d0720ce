"""The story book's bounds (age, count) and the stories' changelog encoding."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from catalog.models import Catalog
from sim.decide import REFERENCE_MIN_WEIGHT, score
from sim.impact import (
    STORY_FORMAT,
    Story,
    StoryBook,
    StoryDecodeError,
    book_of,
    decode_story,
    encode_story,
    load_stories,
    story_key,
)
from sim.local import LocalRun
from sim.state import MEMORY_DECAY_PER_TICK
from sim.world import WorldIndex
from tests.unit.sim.catalog_edit import rebuild
from topics import EVENTS
from topics.models import EventHappened, RenderRequested

TICKS_PER_DAY = 96


def aged(cat: Catalog, ticks: int) -> WorldIndex:
    """The town with another story age bound."""
    return rebuild(cat, world=cat.world.model_copy(update={"story_max_age_ticks": ticks}))


def event(index: WorldIndex, event_id: str, tick: int, refs: list[str] | None = None) -> Any:
    """An argument between the town's first two NPCs, as the impact stage takes it (the
    checked struct, like the stream; a model in :func:`book_of`)."""
    actor, target = sorted(index.npc_ids)[:2]
    model = EventHappened(
        event_id=event_id,
        run_id="r",
        tick=tick,
        sim_minute=tick * 15,
        type="argument",
        actor=actor,
        target=target,
        summary="an argument",
        refs=refs or [],
        impact=score(0.6, 0.7, 0.5, 0.0),
    )
    return EVENTS.checker().decode(model.model_dump_json())


def played(index: WorldIndex, seed: int, ticks: int) -> list[EventHappened]:
    run = LocalRun(index, "long", seed)
    for _ in range(ticks):
        run.step()
    return run.events


def request_ids(requests: list[RenderRequested]) -> list[tuple[str, float]]:
    return [(r.request_id, r.score) for r in requests]


# ---- the age bound ------------------------------------------------------------------------


def test_field_World_story_max_age_ticks_bounds_what_a_reference_re_scores(
    town: WorldIndex,
) -> None:
    index = aged(town.catalog, 5)
    book = StoryBook()
    book.add(index, event(index, "a", 0))
    at_edge = book.add(index, event(index, "b", 5, refs=["a"]))  # 5 - 0 <= 5: remembered
    assert at_edge is not None and [e.event_id for e in at_edge.rescored] == ["a"]
    later = book.add(index, event(index, "c", 6, refs=["a"]))  # 6 - 0 > 5: forgotten first
    assert later is not None and later.rescored == [] and later.forgotten == [("r", "a")]
    assert ("r", "a") not in book.stories and ("r", "b") in book.stories
    assert book.state_of("r", "b") is not None

    wide = aged(town.catalog, 6)  # the same events under a wider bound: re-scored
    book = StoryBook()
    for ev, refs in (("a", 0), ("b", 5), ("c", 6)):
        scored = book.add(wide, event(wide, ev, refs, refs=["a"] if ev != "a" else []))
    assert scored is not None and [e.event_id for e in scored.rescored] == ["a"]


def test_age_is_per_run_and_a_redelivered_forgotten_event_is_ignored(town: WorldIndex) -> None:
    index = aged(town.catalog, 3)
    book = StoryBook()
    book.add(index, event(index, "old", 0))
    other_run = msgspec.structs.replace(event(index, "y", 50), run_id="other")
    book.add(index, other_run)  # another run's newest tick does not age run r
    assert ("r", "old") in book.stories
    assert book.add(index, event(index, "new", 10)) is not None  # ages "old" out
    assert ("r", "old") not in book.stories
    # "old" delivered again (a redelivery after a restart): too old, seen, nothing made
    assert book.add(index, event(index, "old", 0)) is None
    assert ("r", "old") not in book.stories


def test_the_count_bound_forgets_the_first_added_and_says_so(town: WorldIndex) -> None:
    book = StoryBook(max_stories=2)
    book.add(town, event(town, "a", 0))
    book.add(town, event(town, "b", 1))
    scored = book.add(town, event(town, "c", 2, refs=["a"]))
    assert scored is not None and scored.forgotten == [("r", "a")] and scored.rescored == []
    assert list(book.stories) == [("r", "b"), ("r", "c")]


def test_the_default_age_outlasts_every_reference_the_rules_make(town: WorldIndex) -> None:
    """A rule-made reference names a memory whose decayed salience (at most 1) is at least
    REFERENCE_MIN_WEIGHT: never more than the default age behind the referring event."""
    default = town.catalog.world.story_max_age_ticks
    assert MEMORY_DECAY_PER_TICK ** (default + 1) < REFERENCE_MIN_WEIGHT


@pytest.mark.parametrize("seed", [1, 3, 9])
def test_the_default_age_changes_no_render_request_over_four_days(
    town: WorldIndex, seed: int
) -> None:
    events = played(town, seed, 4 * TICKS_PER_DAY)
    bounded_book, bounded = book_of(town, events)
    unbounded_book, unbounded = book_of(aged(town.catalog, 1_000_000), events)
    assert len(bounded_book.stories) < len(unbounded_book.stories)  # the bound did forget
    assert request_ids(bounded) == request_ids(unbounded)
    for key, story in bounded_book.stories.items():
        assert story.model().impact == unbounded_book.stories[key].model().impact


def first_re_scored_request(index: WorldIndex, events: list[EventHappened]) -> int:
    """The index of the first event that makes a request for an earlier story."""
    book = StoryBook()
    for i, ev in enumerate(events):
        scored = book.add(index, ev.model_copy())
        if scored and any(r.event.event_id != ev.event_id for r in scored.requests):
            return i
    raise AssertionError("no event re-scores a story into a request")


# ---- the encoding ---------------------------------------------------------------------------


def test_a_story_round_trips_as_struct_and_as_model(town: WorldIndex) -> None:
    book = StoryBook()
    book.add(town, event(town, "a", 0))
    book.add(town, event(town, "b", 1, refs=["a"]))  # re-scores "a": now a model
    a, b = book.stories[("r", "a")], Story(event(town, "c", 1, refs=["a"]))
    assert isinstance(a.event, EventHappened) and not isinstance(b.event, EventHappened)
    for story in (a, b):
        value = encode_story(story)
        assert value[0] == STORY_FORMAT
        back = decode_story(value)
        assert (back.references, back.requested) == (story.references, story.requested)
        assert back.model() == story.model()
    assert len(encode_story(b)) < len(b.model().model_dump_json())


def scored_through_a_table(
    index: WorldIndex, events: list[EventHappened], restart_at: int | None
) -> list[str]:
    """What the stream does, without Kafka: every add's changed stories and tombstones go
    into a table; at ``restart_at`` the book is replaced by one loaded from the table.
    Returns the render requests as sent (JSON at the time they are made)."""
    table: dict[bytes, bytes] = {}
    book, sent = StoryBook(), []
    for i, ev in enumerate(events):
        if i == restart_at:  # the worker dies; its successor restores the table
            book = StoryBook()
            loaded = load_stories(book, table.items(), lambda world: index)
            assert loaded.kept == len(table) and not loaded.skipped and not loaded.forgotten
        scored = book.add(index, ev.model_copy())
        assert scored is not None
        sent.extend(r.model_dump_json() for r in scored.requests)
        for story in scored.changed:
            table[story_key(story.event.run_id, story.event.event_id)] = encode_story(story)
        for run_id, event_id in scored.forgotten:
            del table[story_key(run_id, event_id)]
    return sent


def test_a_book_rebuilt_from_its_changelog_scores_as_the_one_that_never_stopped(
    town: WorldIndex,
) -> None:
    index = aged(town.catalog, 30)  # small enough that tombstones happen within a day
    events = sorted(played(index, 1, TICKS_PER_DAY), key=lambda e: e.tick)
    split = first_re_scored_request(index, events)  # the restart comes just before it
    reference = scored_through_a_table(index, events, None)
    assert request_ids(book_of(index, events)[1]) == [
        (r.request_id, r.score) for r in map(RenderRequested.model_validate_json, reference)
    ]
    assert scored_through_a_table(index, events, split) == reference
    forgetful: list[str] = []  # a restarted worker before stories were persisted
    book = StoryBook()
    for i, ev in enumerate(events):
        if i == split:
            book = StoryBook()
        scored = book.add(index, ev.model_copy())
        assert scored is not None
        forgetful.extend(r.model_dump_json() for r in scored.requests)
    assert forgetful != reference


def test_garbage_in_the_table_is_skipped_with_the_reason(town: WorldIndex) -> None:
    book = StoryBook()
    book.add(town, event(town, "a", 0))
    good = encode_story(book.stories[("r", "a")])
    unknown = msgspec.structs.replace(event(town, "w", 0), world="atlantis")
    records = [
        (b"r/x", b""),
        (b"r/y", bytes((STORY_FORMAT + 1,)) + good[1:]),
        (b"r/z", bytes((STORY_FORMAT,)) + b"\xc1 not msgpack"),
        (b"r/v", bytes((STORY_FORMAT,)) + msgspec.msgpack.encode([-1, [], {"event_id": "v"}])),
        (b"r/b", good),  # the story of another key
        (b"r/w", encode_story(Story(unknown))),
        (b"r/a", good),
    ]

    def index_of(world: str) -> WorldIndex:
        if world != "town":
            raise FileNotFoundError(f"no world {world}")
        return town

    fresh = StoryBook()
    loaded = load_stories(fresh, records, index_of)
    assert loaded.kept == 1 and list(fresh.stories) == [("r", "a")] and loaded.runs == {"r"}
    reasons = dict(loaded.skipped)
    assert reasons[b"r/x"] == "empty value"
    assert reasons[b"r/y"] == f"format {STORY_FORMAT + 1}, expected {STORY_FORMAT}"
    assert reasons[b"r/z"].startswith(f"format {STORY_FORMAT}: ")
    assert ">= 0" in reasons[b"r/v"] or "Expected" in reasons[b"r/v"]
    assert reasons[b"r/b"] == "holds story r/a"
    assert reasons[b"r/w"].startswith("world 'atlantis': ")
    with pytest.raises(StoryDecodeError, match="empty value"):
        decode_story(None)


def test_stories_too_old_for_the_table_s_newest_are_forgotten_on_load(town: WorldIndex) -> None:
    index = aged(town.catalog, 3)
    book = StoryBook()
    book.add(index, event(index, "a", 0))
    old = encode_story(book.stories[("r", "a")])
    book.add(index, event(index, "b", 2))
    young = encode_story(book.stories[("r", "b")])
    book.add(index, event(index, "c", 9))  # a tombstone for "a" and "b" that was lost
    newest = encode_story(book.stories[("r", "c")])
    fresh = StoryBook()
    loaded = load_stories(
        fresh, [(b"r/a", old), (b"r/b", young), (b"r/c", newest)], lambda w: index
    )
    assert sorted(loaded.forgotten) == [("r", "a"), ("r", "b")]
    assert list(fresh.stories) == [("r", "c")]
