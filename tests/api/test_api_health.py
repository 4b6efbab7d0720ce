"""GET /health and the app factory's hooks."""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from worldfeed.settings import Settings


def test_health_reports_clickhouse_ok(api: TestClient) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"clickhouse": "ok"}}


def test_health_extra_checks_and_lifespan_hooks(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
) -> None:
    calls: list[str] = []

    async def kafka_ok() -> str:
        return "ok"

    async def triton_down() -> str:
        raise ConnectionError("connection refused")

    async def started() -> None:
        calls.append("start")

    async def stopped() -> None:
        calls.append("stop")

    app = create_app(
        api_settings(),
        ch_client,
        health_checks={"kafka": kafka_ok, "triton": triton_down},
        on_startup=[started],
        on_shutdown=[stopped],
    )
    with client_of(app) as client:
        assert calls == ["start"]
        response = client.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "degraded"
        assert body["checks"]["clickhouse"] == "ok"
        assert body["checks"]["kafka"] == "ok"
        assert body["checks"]["triton"].startswith("error: ConnectionError")
    assert calls == ["start", "stop"]


def test_openapi_docs(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/health",
        "/feed",
        "/posts",
        "/posts/{post_id}",
        "/events",
        "/runs",
        "/runs/{run_id}",
        "/stats",
    ):
        assert path in paths
