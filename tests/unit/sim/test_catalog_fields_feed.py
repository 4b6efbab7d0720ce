"""feed.json's fields (catalog.models.Feed, FeedReactions), each changing what the world does."""

from __future__ import annotations

from typing import Any

import pytest

from catalog import load_catalog
from catalog.errors import CatalogError
from catalog.generate import write_world
from sim.feed import choose, react, read_feed
from sim.local import LocalRun
from sim.state import seed_state
from sim.world import WorldIndex
from tests.unit.sim.catalog_edit import rebuild, with_feed
from tests.unit.sim.test_feed import feed_of, post, state_of, tick_with


def play(index: WorldIndex, ticks: int = 64) -> LocalRun:
    run = LocalRun(index, "r", 3, n_shards=1)
    for _ in range(ticks):
        run.step()
    return run


def reacted(run: LocalRun, kind: str) -> int:
    return sum(e.reaction == kind for e in run.exposures)


def test_field_Feed_enabled_turns_the_loop_on(town: WorldIndex) -> None:
    off = play(town)
    on = play(with_feed(town.catalog))
    assert not off.exposures and on.exposures
    assert off.hashes != on.hashes


def test_field_Feed_recommender_chooses_what_is_read(town: WorldIndex) -> None:
    runs = [play(with_feed(town.catalog, recommender=r)) for r in ("affinity", "random")]
    assert [(e.npc_id, e.post_key) for e in runs[0].exposures] != [
        (e.npc_id, e.post_key) for e in runs[1].exposures
    ]
    assert {e.recommender for e in runs[1].exposures} == {"random"}


def test_field_Feed_channels_decide_which_posts_are_in_the_feed(town: WorldIndex) -> None:
    news = play(with_feed(town.catalog, channels=["news"]))
    both = play(with_feed(town.catalog))
    assert {e.channel for e in news.exposures} == {"news"}
    assert "feed" in {e.channel for e in both.exposures}


def test_field_Feed_posts_per_tick_bounds_a_ticks_posts(town: WorldIndex) -> None:
    run = play(with_feed(town.catalog, posts_per_tick=1))
    assert max(len(d.feed_posts) for d in run.completed) == 1
    assert max(len(d.feed_posts) for d in play(with_feed(town.catalog)).completed) > 1


def test_field_Feed_window_ticks_is_how_long_a_post_is_read(town: WorldIndex) -> None:
    short = play(with_feed(town.catalog, window_ticks=1))
    assert all(e.tick - e.post_tick == 1 for e in short.exposures)
    long = play(with_feed(town.catalog, window_ticks=8))
    assert max(e.tick - e.post_tick for e in long.exposures) > 1


def test_field_Feed_reads_per_tick_is_how_many_posts_a_reader_reads() -> None:
    posts = [post(f"fp_{i}", f"a{i}") for i in range(10)]
    got = choose(feed_of(reads_per_tick=5), tick_with(posts), "me", state_of(), posts)
    assert len(got) == 5


def test_field_Feed_read_chance_is_how_often_npcs_read(town: WorldIndex) -> None:
    none = play(with_feed(town.catalog, read_chance=0.0))
    more = play(with_feed(town.catalog, read_chance=1.0))
    assert not none.exposures
    assert len(more.exposures) > len(play(with_feed(town.catalog, read_chance=0.3)).exposures)


def _rates(town: WorldIndex, **rates: float) -> LocalRun:
    zero = {"like_rate": 0.0, "reply_rate": 0.0, "repost_rate": 0.0}
    return play(with_feed(town.catalog, read_chance=1.0, **(zero | rates)))


def test_field_Feed_like_rate(town: WorldIndex) -> None:
    assert reacted(_rates(town, like_rate=1.0), "like") > 0
    assert reacted(_rates(town), "like") == 0


def test_field_Feed_reply_rate(town: WorldIndex) -> None:
    run = _rates(town, reply_rate=1.0)
    assert reacted(run, "reply") + reacted(run, "feud") > len(run.exposures) / 2
    none = _rates(town)
    assert reacted(none, "reply") + reacted(none, "feud") == 0


def test_field_Feed_repost_rate(town: WorldIndex) -> None:
    assert reacted(_rates(town, repost_rate=1.0), "repost") > 0
    assert reacted(_rates(town), "repost") == 0


def test_field_Feed_opinion_shift_moves_readers_toward_the_subject(town: WorldIndex) -> None:
    still = _rates(town, opinion_shift=0.0)
    moved = _rates(town, opinion_shift=20.0)
    assert still.hashes != moved.hashes
    base = with_feed(town.catalog, read_chance=1.0, like_rate=0.0, reply_rate=0.0, repost_rate=0.0)
    assert _rates(town).hashes == play(base).hashes


def test_field_Feed_follow_min_affinity_decides_who_is_followed_at_the_start(
    town: WorldIndex,
) -> None:
    everyone = with_feed(town.catalog, follow_min_affinity=-100)
    few = with_feed(town.catalog, follow_min_affinity=100)
    followed = {"family", "friend", "romantic"}
    npc = next(
        n
        for n in town.npc_ids
        if any(
            not town.tags.get((n, o), frozenset()) & followed for o in town.relationships.get(n, {})
        )
    )
    assert seed_state(everyone, npc)["fol"] == sorted(town.relationships[npc])
    assert len(seed_state(few, npc)["fol"]) < len(town.relationships[npc])


def _reaction_type(town: WorldIndex, kind: str, rate: str, **extra: Any) -> None:
    renamed = f"{kind}_renamed"
    reactions = town.catalog.feed.reactions
    original = getattr(reactions, kind)
    types = [
        t.model_copy(update={"id": renamed}) if t.id == original else t
        for t in town.catalog.event_types.values()
    ]
    feed = town.catalog.feed.model_copy(
        update={
            "enabled": True,
            "read_chance": 1.0,
            "like_rate": 0.0,
            "reply_rate": 0.0,
            "repost_rate": 0.0,
            rate: 1.0,
            "reactions": reactions.model_copy(update={kind: renamed}),
            **extra,
        }
    )
    run = play(rebuild(town.catalog, event_types=types, feed=feed))
    made = {e.type for e in run.events if e.source == "feed"}
    assert renamed in made


def test_field_FeedReactions_like(town: WorldIndex) -> None:
    _reaction_type(town, "like", "like_rate")


def test_field_FeedReactions_reply(town: WorldIndex) -> None:
    _reaction_type(town, "reply", "reply_rate")


def test_field_FeedReactions_repost(town: WorldIndex) -> None:
    _reaction_type(town, "repost", "repost_rate")


def test_field_FeedReactions_feud(town: WorldIndex) -> None:
    index = with_feed(town.catalog, reply_rate=1.0)
    reader, author = next(p for p, tags in sorted(index.tags.items()) if "rival" in tags)
    p = post("fp_r", author)
    assert react(index, tick_with([p]), reader, seed_state(index, reader), p) == "feud"
    _reaction_type(town, "feud", "reply_rate")


def test_a_feed_naming_an_unknown_reaction_type_is_refused(town: WorldIndex, tmp_path) -> None:
    feed = town.catalog.feed.model_copy(
        update={
            "enabled": True,
            "reactions": town.catalog.feed.reactions.model_copy(update={"like": "nope"}),
        }
    )
    cat = rebuild(town.catalog, feed=feed).catalog
    write_world(cat, tmp_path / "w")
    with pytest.raises(CatalogError, match="nope"):
        load_catalog(tmp_path / "w")


def test_a_world_without_feed_json_has_the_loop_off(town: WorldIndex, tmp_path) -> None:
    write_world(town.catalog, tmp_path / "w")
    (tmp_path / "w" / "feed.json").unlink()
    cat = load_catalog(tmp_path / "w")
    assert not cat.feed.enabled
    assert read_feed(WorldIndex.build(cat), tick_with([post("fp_1", "x")]), [], {}).exposures == []
