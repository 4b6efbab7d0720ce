"""Admin routes: bearer token (401 / 403), run commands onto the real broker, catalog
validation of injected events, synthetic worlds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from bus.admin import ensure_topics
from storage import ClickHouseWriter
from tests.fixtures.processes import read_until
from topics import CLOCK_INBOX
from topics.models import RunCommanded
from worldfeed.settings import Settings

TOKEN = "s3cret-admin-token"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin_settings(
    settings_factory: Callable[..., Settings], chdb_path: Path, database: str
) -> Settings:
    return settings_factory(
        clickhouse_dsn=f"chdb://{chdb_path}?database={database}", admin_token=TOKEN
    )


@pytest.fixture
def admin_api(
    admin_settings: Settings,
    ch_client: Client,
    tmp_path: Path,
    client_of: Callable[[FastAPI], TestClient],
) -> Iterator[TestClient]:
    app = create_app(admin_settings, ch_client, worlds_dir=tmp_path / "worlds")
    with client_of(app) as client:
        yield client


ADMIN_CALLS = [
    ("post", "/admin/runs", {"seed": 1}),
    ("post", "/admin/runs/r1/pause", None),
    ("post", "/admin/runs/r1/resume", None),
    ("post", "/admin/runs/r1/stop", None),
    ("post", "/admin/runs/r1/speed", {"speed": 2}),
    ("post", "/admin/runs/r1/inject", {"type": "x", "actor": "y"}),
    ("post", "/admin/worlds", {"name": "w"}),
    ("post", "/admin/sql", {"query": "SELECT 1"}),
    ("post", "/admin/runs/r1/snapshots", None),
    ("post", "/admin/runs/r1/replay", None),
    ("post", "/admin/runs/r1/branch", {"at_tick": 1}),
    ("post", "/admin/runs", "not json"),
    ("get", "/admin", None),
    ("get", "/admin/anything", None),
]


def test_no_admin_route_without_the_token(admin_api: TestClient) -> None:
    for method, path, body in ADMIN_CALLS:
        kw = {"content": body} if isinstance(body, str) else {"json": body}
        missing = admin_api.request(method, path, **kw)
        assert missing.status_code == 401, (path, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        for header in ("Bearer wrong", "Basic " + TOKEN, "Bearer"):
            wrong = admin_api.request(method, path, headers={"Authorization": header}, **kw)
            assert wrong.status_code in (401, 403), (path, header, wrong.text)
        assert (
            admin_api.request(method, path, headers={"Authorization": "Bearer x"}, **kw).status_code
            == 403
        )
    spec = admin_api.get("/openapi.json").json()
    admin_ops = [p for p in spec["paths"] if p.startswith("/admin")]
    assert len(admin_ops) == 11


async def test_run_commands_land_on_the_clock_inbox(
    admin_api: TestClient, admin_settings: Settings, writer: ClickHouseWriter
) -> None:
    await ensure_topics(admin_settings)  # as the worker / the API's sink does at start-up
    started = admin_api.post(
        "/admin/runs",
        headers=AUTH,
        json={"run_id": "adm1", "seed": 7, "world": "town", "days": 0.5, "speed": 2},
    )
    assert started.status_code == 202, started.text
    assert started.json()["run_id"] == "adm1"
    assert started.json()["topic"] == admin_settings.topic(CLOCK_INBOX.name)
    # the sink stores the run start; then the run is known to the control routes
    writer.write_messages([RunCommanded(command="start", run_id="adm1", seed=7, world="town")])
    assert admin_api.post("/admin/runs", headers=AUTH, json={"run_id": "adm1"}).status_code == 409
    for command in ("pause", "resume", "stop"):
        resp = admin_api.post(f"/admin/runs/adm1/{command}", headers=AUTH)
        assert resp.status_code == 202, resp.text
    injected = admin_api.post(
        "/admin/runs/adm1/inject",
        headers=AUTH,
        json={
            "type": "gossip",
            "actor": "eleanor_hart",
            "target": "sam_okafor",
            "place": "market_square",
        },
    )
    if injected.status_code == 422:  # the town has no such type / place: take real ones
        pytest.fail(injected.text)
    assert injected.status_code == 202
    msgs = await read_until(admin_settings, CLOCK_INBOX, lambda m: len(m) >= 5, 60)
    assert [(m.command, m.run_id) for m in msgs] == [
        ("start", "adm1"),
        ("pause", "adm1"),
        ("resume", "adm1"),
        ("stop", "adm1"),
        ("inject", "adm1"),
    ]
    assert msgs[0].seed == 7 and msgs[0].days == 0.5 and msgs[0].speed == 2
    assert msgs[4].event is not None and msgs[4].event.actor == "eleanor_hart"
    assert admin_api.post("/admin/runs/nope/pause", headers=AUTH).status_code == 404


async def test_speed_and_a_start_on_any_day_land_on_the_clock_inbox(
    admin_api: TestClient, admin_settings: Settings, writer: ClickHouseWriter
) -> None:
    await ensure_topics(admin_settings)
    started = admin_api.post(
        "/admin/runs",
        headers=AUTH,
        json={"run_id": "adm3", "start_day": 3, "start_time": "07:45"},
    )
    assert started.status_code == 202, started.text
    for bad in ({"start_day": 0}, {"start_time": "24:00"}, {"start_time": "7:45"}):
        resp = admin_api.post("/admin/runs", headers=AUTH, json=bad)
        assert resp.status_code == 422, (bad, resp.text)
    writer.write_messages([RunCommanded(command="start", run_id="adm3", world="town")])
    resp = admin_api.post("/admin/runs/adm3/speed", headers=AUTH, json={"speed": 4})
    assert resp.status_code == 202, resp.text
    assert resp.json()["command"] == "speed"
    for bad_speed in ({"speed": -1}, {}, {"speed": 1, "pace": 2}):
        resp = admin_api.post("/admin/runs/adm3/speed", headers=AUTH, json=bad_speed)
        assert resp.status_code == 422, (bad_speed, resp.text)
    unknown = admin_api.post("/admin/runs/nope/speed", headers=AUTH, json={"speed": 1})
    assert unknown.status_code == 404
    msgs = await read_until(admin_settings, CLOCK_INBOX, lambda m: len(m) >= 2, 60)
    assert [(m.command, m.run_id) for m in msgs] == [("start", "adm3"), ("speed", "adm3")]
    assert msgs[0].start_minute == 2 * 1440 + 7 * 60 + 45  # day 3, 07:45
    assert msgs[1].speed == 4


def test_inject_is_validated_against_the_catalog(
    admin_api: TestClient, writer: ClickHouseWriter
) -> None:
    writer.write_messages([RunCommanded(command="start", run_id="adm2", world="town")])
    good = {
        "type": "gossip",
        "actor": "eleanor_hart",
        "target": "sam_okafor",
        "place": "market_square",
    }
    for field, value in (("type", "levitated"), ("actor", "ghost"), ("place", "moon")):
        resp = admin_api.post("/admin/runs/adm2/inject", headers=AUTH, json={**good, field: value})
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"][0]
        assert detail["loc"] == ["body", field] and value in detail["msg"]
    resp = admin_api.post("/admin/runs/adm2/inject", headers=AUTH, json={**good, "target": "ghost"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "target"]
    resp = admin_api.post("/admin/runs/adm2/inject", headers=AUTH, json={"type": "x"})
    assert resp.status_code == 422 and "actor" in resp.text
    resp = admin_api.post("/admin/runs", headers=AUTH, json={"world": "atlantis"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "world"]
    assert admin_api.post("/admin/runs", headers=AUTH, json={"days": -1}).status_code == 422


async def test_seed_a_world_and_use_it_for_a_run(
    admin_api: TestClient, admin_settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(admin_settings)
    resp = admin_api.post("/admin/worlds", headers=AUTH, json={"name": "village", "npcs": 40})
    assert resp.status_code == 201, resp.text
    world = resp.json()
    assert world["npcs"] == 40 and world["name"] == "village"
    assert (tmp_path / "worlds" / "village" / "npcs.json").is_file()
    again = admin_api.post("/admin/worlds", headers=AUTH, json={"name": "village", "npcs": 40})
    assert again.status_code == 409
    bad = admin_api.post("/admin/worlds", headers=AUTH, json={"name": "../etc", "npcs": 40})
    assert bad.status_code == 422
    started = admin_api.post(
        "/admin/runs", headers=AUTH, json={"run_id": "v1", "world": "village", "days": 0.25}
    )
    assert started.status_code == 202, started.text
    # the world processor gets the directory of a world it cannot resolve by name
    msgs = await read_until(admin_settings, CLOCK_INBOX, lambda m: len(m) >= 1, 60)
    assert msgs[0].world == str((tmp_path / "worlds" / "village").resolve())
