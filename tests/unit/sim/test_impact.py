"""Impact thresholds, authors, and cascade re-scoring."""

from __future__ import annotations

from sim.decide import score
from sim.impact import Story, choose_author, render_requests, rescore, willing
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


def test_willing_is_a_stable_draw_on_the_events_content() -> None:
    town = load_world("town")
    index = with_npcs(town.catalog, posting_propensity=0.5)
    draws = []
    for i in range(200):
        ev = event("argument", (1, 1, 1, 1), actor=index.npc_ids[i % 30], tick=i, event_id=f"e{i}")
        again = ev.model_copy(update={"event_id": f"other-run-{i}", "run_id": "other"})
        d = willing(index, ev, "feed", ev.actor)
        assert d == willing(index, again, "feed", ev.actor)  # not the run: branches agree
        draws.append(d)
    assert 60 < sum(draws) < 140  # about half at propensity 0.5


def test_willing_always_and_never_and_news_unconditional() -> None:
    town = load_world("town").catalog
    ev = event("argument", (1, 1, 1, 1), actor=load_world("town").npc_ids[0])
    never, always = with_npcs(town, posting_propensity=0.0), with_npcs(town, posting_propensity=1.0)
    for channel in ("feed", "chat"):
        assert not willing(never, ev, channel, ev.actor)
        assert willing(always, ev, channel, ev.actor)
    assert willing(never, ev, "news", ev.actor)


def test_an_unwilling_author_is_asked_again_on_rescore_with_the_same_answer() -> None:
    town = load_world("town").catalog
    index = with_npcs(town, posting_propensity=0.0)
    story = Story(event("argument", (1, 1, 1, 1), actor=index.npc_ids[0], target=index.npc_ids[1]))
    assert {r.channel for r in render_requests(index, story)} == {"news"}
    rescore(story)
    assert render_requests(index, story) == []
