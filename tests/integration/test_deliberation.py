"""NPCs that think, on the real services (issue 12): a broker, a worker with the clock, two
world shards, the deliberate stage, impact and render, and a Triton server of this test
only.

A morning with deliberation on: decisions (the LLM's, constrained to the answer schema)
are in the log, the engine accepts some and they change the world (events with source
``llm``), and posts are written about those events like any other (the worker renders
too); a replay of the run from its log gives the same state hashes and events and asks
no LLM. Then Triton is stopped in the middle of a second run: the run still
completes, the decisions it could not get are recorded fallbacks (the rules decided),
and its replay is identical too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bus.runlog import read_run
from catalog.generate import write_world
from sim.replay import replay
from sim.world import load_world
from tests.fixtures.processes import Procs, read_settled, read_until, start_run
from tests.integration.test_render import OwnTriton
from tests.unit.sim.catalog_edit import with_feed
from topics import DECISION_OUTCOMES, DECISION_REQUESTS, DECISIONS, POSTS, TICKS
from topics.models import DecisionResolved
from worldfeed.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = 9 * 60  # 09:00: shops and offices open, people meet
TICKS_IN_RUN = 12  # three hours
BUDGET = 2


@pytest.fixture
def triton() -> Iterator[OwnTriton]:
    server = OwnTriton()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _finished(settings: Settings, run_id: str, timeout_s: float) -> None:
    await read_until(
        settings, TICKS, lambda m: any(t.run_id == run_id and t.last for t in m), timeout_s
    )


async def _outcomes(settings: Settings, run_id: str) -> list[DecisionResolved]:
    got = await read_settled(settings, DECISION_OUTCOMES, settle_s=3)
    return [o for o in got if o.run_id == run_id]


def deciding(settings_factory: Callable[..., Settings], triton: OwnTriton) -> Settings:
    """Two world partitions on the test's own Triton: no retries, no cache, a 45 s
    decision deadline (every decision is a fresh LLM call or a timeout)."""
    return settings_factory(
        world_partitions=2,
        triton_grpc_url=triton.url,
        llm_retries=0,
        llm_timeout_s=60,
        decide_timeout_s=45,
        llm_cache=False,
    )


async def test_a_morning_with_deliberation_and_an_outage(
    settings_factory: Callable[..., Settings], procs: Procs, triton: OwnTriton
) -> None:
    settings = deciding(settings_factory, triton)
    procs.worker("worker", settings, "clock,world,deliberate,impact,render")
    index = load_world("town")
    days = TICKS_IN_RUN * settings.step_minutes / 1440

    # a morning: decisions in the log, some accepted, changing the world
    await start_run(settings, "think", seed=4, days=days, start_minute=START, decide_budget=BUDGET)
    await _finished(settings, "think", 900)
    log = await read_run(settings, "think")
    assert log.start.decide_budget == BUDGET
    assert len(log.decisions) >= TICKS_IN_RUN  # about BUDGET per tick
    statuses = Counter(d.status for d in log.decisions.values())
    outcomes = await _outcomes(settings, "think")
    assert outcomes, "no decision resolved"
    by_outcome = Counter(o.outcome for o in outcomes)
    print("statuses", dict(statuses), "outcomes", dict(by_outcome))
    assert by_outcome["accepted"] >= 1, (statuses, by_outcome)
    llm_events = [e for e in log.events if e.source == "llm"]
    accepted = {o.event_id for o in outcomes if o.outcome == "accepted" and o.event_id}
    assert accepted <= {e.event_id for e in llm_events}
    # what the LLM chose is written up like any other event: posts about those events
    llm_ids = {e.event_id for e in llm_events}
    posts = await read_until(
        settings,
        POSTS,
        lambda m: any(p.run_id == "think" and p.event_id in llm_ids for p in m),
        600,
    )
    about = [p for p in posts if p.run_id == "think" and p.event_id in llm_ids]
    print("posts about LLM-chosen events:", [(p.channel, p.source, p.body[:80]) for p in about])
    assert about
    # the replay reads the recorded decisions: identical, and no LLM is involved
    report = replay(index, log)
    assert report.identical, report.first_difference
    assert report.ticks == TICKS_IN_RUN
    procs.assert_alive()

    # Triton stopped mid-run: the run completes on recorded fallbacks
    await start_run(settings, "outage", seed=5, days=days, start_minute=START, decide_budget=BUDGET)
    await read_until(settings, DECISIONS, lambda m: sum(d.run_id == "outage" for d in m) >= 2, 600)
    triton.stop()
    await _finished(settings, "outage", 1200)
    procs.assert_alive()
    outage = await read_run(settings, "outage")
    causes = Counter(d.status for d in outage.decisions.values())
    print("outage statuses", dict(causes))
    assert causes["timeout"] + causes["error"] >= 1
    fell_back = [o for o in await _outcomes(settings, "outage") if o.outcome == "fallback"]
    assert fell_back and {o.reason_code for o in fell_back} <= {"timeout", "error", "invalid"}
    again = replay(index, outage)
    assert again.identical, again.first_difference


async def test_focal_npcs_react_to_the_feed_with_the_llm(
    settings_factory: Callable[..., Settings], procs: Procs, triton: OwnTriton, tmp_path: Path
) -> None:
    """With the feed loop on, a focal reader's request lists the posts it read (that are
    still in the feed when the decision applies) and offers ``react`` (the answer schema,
    constrained decoding on the real model, names the post); its exposures of them carry
    no rule reaction; whatever the model chose, the run replays from its log exactly
    (decisions, exposures, reactions), on two world partitions."""
    index = with_feed(load_world("town").catalog)
    world = str(write_world(index.catalog, tmp_path / "feedtown"))
    settings = deciding(settings_factory, triton)
    procs.worker("worker", settings, "clock,world,deliberate,impact")
    days = TICKS_IN_RUN * settings.step_minutes / 1440
    await start_run(
        settings,
        "react",
        seed=4,
        days=days,
        start_minute=START,
        decide_budget=BUDGET,
        world=world,
    )
    await _finished(settings, "react", 900)
    log = await read_run(settings, "react")
    asked = [
        r
        for r in await read_settled(settings, DECISION_REQUESTS, settle_s=3)
        if r.run_id == "react" and "posts" in r.situation
    ]
    assert asked, "no focal NPC read a post"
    window = index.catalog.feed.window_ticks
    for req in asked:
        keys = [p["post"] for p in req.situation["posts"]]
        assert req.situation["allowed"]["react"]["posts"] == keys
        # what it read that is still in the feed at the due tick is left to the LLM
        read = [
            x
            for x in log.exposures
            if x.tick == req.tick
            and x.npc_id == req.npcs[0]
            and x.post_tick + window >= req.due_tick
        ]
        assert sorted(x.post_key for x in read) == sorted(keys)
        assert all(x.reaction is None for x in read)
    outcomes = [o for o in await _outcomes(settings, "react") if o.action == "react"]
    print("react outcomes", Counter((o.outcome, o.reason_code) for o in outcomes))
    reactions = set(index.catalog.feed.reactions.model_dump().values())
    taken = {o.event_id for o in outcomes if o.outcome == "accepted"}
    assert taken <= {e.event_id for e in log.events if e.source == "llm" and e.type in reactions}
    report = replay(load_world(world), log)
    assert report.identical, report.first_difference
    procs.assert_alive()
