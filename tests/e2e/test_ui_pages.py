"""Every UI page in headless Chromium over a stored run (real chDB, the API over HTTP):
charts and the town graph draw (non-empty canvases), filters change what is shown, the
why page shows the stored event and LLM calls, the dashboard follows a playing run,
no page breaks its Content Security Policy or has serious axe-core violations, and a
phone-width screen needs no sideways scrolling. Screenshots of each page go to
``.local/screenshots/`` (printed), for a human to look at.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from api.main import create_app
from catalog import load_catalog
from cli.worlds import STARTER
from sim.world import WorldIndex
from storage import ClickHouseWriter
from tests.e2e.browser import CHROMIUM, SHOTS, Browser
from tests.fixtures.live_api import serve
from tests.fixtures.ui_story import RUN, Story, seed_story
from topics.models import EventHappened, ImpactScore, TickCompleted
from worldfeed.settings import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


async def serious_axe_violations(browser: Browser) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page open in ``browser``."""
    await browser.evaluate(AXE.read_text())
    result: dict[str, Any] = await browser.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
        ".then(v => ({violations: v}))"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


PHONE = (390, 844)

PAGES = {
    "feed": f"/?run_id={RUN}&live=0",
    "run": f"/ui/run?run_id={RUN}&live=0",
    "events": f"/ui/events?run_id={RUN}&live=0",
    "town": f"/ui/town?run_id={RUN}&live=0",
    "npc": f"/ui/npcs/eleanor_hart?run_id={RUN}&live=0",
    "why": "/ui/posts/po_ui_0001/why?live=0",
}
# what each page shows once it has drawn
READY = {
    "feed": "document.querySelectorAll('#posts li.post').length > 0",
    "run": "document.querySelectorAll('#page-view figure.chart canvas').length >= 4",
    "events": "document.querySelectorAll('#events li.event').length > 0",
    "town": "document.querySelector('#town-graph canvas') && "
    "document.querySelector('#town-graph').dataset.nodes",
    "npc": "document.querySelectorAll('#npc-charts figure.chart canvas').length >= 3",
    "why": "document.querySelector('#why-attempts')",
}


@pytest.fixture
def database(ch_database: Callable[[], str]) -> str:
    return ch_database()


@pytest.fixture
def writer(ch_client: Client, database: str) -> ClickHouseWriter:
    return ClickHouseWriter(ch_client, database, batch_size=1000, flush_s=0.5)


@pytest.fixture
def story(writer: ClickHouseWriter) -> Story:
    return seed_story(writer)


@pytest.fixture
def api_url(chdb_path: Path, ch_client: Client, database: str, story: Story) -> Iterator[str]:
    settings = Settings(env="test", clickhouse_dsn=f"chdb://{chdb_path}?database={database}")
    with serve(create_app(settings, ch_client)) as url:
        yield url


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    async with Browser(tmp_path / "chromium-profile") as b:
        yield b


async def open_page(browser: Browser, api_url: str, name: str) -> None:
    await browser.goto(api_url + PAGES[name])
    await browser.wait_for(READY[name])


def compact(ids: list[str]) -> str:
    """``ids`` as the JavaScript string literal of JSON.stringify(ids)."""
    return json.dumps(json.dumps(ids, separators=(",", ":")))


async def painted(browser: Browser, selector: str) -> list[int]:
    return await browser.painted(selector)


async def shot(browser: Browser, name: str) -> Path:
    path = await browser.screenshot(SHOTS / f"{name}.png")
    print(f"screenshot: {path}")
    assert path.stat().st_size > 5_000
    return path


async def test_run_dashboard_draws_the_run(browser: Browser, api_url: str, story: Story) -> None:
    await open_page(browser, api_url, "run")
    charts = await browser.evaluate("[...document.querySelectorAll('figure.chart')].map(f => f.id)")
    assert charts == ["chart-activity", "chart-llm", "chart-tokens", "chart-rate"]
    assert all(n > 500 for n in await painted(browser, "figure.chart canvas")), "a chart is blank"
    tiles = await browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.tile')]"
        ".map(t => [t.id, t.querySelector('.tile-value').textContent]))"
    )
    assert tiles["tile-events"] == str(len(story.events))
    assert tiles["tile-calls"] == str(len(story.calls))
    assert tiles["tile-posts"] == str(sum(p.moderation != "blocked" for p in story.posts))
    assert tiles["tile-hits"] == "1" and tiles["tile-fallbacks"] == "1"
    assert tiles["tile-dead"] == "1"
    hours = await browser.evaluate("document.querySelectorAll('#hours-table tbody tr').length")
    assert hours == 12
    assert not browser.problems()
    await shot(browser, "run")


def _live(ticks: range, events: range, last: bool = False) -> list[Any]:
    return [
        TickCompleted(
            run_id="live1",
            tick=t,
            sim_minute=t * 15,
            state_hash=f"{t:016x}",
            npcs=30,
            events=0,
            effects=0,
            wall_ms=5.0,
            last=last and t == ticks[-1],
        )
        for t in ticks
    ] + [
        EventHappened(
            event_id=f"ev_live_{i}",
            run_id="live1",
            tick=i // 3,
            sim_minute=i // 3 * 15,
            type="greeting",
            actor="mia_hart",
            target="ben_castillo",
            place="daily_grind",
            summary=f"event {i}",
        )
        for i in events
    ]


async def test_dashboard_updates_while_a_run_plays(
    browser: Browser, api_url: str, writer: ClickHouseWriter
) -> None:
    writer.write_messages(_live(range(4), range(3)))
    await browser.goto(f"{api_url}/ui/run?run_id=live1")
    await browser.wait_for("document.querySelector('#tile-events')")
    assert (
        await browser.evaluate("document.querySelector('#tile-events .tile-value').textContent")
        == "3"
    )
    assert "playing" in await browser.evaluate("document.querySelector('#run-status').textContent")
    # the run goes on: more events and its last tick arrive in storage
    writer.write_messages(_live(range(4, 6), range(3, 9), last=True))
    await browser.wait_for(
        "document.querySelector('#tile-events .tile-value').textContent === '9'", 30
    )
    await browser.wait_for("document.querySelector('#run-status').textContent.includes('finished')")


async def test_events_filters_change_what_is_shown(
    browser: Browser, api_url: str, story: Story
) -> None:
    await open_page(browser, api_url, "events")
    shown = "[...document.querySelectorAll('#events li.event')].map(e => e.dataset.eventId)"
    every = sorted(e.event_id for e in story.events)  # the page is ready at its first event
    await browser.wait_for(f"JSON.stringify({shown}.sort()) === {compact(every)}")
    await shot(browser, "events")

    async def choose(field: str, value: str) -> None:
        await browser.evaluate(
            f"(() => {{ const f = document.querySelector('#f-{field}');"
            f" f.value = {json.dumps(value)};"
            " f.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    await choose("type", "gossip")
    gossip = sorted(e.event_id for e in story.events if e.type == "gossip")
    await browser.wait_for(f"JSON.stringify({shown}.sort()) === {compact(gossip)}")
    assert "type=gossip" in await browser.evaluate("location.search")

    await choose("type", "")
    await choose("min_impact", "0.7")
    strong = sorted(
        e.event_id
        for e in story.events
        if isinstance(e.impact, ImpactScore) and e.impact.total >= 0.7
    )
    await browser.wait_for(f"JSON.stringify({shown}.sort()) === {compact(strong)}")

    await choose("npc", "victor_crane")
    victor = sorted(
        e.event_id
        for e in story.events
        if "victor_crane" in (e.actor, e.target) and e.impact and e.impact.total >= 0.7
    )
    await browser.wait_for(f"JSON.stringify({shown}.sort()) === {compact(victor)}")

    # the argument links to its three posts' why pages and to the events that re-scored it
    links = await browser.evaluate(
        "[...document.querySelectorAll('#ev_ui_0001 a.chip')].map(a => a.getAttribute('href'))"
    )
    assert sum("/ui/posts/po_ui_000" in h and h.split("?")[0].endswith("/why") for h in links) == 3
    assert "#ev_ui_0007" in links and "#ev_ui_0008" in links


async def test_town_graph_scrubs_through_snapshots(
    browser: Browser, api_url: str, story: Story
) -> None:
    await open_page(browser, api_url, "town")
    graph = await browser.evaluate("({...document.querySelector('#town-graph').dataset})")
    assert graph["nodes"] == str(len(load_catalog(STARTER).npcs))
    assert int(graph["edges"]) > 50
    assert max(await painted(browser, "#town-graph canvas")) > 2_000, "the graph is blank"
    changes = await browser.evaluate("document.querySelector('#town-changes').innerText")
    npcs = load_catalog(STARTER).npcs
    last = [s for s in story.snapshots if s.npc_id == "eleanor_hart"][-1]
    now = last.relationships["victor_crane"][0]
    fell_out = (
        f"{npcs['eleanor_hart'].handle} → {npcs['victor_crane'].handle}: affinity -45 → {now:.0f}"
    )
    assert fell_out in changes.replace("−", "-")
    assert await browser.evaluate("document.querySelector('#town-changes li.down') !== null")
    await shot(browser, "town")

    # scrub to the first snapshot: the change since the start is smaller
    first = min(s.tick for s in story.snapshots)
    await browser.evaluate(
        "(() => { const r = document.querySelector('#town-tick'); r.value = 1;"
        "r.dispatchEvent(new Event('change')); })()"
    )
    await browser.wait_for(f"location.search.includes('tick={first}')")
    # at the first snapshot the mayor has not changed her mind yet; the developer has
    start = WorldIndex.build(load_catalog(STARTER)).relationships["victor_crane"]["eleanor_hart"][0]
    victor = next(s for s in story.snapshots if s.npc_id == "victor_crane" and s.tick == first)
    moved = (
        f"{npcs['victor_crane'].handle} → {npcs['eleanor_hart'].handle}: "
        f"affinity {start:.0f} → {victor.relationships['eleanor_hart'][0]:.0f}"
    )
    await browser.wait_for(
        "document.querySelector('#town-changes').innerText.replaceAll('−', '-')"
        f".includes({json.dumps(moved)})"
    )
    assert fell_out.rsplit("→", 1)[0] not in await browser.evaluate(
        "document.querySelector('#town-changes').innerText"
    )
    assert await browser.evaluate("document.querySelector('#town-at').textContent") == (
        f"D1 {first * 15 // 60:02d}:{first * 15 % 60:02d} (tick {first})"
    )


async def test_npc_page_has_charts(browser: Browser, api_url: str, story: Story) -> None:
    await open_page(browser, api_url, "npc")
    ids = await browser.evaluate("[...document.querySelectorAll('figure.chart')].map(f => f.id)")
    assert ids == ["chart-affinity", "chart-trust", "chart-reputation"]
    assert all(n > 300 for n in await painted(browser, "figure.chart canvas"))
    legend = await browser.evaluate("document.querySelector('#chart-affinity').innerText")
    catalog = load_catalog(STARTER)
    assert (
        catalog.npcs["victor_crane"].handle in legend and catalog.npcs["mia_hart"].handle in legend
    )
    await shot(browser, "npc")


async def test_why_page_matches_the_stored_event_and_calls(
    browser: Browser, api_url: str, story: Story
) -> None:
    await open_page(browser, api_url, "why")
    post = story.post("po_ui_0001")
    event = story.event(post.event_id)
    assert await browser.evaluate("document.querySelector('#why-event').dataset.eventId") == (
        event.event_id
    )
    assert event.summary in await browser.evaluate("document.querySelector('#why-event').innerText")
    impact = await browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#why-impact tr')]"
        ".map(r => [r.dataset.component, Number(r.querySelector('td.num').textContent)]))"
    )
    assert event.impact is not None
    assert impact == {k: round(v, 2) for k, v in event.impact.model_dump().items()}
    calls = [c for c in story.calls if c.request_id == post.request_id]
    rows = await browser.evaluate(
        "[...document.querySelectorAll('#why-attempts tbody tr')].map(r => "
        "[...r.querySelectorAll('td')].map(td => td.textContent))"
    )
    assert [(int(r[0]), r[1], r[2], r[6]) for r in rows] == [
        (c.attempt, c.outcome, c.error or "", "yes" if c.cache_hit else "no") for c in calls
    ]
    threshold = load_catalog(STARTER).event_types[event.type].channels[post.channel].threshold
    rule = await browser.evaluate("document.querySelector('#why-threshold').innerText")
    assert f"reaches {threshold:.2f}" in rule and "score was 0.92" in rule and "passed" in rule
    cascade = await browser.evaluate("document.querySelector('#why-cascade').innerText")
    assert "re-scored" in cascade and "insult" in cascade
    await shot(browser, "why")


async def test_feed_posts_link_to_why(browser: Browser, api_url: str, story: Story) -> None:
    await open_page(browser, api_url, "feed")
    links = await browser.evaluate(
        "[...document.querySelectorAll('#posts a.why')].map(a => a.getAttribute('href'))"
    )
    assert links and all("/ui/posts/po_ui_" in h for h in links)
    await shot(browser, "feed")


@pytest.mark.parametrize("name", list(PAGES))
async def test_page_is_accessible_and_fits_a_phone(
    browser: Browser, api_url: str, story: Story, name: str
) -> None:
    await browser.viewport(*PHONE, mobile=True)
    await open_page(browser, api_url, name)
    assert not browser.problems(), browser.problems()  # no CSP violation, no script error
    overflow = await browser.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{name}: {overflow}px wider than a phone screen"
    await shot(browser, f"{name}-phone")
    serious = await serious_axe_violations(browser)
    assert not serious, json.dumps(serious, indent=1)
