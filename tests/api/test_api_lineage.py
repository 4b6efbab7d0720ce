"""Runs as a log through the API, on the real broker: replay, branch and compare a run
whose log was written to Kafka by an in-process run (the shards' and clock's own code),
and the bad input the issue names: an unknown run (404), a tick beyond the run (422 with
its last tick), a changed catalog (409 with both digests), a corrupt snapshot (fallback
to an earlier one, said so)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from bus.admin import ensure_topics
from bus.log import read_topic
from sim.local import LocalRun
from sim.world import load_world
from topics import CLOCK_INBOX, EVENTS, RUNS, SHARD_INBOX, SNAPSHOTS, TICKS, TopicSpec
from topics.codec import encode
from topics.models import RunCommanded, SnapshotPart, StateRestored
from worldfeed.settings import Settings

TOKEN = "lineage-admin-token-0123456789"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TICKS_PLAYED = 40


@pytest.fixture
def lineage_settings(
    settings_factory: Callable[..., Settings], chdb_path: Path, database: str
) -> Settings:
    return settings_factory(
        clickhouse_dsn=f"chdb://{chdb_path}?database={database}",
        admin_token=TOKEN,
        world_partitions=2,
    )


@pytest.fixture
def lineage_api(
    lineage_settings: Settings,
    ch_client: Client,
    tmp_path: Path,
    client_of: Callable[[FastAPI], TestClient],
) -> Iterator[TestClient]:
    app = create_app(lineage_settings, ch_client, worlds_dir=tmp_path / "worlds")
    with client_of(app) as client:
        yield client


async def write_log(
    settings: Settings, run: LocalRun, start: RunCommanded, corrupt: int | None = None
) -> None:
    """What the clock and the shards write for a run, onto the topics."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:

        async def send(spec: TopicSpec, msg: object, partition: int | None = None) -> None:
            await producer.send(
                settings.topic(spec.name),
                encode(msg),
                key=start.run_id.encode(),
                partition=partition,
            )

        await send(RUNS, start, 0)
        for done in run.completed:
            await send(TICKS, done, 0)
        for ev in run.events:
            await send(EVENTS, ev)
        for part in run.parts:
            if part.tick == corrupt and part.source == "shard":
                part = part.model_copy(update={"sha256": "0" * 64})
            await send(SNAPSHOTS, part, 0)
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture
async def parent(lineage_settings: Settings) -> LocalRun:
    index = load_world("town")
    run = LocalRun(index, "api-parent", seed=9, n_shards=2, snapshot_every=16)
    for _ in range(TICKS_PLAYED):
        run.step()
    await write_log(lineage_settings, run, run.start_command(), corrupt=31)
    return run


async def test_replay_reports_an_identical_run(lineage_api: TestClient, parent: LocalRun) -> None:
    got = lineage_api.post("/admin/runs/api-parent/replay", headers=AUTH)
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["identical"] and report["ticks"] == TICKS_PLAYED
    assert report["snapshots"] == {
        "15": "verified",
        "31": "refused: shard part 0/0: checksum mismatch",
    }


async def test_branch_sends_the_states_and_then_the_start(
    lineage_api: TestClient, lineage_settings: Settings, parent: LocalRun
) -> None:
    got = lineage_api.post(
        "/admin/runs/api-parent/branch", headers=AUTH, json={"at_tick": 35, "run_id": "api-child"}
    )
    assert got.status_code == 202, got.text
    body = got.json()
    # the snapshot at 31 is corrupt: restored from 15, and said so
    assert body["restored_from"] == 15 and body["replayed"] == 20
    assert "snapshot at tick 31 refused" in body["notes"][0]
    restores = [
        m for m in await read_topic(lineage_settings, SHARD_INBOX) if isinstance(m, StateRestored)
    ]
    assert {m.shard for m in restores} == {0, 1} and {m.run_id for m in restores} == {"api-child"}
    restored = {n: s for m in restores for n, s in m.states.items()}
    assert restored == {n: s for n, s in parent_states_at(parent, 35).items()}
    starts = [
        m for m in await read_topic(lineage_settings, CLOCK_INBOX) if isinstance(m, RunCommanded)
    ]
    assert [(s.run_id, s.parent_run, s.branch_tick) for s in starts] == [
        ("api-child", "api-parent", 35)
    ]
    first = [p for p in await read_topic(lineage_settings, SNAPSHOTS) if p.run_id == "api-child"]
    assert {(p.tick, p.source) for p in first} == {(35, "clock"), (35, "shard")}


def parent_states_at(parent: LocalRun, tick: int) -> dict:
    again = LocalRun(parent.index, "again", seed=9)
    for _ in range(tick + 1):
        again.step()
    return again.snapshot().states


async def test_bad_branches_are_refused_with_the_reason(
    lineage_api: TestClient, lineage_settings: Settings, parent: LocalRun
) -> None:
    unknown = lineage_api.post("/admin/runs/nope/branch", headers=AUTH, json={"at_tick": 1})
    assert unknown.status_code == 404
    beyond = lineage_api.post("/admin/runs/api-parent/branch", headers=AUTH, json={"at_tick": 500})
    assert beyond.status_code == 422
    assert f"its last tick is {TICKS_PLAYED - 1}" in beyond.json()["detail"]
    bad = lineage_api.post("/admin/runs/api-parent/branch", headers=AUTH, json={"at_tick": -1})
    assert bad.status_code == 422
    no_token = lineage_api.post("/admin/runs/api-parent/branch", json={"at_tick": 1})
    assert no_token.status_code == 401
    # a run that ran with another catalog
    run = LocalRun(parent.index, "api-old", seed=9)
    for _ in range(4):
        run.step()
    old = run.start_command().model_copy(update={"catalog_digest": "a" * 64})
    await write_log(lineage_settings, run, old)
    changed = lineage_api.post("/admin/runs/api-old/branch", headers=AUTH, json={"at_tick": 2})
    assert changed.status_code == 409
    assert (
        "a" * 64 in changed.json()["detail"]
        and parent.index.catalog.digest in changed.json()["detail"]
    )
    asked = lineage_api.post(
        "/admin/runs/api-old/branch",
        headers=AUTH,
        json={"at_tick": 2, "allow_catalog_change": True},
    )
    assert asked.status_code == 202, asked.text


async def test_snapshot_request_goes_to_the_clock(
    lineage_api: TestClient, lineage_settings: Settings, parent: LocalRun
) -> None:
    got = lineage_api.post("/admin/runs/api-parent/snapshots", headers=AUTH)
    assert got.status_code == 202, got.text
    assert lineage_api.post("/admin/runs/nope/snapshots", headers=AUTH).status_code == 404
    commands = [
        m for m in await read_topic(lineage_settings, CLOCK_INBOX) if isinstance(m, RunCommanded)
    ]
    assert [(c.command, c.run_id) for c in commands] == [("snapshot", "api-parent")]


async def test_diff_of_a_run_with_itself_shows_no_divergence(
    lineage_api: TestClient, parent: LocalRun
) -> None:
    got = lineage_api.get("/runs/api-parent/diff/api-parent")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["first_divergent_tick"] is None and body["common_ticks"] == TICKS_PLAYED
    assert lineage_api.get("/runs/api-parent/diff/nope").status_code == 404


def test_snapshot_parts_survive_the_topic_codec() -> None:
    run = LocalRun(load_world("town"), "codec", seed=1, snapshot_every=2)
    for _ in range(2):
        run.step()
    for part in run.parts:
        assert SnapshotPart.model_validate_json(encode(part)) == part
