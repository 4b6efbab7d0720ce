"""Worlds through the API (issue 13): runs start on world names only, responses show no
server path, world generation is bounded and one at a time, catalogs load off the event
loop and stay within a memory budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes import admin
from api.worlds import CATALOG_WORLDS, UnknownWorld, WorldCatalogs, catalog_bytes
from catalog import Catalog
from catalog.generate import generate_world, write_world
from storage import ClickHouseWriter
from topics.models import RunCommanded
from worldfeed.settings import Settings

TOKEN = "s3cret-admin-token-of-worlds"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def make_api(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
    tmp_path: Path,
) -> Iterator[Callable[..., TestClient]]:
    """Factory: a started TestClient of the API (settings overridden by keywords); no broker
    (commands get a 503), which these tests do not need."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = api_settings(admin_token=TOKEN, kafka_bootstrap="127.0.0.1:1", **overrides)
        client = client_of(create_app(settings, ch_client, worlds_dir=tmp_path / "worlds"))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("world", ["/etc", "../town", "/usr", "catalog/worlds/town", "Town", ""])
def test_a_run_starts_on_a_world_name_only(make_api: Callable[..., TestClient], world: str) -> None:
    api = make_api()
    response = api.post("/admin/runs", headers=AUTH, json={"world": world})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "world"]
    assert str(Path.cwd()) not in response.text and "/work" not in detail["msg"]


def test_an_unknown_world_name_answers_the_same_whatever_exists_on_disk(
    make_api: Callable[..., TestClient],
) -> None:
    api = make_api()
    answers = {}
    for world in ("tmp", "etc", "nosuchworld"):  # /tmp exists on the server, the others not
        response = api.post("/admin/runs", headers=AUTH, json={"world": world})
        assert response.status_code == 422
        answers[world] = response.json()["detail"][0]["msg"].replace(repr(world), "W")
    assert len(set(answers.values())) == 1, answers


def test_runs_show_world_names_not_server_paths(
    api: TestClient, writer: ClickHouseWriter, tmp_path: Path
) -> None:
    secret = tmp_path / "srv" / "worlds" / "village"
    writer.write_messages(
        [
            RunCommanded(command="start", run_id="r-path", world=str(secret)),
            RunCommanded(command="start", run_id="r-name", world="town"),
        ]
    )
    runs = {r["run_id"]: r for r in api.get("/runs").json()}
    assert runs["r-path"]["world"] == "village" and runs["r-name"]["world"] == "town"
    assert api.get("/runs/r-path").json()["world"] == "village"
    assert str(tmp_path) not in api.get("/runs").text


def test_world_generation_is_bounded_by_relationships(
    make_api: Callable[..., TestClient], tmp_path: Path
) -> None:
    api = make_api(world_max_relationships=300)
    too_many = {"name": "dense", "npcs": 20, "relationship_density": 1}  # 20 x 19 x 1 = 380
    response = api.post("/admin/worlds", headers=AUTH, json=too_many)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "relationship_density"] and "380" in detail["msg"]
    assert not (tmp_path / "worlds" / "dense").exists()
    ok = {"name": "sparse", "npcs": 20, "relationship_density": 0.5}  # 190
    created = api.post("/admin/worlds", headers=AUTH, json=ok)
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"name", "npcs", "places", "relationships"}  # no path
    assert created.json()["relationships"] <= 300
    # the shipped worlds' names are taken too
    town = {"name": "town", "relationship_density": 0}
    assert api.post("/admin/worlds", headers=AUTH, json=town).status_code == 409


def test_the_default_cap_refuses_the_biggest_dense_world(
    make_api: Callable[..., TestClient], tmp_path: Path
) -> None:
    api = make_api()
    huge = {"name": "huge", "npcs": 20_000, "relationship_density": 1}
    started = time.monotonic()
    response = api.post("/admin/worlds", headers=AUTH, json=huge)
    assert response.status_code == 422 and time.monotonic() - started < 5
    assert not (tmp_path / "worlds" / "huge").exists()


def test_one_world_generation_at_a_time(
    make_api: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one generation runs (held at a gate), a second gets a 429, then may go."""
    gate, entered = threading.Event(), threading.Event()
    real = admin.generate_world

    def held(*args: object) -> Catalog:
        entered.set()
        assert gate.wait(30)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(admin, "generate_world", held)
    api = make_api()
    results: dict[str, int] = {}
    first = threading.Thread(
        target=lambda: results.update(
            first=api.post("/admin/worlds", headers=AUTH, json={"name": "one"}).status_code
        )
    )
    first.start()
    assert entered.wait(30)
    busy = api.post("/admin/worlds", headers=AUTH, json={"name": "two"})
    assert busy.status_code == 429, busy.text
    assert busy.headers["retry-after"]
    gate.set()
    first.join(30)
    assert results == {"first": 201}
    assert api.post("/admin/worlds", headers=AUTH, json={"name": "two"}).status_code == 201


def test_loading_a_big_world_does_not_block_the_event_loop(
    make_api: Callable[..., TestClient], tmp_path: Path
) -> None:
    """Starting a run validates the world's catalog (seconds for a big one) in a thread:
    /health keeps answering meanwhile."""
    write_world(generate_world(2000, 1, None, 0.5), tmp_path / "worlds" / "big")
    api = make_api()
    catalogs: WorldCatalogs = api.app.state.catalogs  # type: ignore[attr-defined]
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (api.post("/admin/runs", headers=AUTH, json={"world": "big"}), done.set())
    )
    thread.start()
    slowest, answered = 0.0, 0
    while not done.is_set():
        started = time.monotonic()
        assert api.get("/health").status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        answered += 1
    thread.join(60)
    assert len(catalogs) == 1  # the start did load the big catalog (and kept it)
    assert slowest < 2.0, f"/health waited {slowest:.1f}s behind the catalog load"
    assert answered >= 3, "the load was too fast to tell"


def test_cached_catalogs_stay_within_their_memory_budget(tmp_path: Path) -> None:
    for name, npcs in (("a", 200), ("b", 200), ("c", 200), ("big", 2000)):
        write_world(generate_world(npcs, 1), tmp_path / name)
    size = catalog_bytes(tmp_path / "a")
    assert size > 1_000_000  # estimated memory, not an entry count
    catalogs = WorldCatalogs([tmp_path], max_bytes=int(size * 2.5))
    first = catalogs.load(catalogs.path_of("a"))
    assert catalogs.load(catalogs.path_of("a")) is first  # cached
    catalogs.load(catalogs.path_of("b"))
    catalogs.load(catalogs.path_of("c"))
    assert len(catalogs) == 2 and catalogs.nbytes <= catalogs.max_bytes
    assert catalogs.load(catalogs.path_of("a")) is not first  # the least recent went
    big = catalogs.load(catalogs.path_of("big"))  # larger than the budget: served, not kept
    assert len(big.npcs) == 2000 and catalogs.nbytes <= catalogs.max_bytes
    assert catalogs.load(catalogs.path_of("big")) is not big


def test_world_names_resolve_under_the_worlds_directories_only(tmp_path: Path) -> None:
    catalogs = WorldCatalogs([CATALOG_WORLDS, tmp_path], max_bytes=2**30)
    assert catalogs.path_of("town") == (CATALOG_WORLDS / "town").resolve()
    for bad in ("../town", "/etc", str(CATALOG_WORLDS / "town"), "nope"):
        with pytest.raises(UnknownWorld) as caught:
            catalogs.path_of(bad)
        # the message shows the name it was given, never where it looked
        assert str(CATALOG_WORLDS) not in str(caught.value).replace(bad, "")
