"""The feed is part of the world: which posts NPCs read, and what they do about them (pure).

Off unless the catalog's ``feed.json`` enables it (:class:`catalog.models.Feed`); a world
without it plays, hashes and snapshots exactly as before.

**Posts.** A post, to the world, is a render request an event makes at its base score
(:func:`sim.impact.render_requests`: threshold, author, posting propensity), on one of the
feed's channels: a deterministic quantity, known when the event happens, long before the
LLM writes the post (which decides nothing in the world). Each shard reports its tick's
top posts by score (:func:`top_posts`) in ``ShardTickDone``; the clock keeps the world's
top ``posts_per_tick`` of each tick for ``window_ticks`` ticks, adds up what the shards
counted about them (exposures, likes, reposts, replies) and sends the window with every
``TickStarted`` (:func:`advance_window`). A post's ``key`` is its content id (event,
channel, author): states, rankings and draws use it, so a branch, whose post ids differ,
reads the same feed as its parent.

**Exposure.** At the start of a tick every awake NPC with a posting habit (a posting
propensity and a channel to write on) reads, with a seeded chance, up to
``reads_per_tick`` posts it has not read, chosen by the catalog's recommender from the
window (:func:`choose`). What it reads depends on its state at the start of the tick and
the posts of earlier ticks only, never on arrival time, so it is the same for any
partition count. Each exposure is a :class:`~topics.models.PostSeen` message.

**Reactions.** The rules (:func:`react`) draw like, reply, repost or nothing from the
reader's traits, its relationship to the author and the post's impact, with an RNG
derived from (seed, tick, reader, post key); a reply between rivals is a feud. A reaction
is an event of the catalog's reaction type (its effects and impact apply; ``refs`` name
the post's event, so the impact stage re-scores the story as it spreads). Reading a post
about someone moves the reader's affinity toward that person (by the event's valence and
the reader's trust in the author); liking or reposting an author not followed follows
them, a feud unfollows. Every change is an effect applied at the tick barrier like any
other (``seen``, ``follow``, ``affinity``), so it is in the state hash and in snapshots.

A focal NPC asked alone (:func:`sim.deliberate.deliberating`) reads like anyone, but the
rules draw no reaction for it: its decision request lists what it read, and an accepted
reaction (:func:`sim.deliberate.check`) is the same reaction event, with ``source="llm"``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from catalog.models import EventType, Feed
from sim.calendar import hour_of
from sim.decide import base_impact, type_effects
from sim.director import CONFLICT_AFFINITY
from sim.state import State, top_memories
from sim.world import WorldIndex
from topics.models import (
    Effect,
    EventHappened,
    FeedPost,
    PostSeen,
    RenderRequested,
    TickStarted,
)
from worldfeed.ids import SEP, derive_id, hash_prefix, hash_text, rng_for

TWO64 = float(1 << 64)
Reaction = Literal["like", "reply", "repost", "feud"]
# a reaction's counter in a post's [exposures, likes, reposts, replies]
COUNTED = {"like": 1, "repost": 2, "reply": 3, "feud": 3}
POPULARITY = (0.05, 0.1, 0.05)  # popularity = score + these x (likes, reposts, replies)


def post_key(event_id: str, channel: str, author: str) -> str:
    """A post's content id: the same in every run that has its event."""
    return derive_id("fp", event_id, channel, author)


def posts_of(feed: Feed, requests: Iterable[RenderRequested]) -> list[FeedPost]:
    """The feed posts of a tick's render requests (those on the feed's channels)."""
    out = []
    for req in requests:
        if req.channel not in feed.channels:
            continue
        ev = req.event
        out.append(
            FeedPost(
                key=post_key(ev.event_id, req.channel, req.author),
                post_id=derive_id("post", req.request_id),
                event_id=ev.event_id,
                tick=ev.tick,
                channel=req.channel,
                author=req.author,
                actor=ev.actor,
                target=ev.target,
                type=ev.type,
                score=req.score,
            )
        )
    return out


def top_posts(posts: Iterable[FeedPost], n: int) -> list[FeedPost]:
    """The ``n`` best posts by score, ties by key: the top of a union is the union of tops."""
    return sorted(posts, key=lambda p: (-p.score, p.key))[:n]


def add_counts(
    total: dict[str, list[int]], counts: Mapping[str, Sequence[int]]
) -> dict[str, list[int]]:
    """``total`` with ``counts`` added, per post key and counter (integers: any grouping)."""
    for key, got in counts.items():
        have = total.setdefault(key, [0, 0, 0, 0])
        for i, n in enumerate(got):
            have[i] += n
    return total


def advance_window(
    window: Sequence[FeedPost],
    tick: int,
    posts: Sequence[FeedPost],
    counts: Mapping[str, Sequence[int]],
    window_ticks: int,
) -> list[FeedPost]:
    """The feed after ``tick``: its counts added to the posts, the tick's posts in, and the
    posts of ticks before ``tick + 1 - window_ticks`` out."""
    oldest = tick + 1 - window_ticks
    out = []
    for post in [*window, *posts]:
        if post.tick < oldest:
            continue
        got = counts.get(post.key)
        if got:
            post = post.model_copy(
                update={
                    "seen": post.seen + got[0],
                    "likes": post.likes + got[1],
                    "reposts": post.reposts + got[2],
                    "replies": post.replies + got[3],
                }
            )
        out.append(post)
    return out


def reads(index: WorldIndex, tick: TickStarted, npc_id: str, prefix: str | None = None) -> bool:
    """Whether an NPC reads the feed on this tick: awake, with a posting habit (a channel to
    write on), and its seeded draw under ``read_chance x posting_propensity`` (its habit).
    ``prefix``: ``hash_prefix(tick.seed, tick.tick)``, computed here if not given."""
    if index.location[npc_id][hour_of(tick.sim_minute)] is None:
        return False
    npc = index.card(npc_id)
    if npc.posting_propensity <= 0 or not npc.channels:
        return False
    chance = index.catalog.feed.read_chance * npc.posting_propensity
    if chance >= 1.0:
        return True
    if prefix is None:
        prefix = hash_prefix(tick.seed, tick.tick)
    draw = hash_text(f"{prefix}{npc_id}{SEP}read{SEP}") / TWO64
    return draw < chance


def _affinity(state: State, other: str) -> float:
    rel = state["rel"].get(other)
    return float(rel[0]) if rel else 0.0


def ranked(feed: Feed, posts: Sequence[FeedPost]) -> list[FeedPost]:
    """The feed in the recommender's order as far as it is the same for every reader (once
    per tick): newest first (chronological), by popularity (popularity), by score
    (affinity: the order among posts the reader feels nothing about) or by key (random)."""
    rec = feed.recommender
    if rec == "chronological":
        return sorted(posts, key=lambda p: (-p.tick, -p.score, p.key))
    if rec == "popularity":
        a, b, c = POPULARITY
        return sorted(
            posts, key=lambda p: (-(p.score + a * p.likes + b * p.reposts + c * p.replies), p.key)
        )
    if rec == "affinity":
        return sorted(posts, key=lambda p: (-p.score, p.key))
    return sorted(posts, key=lambda p: p.key)


def choose(
    feed: Feed,
    tick: TickStarted,
    npc_id: str,
    state: State,
    posts: Sequence[FeedPost],
    order: Sequence[FeedPost] | None = None,
    about: Mapping[str, Sequence[FeedPost]] | None = None,
    rank: Mapping[str, int] | None = None,
) -> list[FeedPost]:
    """What an NPC reads now: up to ``reads_per_tick`` posts of the window that are not its
    own and that it has not read, in the recommender's order.

    * chronological: the newest posts of the authors it follows (then by score, key);
    * affinity: by its affinity to the author, plus half that to the person the post is
      about, then by score and key;
    * popularity: by score plus likes, reposts and replies so far (:data:`POPULARITY`);
    * random: a sample drawn with the reader's RNG for the tick.

    ``order``: :func:`ranked` of ``posts``, ``about``: :func:`by_person` of it, ``rank``:
    post key -> place in ``order`` (computed here if not given; once per tick when given).
    """
    if order is None:
        order = ranked(feed, posts)
    seen = {s[1] for s in state.get("seen", ())}
    k = feed.reads_per_tick
    rec = feed.recommender
    if rec == "chronological":
        follows = set(state.get("fol", ()))
        mine = (p for p in order if p.author in follows)
        return _first(mine, npc_id, seen, k)
    if rec == "popularity":
        return _first(order, npc_id, seen, k)
    if rec == "affinity":
        if about is None:
            about = by_person(order)
        if rank is None:
            rank = {p.key: i for i, p in enumerate(order)} if about else {}
        mine_: dict[str, FeedPost] = {}
        for other in state["rel"]:  # the posts by or about people it knows: few
            for p in about.get(other, ()):
                if p.author != npc_id and p.key not in seen:
                    mine_[p.key] = p
        felt: list[tuple[float, int, FeedPost]] = []
        for p in mine_.values():
            subject = 0.0 if p.actor in (npc_id, p.author) else 0.5 * _affinity(state, p.actor)
            felt.append((-(_affinity(state, p.author) + subject), rank[p.key], p))
        felt.sort(key=lambda f: (f[0], f[1]))  # by liking, then in score order
        liked = [p for v, _, p in felt if v < 0]
        if len(liked) >= k:
            return liked[:k]
        disliked = [p for v, _, p in felt if v > 0]
        skip = {p.key for p in liked} | {p.key for p in disliked}
        rest = (p for p in order if p.key not in skip)
        return [*liked, *_first(rest, npc_id, seen, k - len(liked)), *disliked][:k]
    cands = [p for p in order if p.author != npc_id and p.key not in seen]
    rng = rng_for(tick.seed, tick.tick, npc_id, "feed")
    return rng.sample(cands, min(k, len(cands)))


def by_person(posts: Iterable[FeedPost]) -> dict[str, list[FeedPost]]:
    """NPC -> the posts by or about them, in the order given."""
    out: dict[str, list[FeedPost]] = {}
    for p in posts:
        out.setdefault(p.author, []).append(p)
        if p.actor != p.author:
            out.setdefault(p.actor, []).append(p)
    return out


def _first(posts: Iterable[FeedPost], npc_id: str, seen: set[str], k: int) -> list[FeedPost]:
    """The first ``k`` posts that are not ``npc_id``'s own and not in ``seen``."""
    out: list[FeedPost] = []
    if k <= 0:
        return out
    for p in posts:
        if p.author != npc_id and p.key not in seen:
            out.append(p)
            if len(out) == k:
                break
    return out


def rivals(index: WorldIndex, npc_id: str, other: str, state: State) -> bool:
    """Tagged rivals, or in conflict (affinity at or below the conflict line)."""
    tagged = "rival" in index.tags.get((npc_id, other), frozenset())
    return tagged or _affinity(state, other) <= CONFLICT_AFFINITY


def react(
    index: WorldIndex,
    tick: TickStarted,
    npc_id: str,
    state: State,
    post: FeedPost,
    prefix: str | None = None,
) -> Reaction | None:
    """What an NPC does about a post it read: like, reply, repost, feud (a reply between
    rivals) or nothing (None), drawn with its RNG for (tick, post). ``prefix``:
    ``hash_prefix(tick.seed, tick.tick)``, computed here if not given."""
    feed = index.catalog.feed
    traits = index.traits[npc_id]
    aff = _affinity(state, post.author)
    hostile = rivals(index, npc_id, post.author, state)
    reply = feed.reply_rate * (0.5 + traits["extraversion"]) * (1 + abs(aff) / 100)
    if hostile:
        reply *= 2
    repost = 0.0 if aff < 0 else feed.repost_rate * (0.5 + traits["openness"]) * (0.5 + post.score)
    like = 0.0 if hostile else feed.like_rate * (0.5 + traits["agreeableness"]) * (1 + aff / 100)
    if prefix is None:
        prefix = hash_prefix(tick.seed, tick.tick)
    key = f"{prefix}{npc_id}{SEP}{post.key}{SEP}react{SEP}"
    u = hash_text(key) / TWO64
    if u < reply:
        return "feud" if hostile else "reply"
    if u < reply + repost:
        return "repost"
    if u < reply + repost + like:
        return "like"
    return None


def _fmt(template: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def reaction_event(
    index: WorldIndex,
    tick: TickStarted,
    etype: EventType,
    npc_id: str,
    state: State,
    post: FeedPost,
    follow: int,
    source: Literal["feed", "llm"] = "feed",
) -> EventHappened:
    """The event a reaction is: the reader is its actor, the author its target, the post's
    event its reference; ``follow`` (1, -1 or 0) follows or unfollows the author;
    ``source``: the rules (``feed``) or an LLM decision the rules accepted (``llm``)."""
    author = post.author
    event_id = derive_id("ev", tick.tick, etype.id, npc_id, author, post.key)
    names = {
        "actor": index.card(npc_id).display_name,
        "target": index.card(author).display_name,
        "place": "the feed",
    }
    text = _fmt(etype.summary, **names)
    effects = type_effects(etype, event_id, npc_id, author, [], names, text)
    effects.append(Effect(event_id=event_id, npc_id=npc_id, field="acted", other=etype.id))
    if follow:
        effects.append(
            Effect(event_id=event_id, npc_id=npc_id, field="follow", other=author, delta=follow)
        )
    return EventHappened(
        event_id=event_id,
        run_id=tick.run_id,
        world=tick.world,
        tick=tick.tick,
        sim_minute=tick.sim_minute,
        type=etype.id,
        actor=npc_id,
        target=author,
        place=None,
        witnesses=[],
        summary=text,
        source=source,
        refs=[post.event_id],
        actor_memories=[
            m[2] for m in top_memories(state, tick.tick, index.catalog.world.memory_top_k)
        ],
        effects=effects,
        impact=base_impact(index, etype, npc_id, author, state, tick.tick, True),
    )


VALENCE = {"positive": 1.0, "negative": -1.0}


def opinion(index: WorldIndex, npc_id: str, state: State, post: FeedPost) -> Effect | None:
    """How reading a post moves the reader's affinity toward the person it is about, if the
    reader knows them (a relationship): strangers stay strangers, so an NPC's state does
    not grow with everyone it reads about."""
    shift = index.catalog.feed.opinion_shift
    etype = index.catalog.event_types.get(post.type)
    sign = VALENCE.get(etype.valence, 0.0) if etype is not None else 0.0
    if not shift or not sign or post.actor == npc_id or post.actor not in state["rel"]:
        return None
    rel = state["rel"].get(post.author)
    trust = float(rel[1]) if rel else 0.0
    delta = round(sign * shift * (0.5 + trust / 200), 4)
    return Effect(
        event_id=post.event_id, npc_id=npc_id, field="affinity", other=post.actor, delta=delta
    )


def follow_change(kind: Reaction, state: State, author: str) -> int:
    """Whether a reaction follows (1) or unfollows (-1) the post's author, or neither (0):
    liking or reposting an author it does not follow and does not dislike follows them, a
    feud with one it follows unfollows."""
    follows = state.get("fol", ())
    if kind in ("like", "repost") and author not in follows:
        return 1 if _affinity(state, author) >= 0 else 0
    if kind == "feud" and author in follows:
        return -1
    return 0


def reaction_kind(
    index: WorldIndex, npc_id: str, state: State, post: FeedPost, type_id: str
) -> Reaction | None:
    """The reaction an event type of the feed's ``reactions`` is, for this reader and post:
    a reply to a rival is a feud and a feud with anyone else a reply, as for the rules
    (the relationship decides which); None for a type that is no reaction."""
    r = index.catalog.feed.reactions
    kinds: dict[str, Reaction] = {r.like: "like", r.repost: "repost", r.reply: "reply"}
    kinds[r.feud] = "feud"
    kind = kinds.get(type_id)
    if kind in ("reply", "feud"):
        return "feud" if rivals(index, npc_id, post.author, state) else "reply"
    return kind


@dataclass
class FeedRead:
    """What a shard's NPCs read on a tick and what came of it."""

    exposures: list[PostSeen] = field(default_factory=list)
    events: list[EventHappened] = field(default_factory=list)  # the reactions
    effects: list[Effect] = field(default_factory=list)  # seen, opinions (the readers' own)
    counts: dict[str, list[int]] = field(default_factory=dict)  # key -> [seen, l, rp, rpl]
    # readers who decide their reactions with the LLM -> what they read (rank order)
    deferred: dict[str, list[FeedPost]] = field(default_factory=dict)

    def count(self, key: str, kind: Reaction | None) -> None:
        """Count a reaction (None: an exposure) in the post's counters."""
        counts = self.counts.setdefault(key, [0, 0, 0, 0])
        counts[0 if kind is None else COUNTED[kind]] += 1


def read_feed(
    index: WorldIndex,
    tick: TickStarted,
    npcs: Iterable[str],
    states: Mapping[str, State],
    defer: Collection[str] = (),
) -> FeedRead:
    """Every exposure and reaction of these NPCs (a shard's, sorted) on this tick, from
    their states at the start of the tick and the feed the tick carries.

    ``defer``: readers whose reactions their LLM decision chooses (focal NPCs asked
    alone, :func:`sim.deliberate.deliberating`): they read as anyone does, but the rules
    draw no reaction to the posts that will still be in the feed when the decision
    applies (``decide_deadline`` ticks on); those are in ``deferred``, for their request.
    A post that leaves the feed before then gets the rules' reaction, as for anyone."""
    feed = index.catalog.feed
    out = FeedRead()
    if not tick.feed:
        return out
    types = feed.reactions.model_dump()
    order = ranked(feed, tick.feed)
    about = by_person(order) if feed.recommender == "affinity" else None
    place = {p.key: i for i, p in enumerate(order)} if about else None
    ids = hash_prefix("ex", tick.run_id, tick.tick)  # derive_id("ex", run, tick, npc, key)
    prefix = hash_prefix(tick.seed, tick.tick)
    due = tick.tick + tick.decide_deadline  # when a decision asked now applies
    for npc_id in npcs:
        if not reads(index, tick, npc_id, prefix):
            continue
        state = states[npc_id]
        read = choose(feed, tick, npc_id, state, tick.feed, order, about, place)
        left: set[str] = set()  # the posts whose reaction the NPC's decision chooses
        if npc_id in defer:
            mine = [p for p in read if p.tick + feed.window_ticks >= due]
            left = {p.key for p in mine}
            if mine:
                out.deferred[npc_id] = mine
        for rank, post in enumerate(read):
            out.count(post.key, None)
            last = post.tick + feed.window_ticks  # the last tick it is in the feed
            out.effects.append(
                Effect(
                    event_id=post.event_id,
                    npc_id=npc_id,
                    field="seen",
                    other=post.key,
                    delta=last,
                )
            )
            moved = opinion(index, npc_id, state, post)
            if moved is not None:
                out.effects.append(moved)
            kind = None if post.key in left else react(index, tick, npc_id, state, post, prefix)
            event = None
            if kind is not None:
                out.count(post.key, kind)
                follow = follow_change(kind, state, post.author)
                etype = index.catalog.event_types[types[kind]]
                event = reaction_event(index, tick, etype, npc_id, state, post, follow)
                out.events.append(event)
            out.exposures.append(
                PostSeen(
                    exposure_id=f"ex_{hash_text(f'{ids}{npc_id}{SEP}{post.key}{SEP}'):016x}",
                    run_id=tick.run_id,
                    tick=tick.tick,
                    sim_minute=tick.sim_minute,
                    npc_id=npc_id,
                    post_key=post.key,
                    post_id=post.post_id,
                    event_id=post.event_id,
                    post_tick=post.tick,
                    author=post.author,
                    channel=post.channel,
                    recommender=feed.recommender,
                    rank=rank,
                    reaction=kind,
                    reaction_event_id=None if event is None else event.event_id,
                )
            )
    return out
