"""The feed loop (sim.feed): exposure, reactions, follows, determinism, replay and branches."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Any

import orjson
import pytest

from catalog.models import Feed
from sim.clock import RunClock, recover
from sim.feed import advance_window, choose, react, reaction_event, read_feed, top_posts
from sim.impact import book_of, relation_of
from sim.local import LocalRun
from sim.replay import RunLog, plan_branch, replay
from sim.snapshot import Snapshot, assemble, clock_sha
from sim.state import apply_effects, digest, seed_state
from sim.world import WorldIndex
from tests.unit.sim.catalog_edit import rebuild, with_feed
from topics import EXPOSURES
from topics.codec import DecodeError, decode, encode
from topics.models import ClockState, FeedPost, PostSeen, TickStarted

RECOMMENDERS = ["chronological", "affinity", "popularity", "random"]
TICKS = 96


@pytest.fixture(scope="module")
def feed_town(town: WorldIndex) -> WorldIndex:
    return with_feed(town.catalog)


def play(index: WorldIndex, shards: int, ticks: int = TICKS, **kw: Any) -> LocalRun:
    run = LocalRun(index, "r", 3, n_shards=shards, **kw)
    for _ in range(ticks):
        run.step()
    return run


def exposures(run: LocalRun) -> list[tuple[Any, ...]]:
    """What was read, in log order within a tick (shard order aside): content, not run ids."""
    return sorted((e.tick, e.npc_id, e.rank, e.post_key, e.reaction) for e in run.exposures)


def post(key: str, author: str, tick: int = 0, score: float = 0.5, **kw: Any) -> FeedPost:
    fields: dict[str, Any] = {
        "key": key,
        "post_id": f"post_{key}",
        "event_id": f"ev_{key}",
        "tick": tick,
        "channel": "feed",
        "author": author,
        "actor": author,
        "type": "gossip",
        "score": score,
    }
    return FeedPost(**(fields | kw))


def tick_with(posts: list[FeedPost], tick: int = 5, seed: int = 1) -> TickStarted:
    return TickStarted(
        run_id="r",
        seed=seed,
        world="town",
        tick=tick,
        sim_minute=tick * 15 + 12 * 60,
        step_minutes=15,
        shard=0,
        n_shards=1,
        feed=posts,
    )


def state_of(rel: dict[str, list[float]] | None = None, fol: list[str] | None = None) -> Any:
    return {
        "rep": 50.0,
        "rel": rel or {},
        "mem": [],
        "goal": {},
        "cool": {},
        "fol": fol or [],
        "seen": [],
    }


# ---- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("recommender", RECOMMENDERS)
def test_exposure_is_the_same_for_any_partition_count(town: WorldIndex, recommender: str) -> None:
    index = with_feed(town.catalog, recommender=recommender)
    one, two, four = play(index, 1), play(index, 2), play(index, 4)
    assert one.exposures, "nobody read anything"
    assert exposures(one) == exposures(two) == exposures(four)
    assert one.hashes == two.hashes == four.hashes
    reactions = [sorted(e.event_id for e in r.events if e.source == "feed") for r in (one, four)]
    assert reactions[0] and reactions[0] == reactions[1]
    assert [d.exposures for d in one.completed] == [d.exposures for d in four.completed]


def test_feed_off_leaves_states_without_follows_and_reads_nothing(town: WorldIndex) -> None:
    run = play(town, 2, 48)
    assert not run.exposures and not any(e.source == "feed" for e in run.events)
    assert all("fol" not in s and "seen" not in s for s in run.states.values())
    assert all(not d.feed_posts and not d.exposures for d in run.completed)


def test_reads_are_of_earlier_posts_in_the_window_never_twice_nor_ones_own(
    feed_town: WorldIndex,
) -> None:
    run = play(feed_town, 2)
    window = feed_town.catalog.feed.window_ticks
    assert all(e.tick - window <= e.post_tick < e.tick for e in run.exposures)
    assert all(e.author != e.npc_id for e in run.exposures)
    pairs = Counter((e.npc_id, e.post_key) for e in run.exposures)
    assert max(pairs.values()) == 1


def test_likes_and_reposts_are_counted_per_post(feed_town: WorldIndex) -> None:
    run = play(feed_town, 2, 64)  # afternoon: the feed is full
    window = run.clock.feed_posts
    assert window and any(p.likes + p.reposts + p.replies for p in window)
    for p in window:
        mine = [e for e in run.exposures if e.post_key == p.key]
        assert p.seen == len(mine)
        assert p.likes == sum(e.reaction == "like" for e in mine)
        assert p.reposts == sum(e.reaction == "repost" for e in mine)
        assert p.replies == sum(e.reaction in ("reply", "feud") for e in mine)


def test_a_reaction_is_an_event_that_refers_to_the_post(feed_town: WorldIndex) -> None:
    run = play(feed_town, 1)
    by_id = {e.event_id: e for e in run.events}
    reacted = [e for e in run.exposures if e.reaction_event_id is not None]
    assert reacted
    for seen in reacted:
        ev = by_id[seen.reaction_event_id or ""]
        assert ev.source == "feed" and ev.refs == [seen.event_id]
        assert ev.actor == seen.npc_id and ev.target == seen.author
        assert ev.event_id in {e.event_id for e in run.events if e.tick == seen.tick}


# ---- replay and branches ----------------------------------------------------------------------


PARENT = 64  # ticks of the parent run


def log_of(run: LocalRun) -> RunLog:
    return RunLog.of(run.start_command(), run.completed, run.events, run.parts)


@pytest.fixture(scope="module")
def parent(feed_town: WorldIndex) -> LocalRun:
    return play(feed_town, 2, PARENT, snapshot_every=16)


def test_replay_of_a_run_with_the_feed_is_identical(
    feed_town: WorldIndex, parent: LocalRun
) -> None:
    report = replay(feed_town, log_of(parent))
    assert report.identical, report.first_difference
    assert report.snapshots == {t: "verified" for t in (15, 31, 47, 63)}
    again = play(feed_town, 1, PARENT)
    assert exposures(again) == exposures(parent)


def test_replay_compares_the_logged_exposures(feed_town: WorldIndex, parent: LocalRun) -> None:
    start = parent.start_command()
    log = RunLog.of(
        start, parent.completed, parent.events, parent.parts, exposures=parent.exposures
    )
    assert replay(feed_town, log).identical
    victim = next(x for x in log.exposures if x.tick > 40)
    log.exposures.remove(victim)
    report = replay(feed_town, log)
    diff_ = report.first_difference
    assert diff_ is not None and (diff_.tick, diff_.what) == (victim.tick, "exposures")
    assert diff_.only_in_replay == [f"{victim.npc_id} read {victim.post_key}"]


@pytest.mark.parametrize("at", [22, 42, 51])  # ticks with posts in the feed
def test_a_no_change_branch_reproduces_exposures_and_reactions(
    feed_town: WorldIndex, parent: LocalRun, at: int
) -> None:
    plan = plan_branch(feed_town, log_of(parent), at, n_shards=3)
    assert plan.start.base is not None and plan.start.base.feed_posts
    child = LocalRun.from_snapshot(feed_town, assemble(plan.parts)[at], run_id=plan.run_id)
    for _ in range(PARENT - at - 1):
        child.step()
    assert child.hashes == parent.hashes[at + 1 :]
    later = [e for e in exposures(parent) if e[0] > at]
    assert exposures(child) == later
    assert sorted(e.event_id for e in child.events if e.source == "feed") == sorted(
        e.event_id for e in parent.events if e.source == "feed" and e.tick > at
    )


def test_follows_and_reads_are_in_snapshots_and_the_hash(
    feed_town: WorldIndex, parent: LocalRun
) -> None:
    snap = assemble(parent.parts)[31]
    assert isinstance(snap, Snapshot)
    assert all("fol" in s and "seen" in s for s in snap.states.values())
    npc = next(n for n, s in parent.states.items() if s["fol"])
    changed = orjson.loads(orjson.dumps(parent.states))
    changed[npc]["fol"] = []
    assert digest(npc, changed[npc]) != digest(npc, parent.states[npc])


def test_the_clock_rebuilds_the_feed_from_the_ticks_log(
    feed_town: WorldIndex, parent: LocalRun
) -> None:
    run = LocalRun(feed_town, parent.run_id, 3, n_shards=2)
    for upto in (42, 51, PARENT):
        while len(run.completed) < upto:
            run.step()
        clock = recover([parent.start_command()], parent.completed[:upto], 2)[parent.run_id]
        assert clock.feed_posts == run.clock.feed_posts
        assert clock.tick_message(upto, 0).feed == run.tick_message(upto, 0).feed


def test_a_clock_snapshot_without_the_feed_keeps_its_old_checksum() -> None:
    state = ClockState(tick=3, recent_events=[1, 2], recent_posts=[0, 1])
    old = state.model_dump(mode="json", exclude={"feed_window", "feed_posts"})
    payload = {"start": None, "clock": old}
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    assert clock_sha(None, state) == hashlib.sha256(canonical).hexdigest()
    with_feed_ = state.model_copy(update={"feed_window": 4, "feed_posts": [post("fp_a", "x")]})
    assert clock_sha(None, with_feed_) != clock_sha(None, state)


def test_garbage_on_the_exposures_topic_is_refused() -> None:
    for raw in (b"not json", b'{"kind": "post_seen"}', b'{"kind": "post_seen", "x": 1}'):
        with pytest.raises(DecodeError):
            decode(EXPOSURES, raw)
    seen = PostSeen(
        exposure_id="ex_1",
        run_id="r",
        tick=2,
        sim_minute=30,
        npc_id="a",
        post_key="fp_1",
        post_id="post_1",
        event_id="ev_1",
        post_tick=1,
        author="b",
        channel="feed",
        recommender="random",
        rank=0,
    )
    assert decode(EXPOSURES, encode(seen)) == seen


# ---- the clock's window -----------------------------------------------------------------------


def test_the_window_adds_counts_and_drops_old_posts() -> None:
    old, mid = post("fp_old", "a", tick=1), post("fp_mid", "b", tick=3)
    new = post("fp_new", "c", tick=4)
    after = advance_window([old, mid], 4, [new], {"fp_mid": [3, 1, 1, 0]}, window_ticks=3)
    assert [p.key for p in after] == ["fp_mid", "fp_new"]
    assert (after[0].seen, after[0].likes, after[0].reposts) == (3, 1, 1)


def test_the_worlds_top_posts_are_the_top_of_the_shards_tops() -> None:
    posts = [post(f"fp_{i}", "a", score=(i % 5) / 5) for i in range(20)]
    shards = [posts[0::3], posts[1::3], posts[2::3]]
    assert top_posts((p for s in shards for p in top_posts(s, 4)), 4) == top_posts(posts, 4)


def test_the_clock_carries_the_feed_to_every_shard(feed_town: WorldIndex) -> None:
    run = play(feed_town, 2, 20)
    clock: RunClock = run.clock
    assert clock.feed_window == feed_town.catalog.feed.window_ticks
    assert all(p.tick >= 20 - clock.feed_window for p in clock.feed_posts)
    assert run.tick_message(20, 0).feed == run.tick_message(20, 1).feed == clock.feed_posts


# ---- recommenders -----------------------------------------------------------------------------


def feed_of(**kw: Any) -> Feed:
    return Feed(enabled=True, **kw)


def test_chronological_reads_the_newest_posts_of_whom_it_follows() -> None:
    posts = [
        post("fp_1", "ann", tick=1),
        post("fp_2", "bob", tick=3),
        post("fp_3", "cat", tick=4, score=0.9),
        post("fp_4", "ann", tick=4),
    ]
    got = choose(
        feed_of(recommender="chronological"),
        tick_with(posts),
        "me",
        state_of(fol=["ann", "bob"]),
        posts,
    )
    assert [p.key for p in got] == ["fp_4", "fp_2", "fp_1"]


def test_affinity_reads_the_authors_it_likes_first() -> None:
    posts = [post("fp_1", "ann", score=0.9), post("fp_2", "bob"), post("fp_3", "cat")]
    state = state_of(rel={"bob": [60.0, 50.0, 10.0], "ann": [-40.0, 10.0, 5.0]})
    got = choose(
        feed_of(recommender="affinity", reads_per_tick=2), tick_with(posts), "me", state, posts
    )
    assert [p.key for p in got] == ["fp_2", "fp_3"]


def test_popularity_reads_the_most_liked_and_reposted_first() -> None:
    posts = [
        post("fp_1", "ann", score=0.6),
        post("fp_2", "bob", score=0.3, likes=2, reposts=3),
        post("fp_3", "cat", score=0.5, likes=1),
    ]
    got = choose(feed_of(recommender="popularity"), tick_with(posts), "me", state_of(), posts)
    assert [p.key for p in got] == ["fp_2", "fp_1", "fp_3"]


def test_random_is_a_seeded_sample_of_what_it_has_not_read() -> None:
    posts = [post(f"fp_{i}", f"a{i}") for i in range(12)]
    feed = feed_of(recommender="random")
    state = state_of()
    state["seen"] = [[9, "fp_0"], [9, "fp_1"]]
    first = choose(feed, tick_with(posts, seed=1), "me", state, posts)
    assert first == choose(feed, tick_with(posts, seed=1), "me", state, posts)
    assert len(first) == 3 and not {"fp_0", "fp_1"} & {p.key for p in first}
    others = [choose(feed, tick_with(posts, seed=s), "me", state, posts) for s in range(2, 8)]
    assert any(o != first for o in others)


def test_no_recommender_shows_an_npc_its_own_posts() -> None:
    posts = [post("fp_1", "me"), post("fp_2", "ann")]
    for rec in RECOMMENDERS:
        got = choose(
            feed_of(recommender=rec), tick_with(posts), "me", state_of(fol=["me", "ann"]), posts
        )
        assert [p.key for p in got] == ["fp_2"]


# ---- reactions and follows --------------------------------------------------------------------


def test_a_reply_between_rivals_is_a_feud_that_unfollows(town: WorldIndex) -> None:
    index = with_feed(town.catalog, reply_rate=1.0)
    pair = next((s, t) for (s, t), tags in sorted(index.tags.items()) if "rival" in tags)
    reader, author = pair
    state = seed_state(index, reader)
    state["fol"] = sorted({*state["fol"], author})
    p = post("fp_r", author, type="argument")
    kind = react(index, tick_with([p]), reader, state, p)
    assert kind == "feud"
    etype = index.catalog.event_types[index.catalog.feed.reactions.feud]
    ev = reaction_event(index, tick_with([p]), etype, reader, state, p, -1)
    before = state["rel"].get(author, [0.0, 20.0, 0.0])[0]
    mine = [e for e in ev.effects if e.npc_id == reader]
    apply_effects(state, mine, 5)
    assert state["rel"][author][0] < before
    assert author not in state["fol"]
    theirs = [e for e in ev.effects if e.npc_id == author]
    assert any(e.field == "affinity" and e.other == reader and e.delta < 0 for e in theirs)


def test_a_liked_author_is_followed(town: WorldIndex) -> None:
    index = with_feed(town.catalog, like_rate=1.0, reply_rate=0.0, repost_rate=0.0)
    reader = index.npc_ids[0]
    author = next(n for n in index.npc_ids[1:] if n not in seed_state(index, reader)["rel"])
    p = post("fp_l", author)
    tick = tick_with([p])
    state = seed_state(index, reader)
    read = read_feed(index, tick.model_copy(update={"tick": 5}), [reader], {reader: state})
    if not read.exposures:  # the reader's draw said no: find a tick on which it reads
        tick = next(
            t
            for t in (tick.model_copy(update={"tick": i, "sim_minute": 720 + i}) for i in range(99))
            if read_feed(index, t, [reader], {reader: state}).exposures
        )
        read = read_feed(index, tick, [reader], {reader: state})
    assert [e.reaction for e in read.exposures] == ["like"]
    (ev,) = read.events
    apply_effects(state, [e for e in ev.effects if e.npc_id == reader], tick.tick)
    assert author in state["fol"]
    assert read.counts == {"fp_l": [1, 1, 0, 0]}


def test_reading_a_post_about_someone_moves_the_readers_opinion(town: WorldIndex) -> None:
    index = with_feed(town.catalog, read_chance=1.0, like_rate=0.0, reply_rate=0.0, repost_rate=0.0)
    reader = next(n for n in index.npc_ids if index.relationships.get(n))
    subject = sorted(index.relationships[reader])[0]
    author = next(n for n in index.npc_ids if n not in (reader, subject))
    stranger = next(n for n in index.npc_ids if n not in index.relationships[reader])
    unknown = post("fp_u", author, actor=stranger, type="scandal_leak")
    p = post("fp_s", author, actor=subject, type="scandal_leak")
    assert index.catalog.event_types["scandal_leak"].valence == "negative"
    tick = tick_with([p])
    awake = next(
        t
        for t in (
            tick.model_copy(update={"tick": i, "sim_minute": 600 + 15 * i}) for i in range(40)
        )
        if read_feed(index, t, [reader], {reader: seed_state(index, reader)}).exposures
    )
    state = seed_state(index, reader)
    before = state["rel"][subject][0]
    read = read_feed(
        index, awake.model_copy(update={"feed": [p, unknown]}), [reader], {reader: state}
    )
    apply_effects(state, read.effects, awake.tick)
    assert state["rel"][subject][0] < before
    assert stranger not in state["rel"]  # a stranger stays one: no opinion of them
    last = p.tick + index.catalog.feed.window_ticks
    assert state["seen"] == [[last, "fp_s"], [last, "fp_u"]]


def test_affinity_is_the_order_of_liking_then_score_then_key() -> None:
    """The shortcut through the posts of the people an NPC knows ranks as a full sort."""

    rng = random.Random(5)
    people = [f"p{i}" for i in range(12)]
    for trial in range(200):
        posts = [
            post(
                f"fp_{trial}_{i}",
                rng.choice(people),
                actor=rng.choice(people),
                score=rng.choice([0.2, 0.5, 0.8]),
            )
            for i in range(rng.randint(0, 15))
        ]
        known = rng.sample(people, rng.randint(0, 6))
        state = state_of(rel={o: [rng.choice([-50.0, 0.0, 30.0, 60.0]), 40.0, 1.0] for o in known})
        state["seen"] = [[9, p.key] for p in posts[:2]]
        me = rng.choice(people)
        k = rng.randint(1, 5)

        rel = state["rel"]

        def liking(p: FeedPost, me: str = me, rel: dict[str, list[float]] = rel) -> float:
            def aff(who: str) -> float:
                return rel[who][0] if who in rel else 0.0

            return aff(p.author) + (0.0 if p.actor in (me, p.author) else 0.5 * aff(p.actor))

        cands = [p for p in posts if p.author != me and p.key not in {s[1] for s in state["seen"]}]
        want = sorted(cands, key=lambda p: (-liking(p), -p.score, p.key))[:k]
        feed = feed_of(recommender="affinity", reads_per_tick=k)
        assert choose(feed, tick_with(posts), me, state, posts) == want


def test_a_story_that_spreads_can_become_news(town: WorldIndex) -> None:
    """Reactions refer to the post's event, so the impact stage re-scores the story: with
    enough reposts a story crosses the news threshold it did not reach on its own."""
    index = with_feed(town.catalog, repost_rate=1.0)
    run = play(index, 1, PARENT)
    reactions = [e for e in run.events if e.source == "feed"]
    assert reactions
    _, spread = book_of(index, run.events)
    _, alone = book_of(index, [e for e in run.events if e.source != "feed"])
    news = {r.event.event_id for r in spread if r.channel == "news"}
    before = {r.event.event_id for r in alone if r.channel == "news"}
    promoted = news - before
    assert promoted, "no story became news by spreading"
    referred = {ref for e in reactions for ref in e.refs}
    assert promoted <= referred


def test_a_reference_to_a_repost_or_reply_also_counts_for_its_root_story(town: WorldIndex) -> None:
    """A reaction to a repost or reply refers to the post it answers, and the story at the
    root of its thread is re-scored too: every story's references are its direct ones plus
    those that reached it through a chain."""
    index = with_feed(town.catalog, repost_rate=0.1)
    run = play(index, 1, PARENT)
    events = {e.event_id: e for e in run.events}

    def root_of(event_id: str) -> str:
        seen = {event_id}
        while (e := events.get(event_id)) is not None and relation_of(index, e) is not None:
            event_id = e.refs[0]
            if event_id in seen:
                break
            seen.add(event_id)
        return event_id

    chained = [
        e
        for e in run.events
        if e.source == "feed" and e.refs and relation_of(index, events[e.refs[0]]) is not None
    ]
    assert chained, "no reaction to a repost or reply in the run"
    book, requests = book_of(index, run.events)
    want: Counter[str] = Counter()
    for e in run.events:
        for ref in e.refs:
            if ref in events:
                want[ref] += 1
                if root_of(ref) != ref:
                    want[root_of(ref)] += 1
    got = {eid: s.references for (_, eid), s in book.stories.items() if s.references}
    assert got == dict(want)


def test_a_repost_chain_can_make_its_root_story_news(town: WorldIndex) -> None:
    """A story reposted, and the repost reposted: the second repost re-scores the story
    too, and a news threshold between the two scores is crossed only through the chain."""
    index = with_feed(town.catalog)
    story = next(
        e
        for e in play(index, 1, PARENT).events
        if e.source != "feed"
        and e.target
        and "news" in index.catalog.event_types[e.type].channels
        and e.impact is not None
        and e.impact.cascade <= 0.5
    )
    etype = index.catalog.event_types[index.catalog.feed.reactions.repost]
    tick = tick_with([], tick=story.tick + 1).model_copy(update={"run_id": story.run_id})
    first = reaction_event(
        index,
        tick,
        etype,
        story.target or "",
        state_of(),
        post("a", story.actor, event_id=story.event_id, type=story.type),
        0,
    )
    reader = next(n for n in index.npc_ids if n not in (story.actor, story.target))
    second = reaction_event(
        index,
        tick,
        etype,
        reader,
        state_of(),
        post("b", first.actor, event_id=first.event_id, type=first.type),
        0,
    )

    def total(events: list[Any]) -> float:
        book, _ = book_of(index, events)
        return float(book.stories[(story.run_id, story.event_id)].model().impact.total)

    once, chained = total([story, first]), total([story, first, second])
    assert chained > once, "the repost of the repost did not re-score the story"
    rule = index.catalog.event_types[story.type].channels["news"]
    rule = rule.model_copy(update={"threshold": round((once + chained) / 2, 6)})
    types = [
        t.model_copy(update={"channels": {**t.channels, "news": rule}}) if t.id == story.type else t
        for t in index.catalog.event_types.values()
    ]
    news_index = rebuild(index.catalog, event_types=types)

    def news(events: list[Any]) -> set[str]:
        _, requests = book_of(news_index, events)
        return {r.event.event_id for r in requests if r.channel == "news"}

    assert story.event_id not in news([story, first])
    assert story.event_id in news([story, first, second])


def test_npc_snapshots_for_the_read_side_carry_follows(
    town: WorldIndex, feed_town: WorldIndex
) -> None:
    on, off = play(feed_town, 1, 4), play(town, 1, 4)
    snaps_on, snaps_off = on.shards[0]._snapshot(3), off.shards[0]._snapshot(3)
    assert all(s.follows == on.states[s.npc_id]["fol"] for s in snaps_on)
    assert any(s.follows for s in snaps_on)
    assert all(s.follows is None for s in snaps_off)
