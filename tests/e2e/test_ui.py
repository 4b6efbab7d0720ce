"""The web UI, end to end: a short run through worker and API processes (real Kafka,
real Triton, embedded ClickHouse), then Debian's headless Chromium loads the page, runs
its JavaScript, and the posts are in the DOM; an NPC page shows relationships; the run
dashboard, the town graph and a post's why page draw from the real run's rows."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import SHOTS, Browser
from tests.fixtures.kafka import free_port
from tests.fixtures.processes import Procs, read_until, start_run, wait_http
from topics import TICKS
from worldfeed.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def chromium(url: str, tmp: Path, *extra: str) -> str:
    """Run headless Chromium on ``url`` with the given action flags; returns stdout."""
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--virtual-time-budget=8000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


async def test_ui_shows_posts_and_npc_pages(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str, tmp_path: Path
) -> None:
    settings = settings_factory(triton_grpc_url=triton_url, api_port=free_port())
    procs.worker("worker", settings, "clock,world,impact,render")
    procs.start("api", settings, "api")
    api = f"http://127.0.0.1:{settings.api_port}"
    wait_http(f"{api}/health", 90, procs)

    await start_run(settings, "e2e-ui", seed=11, days=0.5)
    await read_until(settings, TICKS, lambda m: any(t.last for t in m), 180)
    deadline = time.monotonic() + 300
    while True:  # posts are rendered by the LLM and batched into ClickHouse
        feed = get(f"{api}/feed?run_id=e2e-ui&limit=50")["items"]
        if feed:
            break
        procs.assert_alive()
        assert time.monotonic() < deadline, "no post reached the API"
        time.sleep(2)

    # the feed page: the JavaScript fetched /feed and rendered the posts (live=0: no SSE
    # connection, which would keep --virtual-time-budget from ever settling)
    channel = feed[0]["channel"]  # the tab of the newest post (?channel= opens it)
    dom = chromium(f"{api}/?run_id=e2e-ui&channel={channel}&live=0", tmp_path, "--dump-dom")
    shown = [p for p in feed if p["channel"] == channel]
    assert 'class="posts"' in dom
    assert f'data-channel="{channel}" class="tab active"' in dom
    for post in shown[:3]:
        assert f'data-post-id="{post["post_id"]}"' in dom, "a feed post is missing from the page"
    handles = {
        n["npc_id"]: n["handle"] for n in get(f"{api}/npcs?run_id=e2e-ui&limit=1000")["items"]
    }
    assert handles[shown[0]["author"]] in dom  # author handle, not the raw id
    assert "Day 1, " in dom  # post time in simulated time

    if channel == "news":
        assert shown[0]["title"] and shown[0]["title"] in dom  # headline on the news tab

    # an NPC page with relationships
    author = shown[0]["author"]
    npc_dom = chromium(f"{api}/ui/npcs/{author}?run_id=e2e-ui&live=0", tmp_path, "--dump-dom")
    assert 'id="npc-profile"' in npc_dom and 'id="relationships"' in npc_dom
    assert handles[author] in npc_dom
    assert "<table" in npc_dom  # the author has relationships in the town

    # a screenshot, for a human to look at (kept under the test's tmp dir)
    shot = tmp_path / "feed.png"
    chromium(
        f"{api}/?run_id=e2e-ui&live=0", tmp_path, f"--screenshot={shot}", "--window-size=1000,1200"
    )
    assert shot.stat().st_size > 10_000
    procs.assert_alive()

    # the pictures of the real run (over the DevTools protocol)
    deadline = time.monotonic() + 120
    while True:  # every event the ticks counted is stored (the sink may still be writing)
        ticks = get(f"{api}/runs/e2e-ui/ticks?limit=500")
        stats = get(f"{api}/stats?run_id=e2e-ui")
        if (
            ticks
            and ticks[-1]["last"]
            and stats["tables"]["events"] == sum(t["events"] for t in ticks)
        ):
            break
        assert time.monotonic() < deadline, "the run's events did not all reach ClickHouse"
        time.sleep(2)
    written = next((p for p in feed if p["source"] == "llm"), feed[0])
    deadline = time.monotonic() + 120
    while True:  # the LLM calls reach ClickHouse through the sink, after the posts maybe
        why = get(f"{api}/posts/{written['post_id']}/why")
        if why["attempts"] or written["source"] != "llm":
            break
        assert time.monotonic() < deadline, f"no LLM call stored for {written['post_id']}"
        time.sleep(2)
    assert why["event"]["event_id"] == written["event_id"]
    assert why["rule"] is not None and why["rule"]["passed"], why
    assert why["rule"]["score"] >= why["rule"]["threshold"]
    if written["source"] == "llm":
        assert why["attempts"][-1]["outcome"] in ("valid", "repaired", "cached")

    async with Browser(tmp_path / "cdp-profile") as browser:
        await browser.goto(f"{api}/ui/run?run_id=e2e-ui&live=0")
        await browser.wait_for("document.querySelectorAll('figure.chart canvas').length >= 4", 60)
        assert all(n > 300 for n in await browser.painted("figure.chart canvas"))
        shown_events = await browser.evaluate(
            "document.querySelector('#tile-events .tile-value').textContent"
        )
        assert shown_events == f"{stats['tables']['events']:,}"
        await browser.screenshot(SHOTS / "real-run.png")

        await browser.goto(f"{api}/ui/town?run_id=e2e-ui&live=0")
        await browser.wait_for("document.querySelector('#town-graph')?.dataset.nodes", 60)
        assert await browser.evaluate("document.querySelector('#town-graph').dataset.nodes") == (
            str(len(handles))
        )
        assert max(await browser.painted("#town-graph canvas")) > 2_000
        await browser.screenshot(SHOTS / "real-town.png")

        await browser.goto(f"{api}/ui/posts/{written['post_id']}/why?live=0")
        await browser.wait_for("document.querySelector('#why-attempts')", 60)
        rows = await browser.evaluate("document.querySelectorAll('#why-attempts tbody tr').length")
        assert rows == len(why["attempts"])
        assert (
            await browser.evaluate("document.querySelector('#why-event').dataset.eventId")
            == written["event_id"]
        )
        await browser.screenshot(SHOTS / "real-why.png")
        assert not browser.problems(), browser.problems()
    procs.assert_alive()
