"""Fixtures for posts tests: the starter world and a factory of render requests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sim.world import WorldIndex, load_world
from topics.models import EventHappened, ImpactScore, RenderRequested

TEMPLATES = {"feed": "feed_post", "chat": "chat_message", "news": "news_article"}


@pytest.fixture(scope="module")
def index() -> WorldIndex:
    return load_world("town")


@pytest.fixture
def make_request(index: WorldIndex) -> Callable[..., RenderRequested]:
    """``make_request(channel="feed", n=0, author=None)``: a request about an argument."""

    def make(channel: str = "feed", n: int = 0, author: str | None = None) -> RenderRequested:
        actor = index.npc_ids[0]
        author = author or (index.journalists[0] if channel == "news" else actor)
        ev = EventHappened(
            event_id=f"ev{n}",
            run_id="r1",
            tick=40,
            sim_minute=600,
            type="argue",
            actor=actor,
            place=next(iter(index.catalog.places)),
            summary=f"{index.npc(actor).display_name} argued with the baker",
            impact=ImpactScore(novelty=0.5, conflict=0.5, status=0.5, cascade=0, total=0.7),
        )
        return RenderRequested(
            request_id=f"rq{channel}{n}",
            run_id="r1",
            channel=channel,
            author=author,
            template=TEMPLATES[channel],
            score=0.7,
            event=ev,
        )

    return make
