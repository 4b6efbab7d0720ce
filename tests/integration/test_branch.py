"""Runs as a log on the real services: a run writes full-world snapshots to Kafka; its
replay is identical; an unchanged branch (started with ``worldfeed branch``) reproduces the
parent's remaining ticks, events and posts, the posts from the LLM cache with no LLM call;
a branch with an injection diverges at its first tick and not before; the manifest and
the snapshots are in ClickHouse; the API's comparison shows the divergence.

The world's part (clock, 2 shards, impact, the API with its embedded sink) runs without
the LLM; the posts' part renders on the real Triton.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus.log import read_topic
from bus.runlog import read_run
from sim.local import LocalRun
from sim.replay import RunLog, content, replay
from sim.world import load_world
from tests.e2e.browser import SHOTS, Browser
from tests.fixtures.kafka import free_port
from tests.fixtures.processes import (
    Procs,
    env_for,
    read_settled,
    read_until,
    start_run,
    wait_http,
)
from topics import LLM_CALLS, POSTS, RENDER_REQUESTS, SNAPSHOTS, TICKS
from topics.models import InjectedEvent, LLMCalled, PostPublished
from worldfeed.settings import ROOT, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARENT = "lineage-parent"
TICKS_IN_RUN = 28  # 07:00 to 14:00: shops open, people meet
SNAPSHOT_EVERY = 8  # snapshots after ticks 7, 15, 23
LLM_TICKS = 24  # 07:00 to 13:00, rendered on the real Triton (noon has the most posts)
START = 7 * 60


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def worldfeed(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "worldfeed"), *args],
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def finished(settings: Settings, run_id: str, timeout_s: float = 240) -> None:
    await read_until(
        settings, TICKS, lambda m: any(t.run_id == run_id and t.last for t in m), timeout_s
    )


async def rendered(settings: Settings, run_id: str) -> list[PostPublished]:
    """The run's posts, once every render request of the run has its post."""
    requests = await read_settled(settings, RENDER_REQUESTS, settle_s=4)
    mine = {r.request_id for r in requests if r.kind == "render_requested" and r.run_id == run_id}
    posts = await read_until(
        settings,
        POSTS,
        lambda m: mine <= {p.request_id for p in m if p.run_id == run_id},
        420,
    )
    return [p for p in posts if p.run_id == run_id]


def by_event(posts: list[PostPublished], after: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        (p.event_id, p.channel): (p.author, p.source, p.title, p.body)
        for p in posts
        if p.tick > after
    }


async def unchanged_branch(
    settings: Settings, parent: RunLog, at: int, run_id: str, restored: str
) -> RunLog:
    """``worldfeed branch`` with no change: its ticks have the parent's state hashes."""
    out = worldfeed(settings, "branch", PARENT, "--at-tick", str(at), "--run-id", run_id)
    assert out.returncode == 0, out.stderr
    assert f"restored from its {restored} logged ticks re-derived" in out.stdout
    await finished(settings, run_id)
    branch = await read_run(settings, run_id)
    later = range(at + 1, TICKS_IN_RUN)
    assert [branch.ticks[t].state_hash for t in later] == [
        parent.ticks[t].state_hash for t in later
    ]
    return branch


def requests_after(requests: list[Any], run_id: str, after: int) -> set[tuple[str, str, str]]:
    return {
        (r.event.event_id, r.channel, r.author)
        for r in requests
        if r.kind == "render_requested" and r.run_id == run_id and r.event.tick > after
    }


async def test_snapshots_replay_and_branches_through_the_world_pipeline(
    settings_factory: Callable[..., Settings], procs: Procs, tmp_path: Path
) -> None:
    """Clock, world (2 shards) and impact on the broker, the API with its sink: no LLM."""
    settings = settings_factory(
        api_port=free_port(),
        world_partitions=2,
        world_snapshot_every_ticks=SNAPSHOT_EVERY,
        admin_token=secrets.token_urlsafe(24),
    )
    procs.worker("worker", settings, "clock,world,impact")
    procs.start("api", settings, "api")
    api = f"http://127.0.0.1:{settings.api_port}"
    wait_http(f"{api}/health", 90, procs)
    index = load_world("town")
    days = TICKS_IN_RUN * settings.step_minutes / 1440

    await start_run(settings, PARENT, seed=4, days=days, start_minute=START)
    await finished(settings, PARENT)

    # snapshots: complete and verified, in Kafka; the replay is identical
    parent = await read_run(settings, PARENT)
    assert sorted(parent.snapshots()) == [7, 15, 23]
    assert parent.start.catalog_digest == index.catalog.digest
    report = replay(index, parent)
    assert report.identical, report.first_difference
    assert report.ticks == TICKS_IN_RUN
    assert set(report.snapshots.values()) == {"verified"}
    out = worldfeed(settings, "replay", PARENT)
    assert out.returncode == 0, out.stderr
    assert "identical" in out.stdout

    # an unchanged branch after tick 11 (between snapshots), started by the CLI
    same = await unchanged_branch(settings, parent, 11, "lineage-same", "snapshot at tick 7, 4")
    assert [content(e) for e in same.events] == [content(e) for e in parent.events if e.tick > 11]
    assert replay(index, same).identical
    # impact asks for the same write-ups (its open stories came from the parent)
    requests = await read_settled(settings, RENDER_REQUESTS, settle_s=4)
    parent_wants = requests_after(requests, PARENT, 11)
    assert parent_wants and requests_after(requests, "lineage-same", 11) == {
        (e, c, a) for e, c, a in parent_wants
    }

    # another, at a snapshot tick: restored from that snapshot, nothing re-derived
    await unchanged_branch(settings, parent, 15, "lineage-at-15", "snapshot at tick 15, 0")

    # a branch with an injected argument after tick 19 (the API): diverges at 20, not before
    actor, target = "walter_pike", "victor_crane"
    body = {
        "at_tick": 19,
        "run_id": "lineage-what-if",
        "inject": [InjectedEvent(type="argument", actor=actor, target=target).model_dump()],
    }
    req = urllib.request.Request(  # noqa: S310 - loopback
        f"{api}/admin/runs/{PARENT}/branch",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {settings.admin_token.get_secret_value()}",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - loopback
        assert resp.status == 202
        started = json.loads(resp.read())
    assert started["run_id"] == "lineage-what-if" and started["restored_from"] == 15
    await finished(settings, "lineage-what-if")
    what_if = await read_run(settings, "lineage-what-if")
    assert what_if.ticks[20].state_hash != parent.ticks[20].state_hash
    assert what_if.ticks[20].injected and what_if.ticks[20].injected[0].actor == actor
    assert {e.type for e in what_if.events if e.tick == 20 and e.source == "admin"} == {"argument"}

    # the comparison names the first divergent tick; ClickHouse holds the lineage
    diff = get(f"{api}/runs/{PARENT}/diff/lineage-what-if")
    assert diff["common_ticks"] == TICKS_IN_RUN - 20
    assert diff["first_divergent_tick"] == 20
    assert diff["events_only_in_b"] >= 1
    deadline = time.monotonic() + 60
    while True:
        run = get(f"{api}/runs/lineage-what-if")
        if run["parent_run"] is not None:
            break
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    assert run["parent_run"] == PARENT and run["branch_tick"] == 19
    assert run["catalog_digest"] == index.catalog.digest
    branches = set(get(f"{api}/runs/{PARENT}")["branches"])
    assert branches == {"lineage-same", "lineage-at-15", "lineage-what-if"}
    snapshots = await read_topic(settings, SNAPSHOTS)
    assert {s.tick for s in snapshots if s.run_id == "lineage-what-if"} == {19, 23}

    # the web UI (headless Chromium): the lineage on the run page, the comparison page
    async with Browser(tmp_path / "chromium") as browser:
        await browser.goto(f"{api}/ui/run?run_id=lineage-what-if&live=0")
        await browser.wait_for("document.querySelector('#lineage') !== null")
        lineage = await browser.evaluate("document.querySelector('#lineage').textContent")
        assert f"Branched from {PARENT} after tick 19" in lineage
        await browser.goto(f"{api}/ui/compare/{PARENT}/lineage-what-if?live=0")
        await browser.wait_for("document.querySelector('#feeds') !== null", 60)
        text = await browser.evaluate("document.querySelector('#divergence').textContent")
        assert text.startswith("first divergent tick 20")
        assert all(n > 500 for n in await browser.painted("#chart-compare canvas"))
        columns = await browser.evaluate("document.querySelectorAll('#feeds .column').length")
        assert columns == 2
        assert not browser.problems()
        path = await browser.screenshot(SHOTS / "compare.png")
        print(f"screenshot: {path}")
    procs.assert_alive()


async def test_an_unchanged_branch_writes_its_posts_from_the_llm_cache(
    settings_factory: Callable[..., Settings], procs: Procs, triton_url: str
) -> None:
    """With the real Triton: the branch's posts are the parent's, word for word, from the
    LLM cache (no call for a prompt the parent's LLM answered)."""
    settings = settings_factory(
        triton_grpc_url=triton_url, world_partitions=2, world_snapshot_every_ticks=SNAPSHOT_EVERY
    )
    procs.worker("worker", settings, "clock,world,impact,render")
    days = LLM_TICKS * settings.step_minutes / 1440
    await start_run(settings, PARENT, seed=4, days=days, start_minute=START)
    await finished(settings, PARENT)
    parent_posts = await rendered(settings, PARENT)
    out = worldfeed(settings, "branch", PARENT, "--at-tick", "9", "--run-id", "lineage-cached")
    assert out.returncode == 0, out.stderr
    await finished(settings, "lineage-cached")
    same_posts = await rendered(settings, "lineage-cached")
    mine, theirs = by_event(same_posts, 9), by_event(parent_posts, 9)
    assert mine.keys() == theirs.keys(), "the same events written up on the same channels"
    # what the LLM wrote for the parent comes from the cache, word for word; a post the
    # parent had to write from the template (Triton too slow) was never cached
    written = {k for k, v in theirs.items() if v[1] == "llm"}
    assert written, "the parent should have LLM-written posts after the branch tick"
    assert {k: mine[k] for k in written} == {k: theirs[k] for k in written}
    calls: list[LLMCalled] = await read_topic(settings, LLM_CALLS)
    requests = {p.request_id: (p.event_id, p.channel) for p in same_posts}
    parent_requests = {p.request_id: (p.event_id, p.channel) for p in parent_posts}

    def attempts(run_id: str, reqs: dict[str, tuple[str, str]]) -> dict[tuple[str, str], list]:
        """The attempts each written post's ask made (a grounding retry is another)."""
        out: dict[tuple[str, str], list[int]] = {}
        for c in calls:
            key = reqs.get(c.request_id)
            if c.run_id == run_id and key in written and c.outcome not in ("error", "unavailable"):
                out.setdefault(key, []).append(c.attempt)
        return {k: sorted(v) for k, v in out.items()}

    from_cache = [
        c for c in calls if c.run_id == "lineage-cached" and requests.get(c.request_id) in written
    ]
    assert all(c.cache_hit for c in from_cache), [c.outcome for c in from_cache]
    assert attempts("lineage-cached", requests) == attempts(PARENT, parent_requests), (
        "one cached ledger row per attempt the parent's LLM made"
    )
    procs.assert_alive()


async def test_every_worker_killed_mid_run_the_run_continues_exactly(
    settings_factory: Callable[..., Settings], procs: Procs
) -> None:
    """kill -9 of every worker mid-run: new workers restore the shards from their tables'
    changelogs and the clock from its logs, and the run goes on with the hashes of the
    uninterrupted reference; its replay from the log (snapshots included) is identical."""
    settings = settings_factory(
        world_partitions=2, tick_timeout_s=3.0, world_snapshot_every_ticks=SNAPSHOT_EVERY
    )
    for name in ("w0", "w1"):
        procs.worker(name, settings, "clock,world,impact")
    days = TICKS_IN_RUN * settings.step_minutes / 1440
    await start_run(settings, "killed-all", seed=6, days=days, start_minute=START, speed=4000.0)
    await read_until(settings, TICKS, lambda m: len(m) >= 10, 120)
    for name in ("w0", "w1"):
        procs.kill(name, signal.SIGKILL)
    procs.running = []
    for name in ("w2", "w3"):
        procs.worker(name, settings, "clock,world,impact")
    await finished(settings, "killed-all", 300)
    log = await read_run(settings, "killed-all")
    index = load_world("town")
    ref = LocalRun(index, "ref", 6, start_minute=START)
    for _ in range(TICKS_IN_RUN):
        ref.step()
    assert [log.ticks[t].state_hash for t in range(TICKS_IN_RUN)] == ref.hashes
    assert replay(index, log).identical
    procs.assert_alive()
