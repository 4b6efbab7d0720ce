"""Edit a loaded catalog in memory and index the result (for tests of catalog fields),
and the tick a shard of the town plays (for tests of one tick's rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog.models import Catalog
from sim.world import WorldIndex
from topics.models import FeedPost, TickStarted


def tick_at(tick: int, posts: Sequence[FeedPost] = ()) -> TickStarted:
    """Tick ``tick`` of run ``r`` (seed 1) of the town on its only shard, with ``posts``
    in the feed."""
    return TickStarted(
        run_id="r",
        seed=1,
        world="town",
        tick=tick,
        sim_minute=tick * 15,
        step_minutes=15,
        shard=0,
        n_shards=1,
        feed=list(posts),
    )


def rebuild(cat: Catalog, **parts: Any) -> WorldIndex:
    """A new index of ``cat`` with some of its collections replaced (by Catalog's names)."""
    args: dict[str, Any] = {
        "world": cat.world,
        "places": list(cat.places.values()),
        "npcs": list(cat.npcs.values()),
        "relationships": list(cat.relationships),
        "goals": list(cat.goals),
        "event_types": list(cat.event_types.values()),
        "channels": list(cat.channels.values()),
        "templates": list(cat.templates.values()),
        "scheduled": list(cat.scheduled),
        "director": list(cat.director),
        "decide": cat.decide,
        "feed": cat.feed,
    }
    args.update(parts)
    return WorldIndex.build(Catalog(**args))


def with_place(cat: Catalog, place_id: str, **update: Any) -> WorldIndex:
    """The catalog with one place's fields changed."""
    places = [p.model_copy(update=update) if p.id == place_id else p for p in cat.places.values()]
    return rebuild(cat, places=places)


def with_npcs(cat: Catalog, ids: set[str] | None = None, **update: Any) -> WorldIndex:
    """The catalog with fields of some NPCs (None: all) changed."""
    npcs = [
        n.model_copy(update=update) if ids is None or n.id in ids else n for n in cat.npcs.values()
    ]
    return rebuild(cat, npcs=npcs)


def with_feed(cat: Catalog, **update: Any) -> WorldIndex:
    """The catalog with its feed loop on and some of feed.json's fields changed."""
    return rebuild(cat, feed=cat.feed.model_copy(update={"enabled": True, **update}))
