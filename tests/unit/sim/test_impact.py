"""Impact thresholds, authors, and cascade re-scoring."""

from __future__ import annotations

from sim.decide import score
from sim.impact import Story, choose_author, render_requests, rescore
from sim.world import load_world
from tests.unit.sim.catalog_edit import with_npcs
from topics.models import EventHappened


def event(type_: str, total_parts: tuple[float, float, float, float], **kw) -> EventHappened:
    fields = dict(
        event_id="ev_1",
        run_id="r",
        tick=40,
        sim_minute=600,
        type=type_,
        actor="mayor_helen_park",
        summary="something",
        witnesses=[],
    )
    fields.update(kw)
    return EventHappened(impact=score(*total_parts), **fields)


def test_threshold_decides_channels() -> None:
    index = with_npcs(load_world("town").catalog, posting_propensity=1.0)  # always willing
    actor = index.npc_ids[0]
    low = Story(event("argument", (0, 0, 0, 0), actor=actor))
    assert render_requests(index, low) == []
    high = Story(event("argument", (1, 1, 1, 1), actor=actor, target=index.npc_ids[1]))
    channels = {r.channel for r in render_requests(index, high)}
    assert channels == set(index.catalog.event_types["argument"].channels)
    assert render_requests(index, high) == []  # never requested twice


def test_cascade_rescoring_crosses_news_threshold() -> None:
    index = load_world("town")
    etype = index.catalog.event_types["argument"]
    news = etype.channels["news"].threshold
    story = Story(
        event("argument", (0.6, 0.7, 0.5, 0.0), actor=index.npc_ids[0], target=index.npc_ids[1])
    )
    first = {r.channel for r in render_requests(index, story)}  # news: no propensity draw
    assert "news" not in first and story.event.impact.total < news
    for _ in range(4):
        rescore(story)
    assert story.event.impact.total >= news
    assert [r.channel for r in render_requests(index, story)] == ["news"]


def test_journalist_author_is_deterministic_and_not_a_participant() -> None:
    index = load_world("town")
    ev = event("argument", (1, 1, 1, 1), actor=index.journalists[0], target=index.npc_ids[3])
    a = choose_author(index, ev, "journalist")
    assert a == choose_author(index, ev, "journalist")
    assert a in index.journalists and a not in (ev.actor, ev.target)
