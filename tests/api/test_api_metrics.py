"""GET /metrics of the API, and the request latency by route template."""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from worldfeed.metrics import REGISTRY
from worldfeed.settings import Settings


def requests_of(route: str, status: str = "2xx") -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("worldfeed_api_request_duration_seconds_count", labels) or 0


def test_metrics_page_is_prometheus_text(api: TestClient) -> None:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    for name in (
        "worldfeed_api_request_duration_seconds",
        "worldfeed_stage_messages_total",
        "worldfeed_consumer_lag_messages",
        "process_resident_memory_bytes",
    ):
        assert f"# TYPE {name} " in body, name
    assert "/metrics" not in api.get("/openapi.json").json()["paths"]


def test_requests_are_timed_by_route_template_not_raw_path(api: TestClient) -> None:
    feed, post = requests_of("/feed"), requests_of("/posts/{post_id}", "4xx")
    assert api.get("/feed?channel=feed").status_code == 200
    assert api.get("/posts/no-such-post").status_code == 404
    assert api.get("/posts/another-one").status_code == 404
    assert requests_of("/feed") - feed == 1
    assert requests_of("/posts/{post_id}", "4xx") - post == 2
    assert "no-such-post" not in api.get("/metrics").text


def test_unrouted_requests_share_one_label(api: TestClient) -> None:
    before = requests_of("unmatched", "4xx")
    api.get("/nothing/here/1")
    api.get("/nothing/here/2")
    assert requests_of("unmatched", "4xx") - before == 2


def test_health_leaves_lag_out_without_consumers(api: TestClient) -> None:
    assert "lag" not in api.get("/health").json()


def test_health_reports_the_sinks_lag_and_last_tick_where_it_runs_one(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
) -> None:
    def progress() -> tuple[dict[str, dict[str, int]], int | None]:
        return {"wf-sink": {"wf.events": 3}}, 41

    with client_of(create_app(api_settings(), ch_client, progress=progress)) as client:
        body = client.get("/health").json()
    assert body["lag"] == {"wf-sink": {"wf.events": 3}}
    assert body["last_tick"] == 41


def test_live_streams_are_not_timed(api: TestClient) -> None:
    assert api.get("/stream/posts?poll_s=bad").status_code == 422  # routed, answered at once
    assert "/stream/posts" not in api.get("/metrics").text
