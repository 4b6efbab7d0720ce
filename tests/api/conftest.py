"""Fixtures of the API tests: one chDB engine per session, one database per test.

chDB hosts one engine per process, so every test in the session shares the engine at
``chdb_path`` (under pytest's session base temp dir, the same path whichever test
module asks first) and gets its own database with a uuid suffix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from storage import ClickHouseWriter
from topics.models import EventHappened, ImpactScore, PostPublished, TickCompleted
from worldfeed.settings import Settings


@pytest.fixture
def database(ch_database: Callable[[], str]) -> str:
    """This test's database."""
    return ch_database()


@pytest.fixture
def writer(ch_client: Client, database: str) -> ClickHouseWriter:
    """A writer into this test's database."""
    return ClickHouseWriter(ch_client, database, batch_size=1000, flush_s=0.5)


# The API answers only the Host names of settings.api_allowed_hosts (loopback by default);
# TestClient's own default, "testserver", is not one of them.
BASE_URL = "http://localhost"


@pytest.fixture
def api_settings(chdb_path: Path, database: str, tmp_path: Path) -> Callable[..., Settings]:
    """Factory: Settings over this test's database (keyword arguments override), whose
    generated admin token goes to the test's own directory."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "clickhouse_dsn": f"chdb://{chdb_path}?database={database}",
            "admin_token_file": tmp_path / "admin-token",
        }
        return Settings(**{**values, **overrides})

    return make


@pytest.fixture
def client_of() -> Callable[[FastAPI], TestClient]:
    """Factory: a TestClient of an app, sending a ``Host`` the app answers."""

    def make(app: FastAPI) -> TestClient:
        return TestClient(app, base_url=BASE_URL)

    return make


@pytest.fixture
def api(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
) -> Iterator[TestClient]:
    """A TestClient (lifespan run) over this test's database."""
    with client_of(create_app(api_settings(), ch_client)) as client:
        yield client


@pytest.fixture
def event_factory() -> Callable[..., EventHappened]:
    """Builds an EventHappened; keyword arguments override the defaults."""

    def make(i: int, **kw: Any) -> EventHappened:
        fields: dict[str, Any] = {
            "event_id": f"ev_{i:016x}",
            "run_id": "run1",
            "tick": i,
            "sim_minute": i * 15,
            "type": "greeted",
            "actor": "npc_a",
            "target": "npc_b",
            "place": "cafe",
            "witnesses": ["npc_c"],
            "summary": f"event {i}",
            "impact": ImpactScore(novelty=0.5, conflict=0.1, status=0.2, cascade=0.0, total=0.4),
        }
        fields.update(kw)
        return EventHappened(**fields)

    return make


@pytest.fixture
def post_factory() -> Callable[..., PostPublished]:
    """Builds a PostPublished; keyword arguments override the defaults."""

    def make(i: int, **kw: Any) -> PostPublished:
        fields: dict[str, Any] = {
            "post_id": f"po_{i:016x}",
            "request_id": f"rq_{i:016x}",
            "run_id": "run1",
            "event_id": f"ev_{i:016x}",
            "channel": "feed",
            "author": "npc_a",
            "tick": i,
            "sim_minute": i * 15,
            "body": f"post {i}",
            "source": "llm",
            "score": 0.5,
            "tokens_in": 100,
            "tokens_out": 20,
        }
        fields.update(kw)
        return PostPublished(**fields)

    return make


@pytest.fixture
def tick_factory() -> Callable[..., TickCompleted]:
    """Builds a TickCompleted; keyword arguments override the defaults."""

    def make(i: int, **kw: Any) -> TickCompleted:
        fields: dict[str, Any] = {
            "run_id": "run1",
            "tick": i,
            "sim_minute": i * 15,
            "state_hash": f"{i:016x}",
            "npcs": 30,
            "events": 2,
            "effects": 4,
            "wall_ms": 3.5,
        }
        fields.update(kw)
        return TickCompleted(**fields)

    return make
