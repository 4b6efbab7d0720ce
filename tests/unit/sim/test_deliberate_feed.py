"""Focal NPCs decide their reactions to the feed with the LLM (sim.deliberate through
sim.feed and sim.barrier): a focal reader still reads, its request lists what it read and
offers the catalog's feed kind (``react``), and an accepted reaction is the reaction event
a rule reaction would be, with its follows and counts; a refused or missing one falls back
to the rules. The same for any partition count, and replayed from the log."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from sim.decide import Ctx
from sim.deliberate import check, deliberating, resolve
from sim.feed import FeedRead, reaction_event, read_feed, reads
from sim.impact import relation_of
from sim.local import LocalRun, recorded
from sim.replay import RunLog, plan_branch, replay
from sim.snapshot import assemble
from sim.state import State, seed_state
from sim.world import WorldIndex
from tests.unit.sim.catalog_edit import rebuild, tick_at, with_feed
from topics.models import DecisionMade, DecisionRequested, FeedPost

TICKS = 72  # day 1 until 18:00: the feed is full from the morning on
TYPES = ("liked_post", "replied_post", "reposted_post")


def made(req: DecisionRequested, answer: dict[str, Any]) -> DecisionMade:
    return req.decided("ok", answer=answer, reason=answer.get("reason"), attempts=1)


def reactive(req: DecisionRequested) -> DecisionMade:
    """A fake LLM that reacts to the first post it read (like, reply or repost, by the
    request id) and otherwise waits."""
    react = req.situation["allowed"].get("react")
    if react is None:
        return made(req, {"action": "wait", "reason": "nothing to do"})
    kind = TYPES[int(req.request_id[-2:], 16) % len(TYPES)]
    return made(
        req, {"action": "react", "event_type": kind, "post": react["posts"][0], "reason": "hm"}
    )


@pytest.fixture(scope="module")
def feed_town(town: WorldIndex) -> WorldIndex:
    return with_feed(town.catalog)


def play(index: WorldIndex, shards: int, ticks: int = TICKS, **kw: Any) -> LocalRun:
    kw.setdefault("decider", reactive)
    run = LocalRun(index, "react", 5, shards, decide_budget=4, **kw)
    for _ in range(ticks):
        run.step()
    return run


@pytest.fixture(scope="module")
def reacting(feed_town: WorldIndex) -> LocalRun:
    return play(feed_town, 1, snapshot_every=24)


def asked_with_posts(run: LocalRun) -> list[DecisionRequested]:
    return [r for r in run.requests if "posts" in r.situation]


# ---- the request --------------------------------------------------------------------------------


def test_a_focal_readers_request_lists_what_it_read_and_offers_react(reacting: LocalRun) -> None:
    asked = asked_with_posts(reacting)
    assert asked, "no focal NPC read anything"
    window, closing = reacting.index.catalog.feed.window_ticks, 0
    for req in asked:
        npc = req.npcs[0]
        got = sorted(
            (x for x in reacting.exposures if x.tick == req.tick and x.npc_id == npc),
            key=lambda x: x.rank,
        )
        # what it read that is still in the feed at the due tick is left to the LLM
        read = [x for x in got if x.post_tick + window >= req.due_tick]
        keys = [x.post_key for x in read]
        assert keys and [p["post"] for p in req.situation["posts"]] == keys
        # it read as anyone does, but the rules drew no reaction: the LLM decides
        assert all(x.reaction is None and x.reaction_event_id is None for x in read)
        closing += len(got) - len(read)
        assert req.situation["allowed"]["react"]["posts"] == keys
        variants = req.answer_schema["oneOf"]
        react = next(v for v in variants if v["properties"]["action"] == {"const": "react"})
        assert react["properties"]["post"] == {"enum": keys}
        assert set(react["properties"]["event_type"]["enum"]) <= {*TYPES, "argued_online"}
        assert all(k in req.prompt for k in keys)
        first = req.situation["posts"][0]
        author = next(x.author for x in read if x.post_key == first["post"])
        assert first["author"] == author and first["author_name"] in req.prompt
    assert closing, "no focal reader read a post about to leave the feed"
    # nobody else is offered it, and a cohort's members react by the rules
    assert all("react" not in r.situation["allowed"] for r in reacting.requests if r not in asked)
    assert any(x.reaction for x in reacting.exposures), "the rules drew no reaction at all"


def test_without_the_feed_a_focal_npcs_request_is_as_before(town: WorldIndex) -> None:
    run = play(town, 1, 48)
    assert run.requests and not run.exposures
    assert all(
        "posts" not in r.situation and "react" not in r.situation["allowed"] for r in run.requests
    )
    assert all("Posts you read" not in r.prompt for r in run.requests)


def test_field_ActionKind_feed_makes_the_kind_a_reaction_to_what_was_read(
    feed_town: WorldIndex,
) -> None:
    cat = feed_town.catalog
    assert any(a.feed for a in cat.decide.actions)
    # the same kind, not a feed kind: nobody's reactions are left to the LLM
    plain = [a.model_copy(update={"feed": False}) for a in cat.decide.actions if a.id != "react"]
    index = rebuild(cat, decide=cat.decide.model_copy(update={"actions": plain}))
    run = play(index, 1, 48)
    assert run.requests and not asked_with_posts(run)
    tick = run.tick_message(48, 0).model_copy(update={"focal": [["eleanor_hart"]]})
    assert deliberating(index, tick, run.states, tick.focal) == set()
    assert deliberating(feed_town, tick, run.states, tick.focal) == {"eleanor_hart"}


# ---- the decision at the due tick ---------------------------------------------------------------


KIND = {
    "liked_post": "like",
    "replied_post": "reply",
    "reposted_post": "repost",
    "argued_online": "feud",
}


def test_an_accepted_reaction_is_the_readers_event_and_is_counted(reacting: LocalRun) -> None:
    answers = {d.request_id: d.answer for d in reacting.decisions}
    taken = [o for o in reacting.outcomes if o.action == "react" and o.outcome == "accepted"]
    assert taken, "no reaction accepted"
    by_id = {e.event_id: e for e in reacting.events}
    llm: Counter[tuple[str, str]] = Counter()
    for o in taken:
        ev = by_id[o.event_id or ""]
        answer = answers[o.request_id] or {}
        read = next(
            x for x in reacting.exposures if x.npc_id == o.npc_id and x.post_key == answer["post"]
        )
        assert ev.source == "llm" and ev.actor == o.npc_id and ev.tick == o.tick
        assert ev.type == o.event_type and ev.target == read.author == o.target
        assert ev.refs == [read.event_id]
        llm[(read.post_key, KIND[ev.type])] += 1
    # the posts' counters hold the LLM's reactions beside the rules'
    window = reacting.clock.feed_posts
    assert any(llm[(p.key, k)] for p in window for k in KIND.values())
    for p in window:
        mine = [x for x in reacting.exposures if x.post_key == p.key]
        assert p.seen == len(mine)
        assert p.likes == sum(x.reaction == "like" for x in mine) + llm[(p.key, "like")]
        assert p.reposts == sum(x.reaction == "repost" for x in mine) + llm[(p.key, "repost")]
        assert p.replies == sum(x.reaction in ("reply", "feud") for x in mine) + (
            llm[(p.key, "reply")] + llm[(p.key, "feud")]
        )
    done = {d.tick: d for d in reacting.completed}
    for tick in {o.tick for o in taken}:
        rules = sum(1 for x in reacting.exposures if x.tick == tick and x.reaction)
        mine = sum(1 for o in taken if o.tick == tick)
        assert done[tick].reactions == rules + mine


def post_by(author: str, key: str = "fp_00000000000000a1", tick: int = 46) -> FeedPost:
    return FeedPost(
        key=key,
        post_id=f"post_{key}",
        event_id=f"ev_{key}",
        tick=tick,
        channel="feed",
        author=author,
        actor=author,
        type="gossip",
        score=0.5,
    )


def reader(index: WorldIndex, npc: str, seen: list[FeedPost], **edit: Any) -> State:
    state: State = orjson.loads(orjson.dumps(seed_state(index, npc)))
    state["seen"] = [[p.tick + index.catalog.feed.window_ticks, p.key] for p in seen]
    state.update(edit)
    return state


def react_to(post: FeedPost, event_type: str = "liked_post") -> dict[str, Any]:
    return {"action": "react", "event_type": event_type, "post": post.key, "reason": "x"}


def decision(answer: dict[str, Any], npc: str, tick: int = 47) -> DecisionMade:
    return DecisionMade(
        request_id="dq_test",
        run_id="r",
        tick=tick,
        due_tick=tick + 1,
        shard=0,
        npcs=[npc],
        status="ok",
        answer=answer,
        prompt_hash="0" * 16,
    )


# day 1 12:00: Eleanor Hart (at the town hall) reads posts by Bea Summers and by her rival
# Victor Crane
NOON = 48


def test_a_liked_author_is_followed_and_a_rival_reply_is_a_feud_that_unfollows(
    feed_town: WorldIndex,
) -> None:
    bea, victor = post_by("bea_summers"), post_by("victor_crane", "fp_00000000000000b2")
    tick = Ctx(feed_town, tick_at(NOON, [bea, victor]))
    state = reader(feed_town, "eleanor_hart", [bea, victor], fol=["victor_crane"])
    tally = FeedRead()
    got, ev = resolve(
        tick, "eleanor_hart", state, decision(react_to(bea), "eleanor_hart"), "dq_test", tally
    )
    assert got.outcome == "accepted" and got.reason_code is None and ev is not None
    assert ev.source == "llm" and ev.type == "liked_post" and ev.target == "bea_summers"
    assert [(e.field, e.other, e.delta) for e in ev.effects if e.field == "follow"] == [
        ("follow", "bea_summers", 1)
    ]
    assert tally.counts == {bea.key: [0, 1, 0, 0]} and tally.events == [ev]
    # the record names the post and the reaction: storage counts it in the post's reach
    assert (got.post_id, got.reaction) == (bea.post_id, "like")
    # the same as the rules' reaction event, apart from who chose it
    rules = reaction_event(
        feed_town,
        tick.tick,
        feed_town.catalog.event_types["liked_post"],
        "eleanor_hart",
        state,
        bea,
        1,
    )
    assert ev.model_copy(update={"source": "feed"}) == rules
    # a reply to a rival is a feud, and unfollows
    tally = FeedRead()
    answer = react_to(victor, "replied_post")
    got, ev = resolve(tick, "eleanor_hart", state, decision(answer, "eleanor_hart"), "q", tally)
    assert got.outcome == "accepted" and ev is not None
    assert ev.type == got.event_type == "argued_online"
    assert [(e.other, e.delta) for e in ev.effects if e.field == "follow"] == [("victor_crane", -1)]
    assert tally.counts == {victor.key: [0, 0, 0, 1]}
    assert (got.post_id, got.reaction) == (victor.post_id, "feud")
    assert relation_of(feed_town, ev) == "reply"  # written up in its thread, like the rules'


@pytest.mark.parametrize("reason", ["unknown_post", "post_gone"])
def test_a_reaction_to_a_post_not_read_or_gone_is_refused_and_the_rules_choose(
    feed_town: WorldIndex, reason: str
) -> None:
    bea, other = post_by("bea_summers"), post_by("frank_dolan", "fp_00000000000000c3")
    read, window = ([bea], [bea, other]) if reason == "unknown_post" else ([bea, other], [bea])
    tick = Ctx(feed_town, tick_at(NOON, window))
    state = reader(feed_town, "eleanor_hart", read)
    assert check(tick, "eleanor_hart", state, react_to(bea)).reason is None
    assert check(tick, "eleanor_hart", state, react_to(other)).reason == reason
    tally = FeedRead()
    got, ev = resolve(
        tick, "eleanor_hart", state, decision(react_to(other), "eleanor_hart"), "q", tally
    )
    assert (got.outcome, got.reason_code) == ("rejected", reason)
    assert (got.post_id, got.reaction) == (None, None)  # the rules chose: not a reaction
    assert ev is None or ev.source != "llm"
    assert tally.counts == {} and tally.events == []


def test_a_reaction_without_its_post_breaks_the_schema(feed_town: WorldIndex) -> None:
    bea = post_by("bea_summers")
    tick = Ctx(feed_town, tick_at(NOON, [bea]))
    state = reader(feed_town, "eleanor_hart", [bea])
    answer = {"action": "react", "event_type": "liked_post"}
    assert check(tick, "eleanor_hart", state, answer).reason == "schema"


# ---- determinism, replay, branches ---------------------------------------------------------------


def content(run: LocalRun) -> tuple[Any, ...]:
    return (
        run.hashes,
        sorted((x.tick, x.npc_id, x.rank, x.post_key, x.reaction) for x in run.exposures),
        sorted(e.event_id for e in run.events),
        sorted(
            (o.decision_id, o.outcome, o.reason_code, o.event_id)
            for o in run.outcomes
            if o.action == "react"
        ),
        [(d.tick, d.reactions, d.feed_counts) for d in run.completed],
    )


def test_the_same_for_one_and_three_partitions(feed_town: WorldIndex, reacting: LocalRun) -> None:
    three = play(feed_town, 3)
    assert content(three) == content(reacting)


def log_of(run: LocalRun) -> RunLog:
    return RunLog.of(
        run.start_command(),
        run.completed,
        run.events,
        run.parts,
        decisions=run.decisions,
        exposures=run.exposures,
    )


def test_replay_and_a_no_change_branch_reproduce_the_reactions(
    feed_town: WorldIndex, reacting: LocalRun
) -> None:
    log = log_of(reacting)
    report = replay(feed_town, log)
    assert report.identical, report.first_difference
    at = 47
    plan = plan_branch(feed_town, log, at, n_shards=2)
    child = LocalRun.from_snapshot(
        feed_town,
        assemble(plan.parts)[at],
        run_id=plan.run_id,
        n_shards=2,
        decider=recorded(log.decisions),
        answers=log.decisions,
    )
    for _ in range(TICKS - at - 1):
        child.step()
    assert child.hashes == reacting.hashes[at + 1 :]
    mine = sorted(e.event_id for e in child.events if e.source == "llm")
    assert mine == sorted(e.event_id for e in reacting.events if e.source == "llm" and e.tick > at)
    assert any(e.type in KIND for e in child.events if e.source == "llm")


def test_a_focal_reader_leaves_to_the_llm_only_posts_still_in_the_feed_when_it_applies(
    town: WorldIndex,
) -> None:
    # every read draws a reaction by the rules (all rates 1): the deferred ones draw none
    index = with_feed(town.catalog, like_rate=1.0, reply_rate=1.0, repost_rate=1.0)
    window = index.catalog.feed.window_ticks
    closing = post_by("frank_dolan", "fp_00000000000000d4", tick=NOON - window)
    staying = post_by("frank_dolan", "fp_00000000000000e5", tick=NOON - 1)
    tick = tick_at(NOON, [closing, staying]).model_copy(update={"decide_deadline": 1})
    npc = next(n for n in index.npc_ids if n != "frank_dolan" and reads(index, tick, n))
    states = {npc: reader(index, npc, [])}
    rules = read_feed(index, tick, [npc], states)
    assert {x.post_key: x.reaction is not None for x in rules.exposures} == {
        closing.key: True,
        staying.key: True,
    }
    left = read_feed(index, tick, [npc], states, defer={npc})
    assert left.deferred == {npc: [staying]}
    got = {x.post_key: x.reaction for x in left.exposures}
    assert got[staying.key] is None and got[closing.key] is not None
    assert len(left.exposures) == len(rules.exposures)  # it read the same
    assert [e.refs for e in left.events] == [[closing.event_id]]
