"""Hostile inputs (issue 13): tick bounds and security headers."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from api.deps import MAX_TICK

TICK_ROUTES = ["/feed", "/posts", "/events", "/runs/run1/ticks", "/npcs/npc_1/timeline"]


@pytest.mark.parametrize("path", TICK_ROUTES)
@pytest.mark.parametrize("param", ["tick_from", "tick_to"])
@pytest.mark.parametrize("value", [MAX_TICK + 1, 2**63, -1])
def test_tick_filters_out_of_uint32_are_a_422(
    api: TestClient, path: str, param: str, value: int
) -> None:
    response = api.get(path, params={param: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", param]


@pytest.mark.parametrize("path", TICK_ROUTES)
@pytest.mark.parametrize("param", ["tick_from", "tick_to"])
def test_tick_filters_accept_the_whole_uint32_range(api: TestClient, path: str, param: str) -> None:
    response = api.get(path, params={param: MAX_TICK})
    assert response.status_code in (200, 404), response.text


def _csp(response: httpx.Response) -> dict[str, set[str]]:
    policy: dict[str, set[str]] = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        policy[name] = set(values)
    return policy


@pytest.mark.parametrize("path", ["/stats", "/", "/ui/npcs/npc_1", "/docs", "/redoc", "/nope"])
def test_security_headers_on_every_response(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = _csp(response)
    assert policy["default-src"] == {"'self'"}
    assert policy["frame-ancestors"] == {"'none'"}
    assert policy["object-src"] == {"'none'"}


def test_csp_of_the_ui_allows_only_its_own_files(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200
    policy = _csp(page)
    # the page loads /static/style.css and /static/app.js, and talks to its own origin
    assert 'href="/static/style.css"' in page.text and 'src="/static/app.js"' in page.text
    assert "<script>" not in page.text and "style=" not in page.text
    assert "'unsafe-inline'" not in str(policy) and "https:" not in str(policy)
    assert api.get("/static/app.js").headers["content-security-policy"]


def test_csp_of_the_docs_allows_what_swagger_ui_loads(api: TestClient) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    policy = _csp(page)
    for origin in re.findall(r'<script src="(https://[^/"]+)/', page.text):
        assert origin in policy["script-src"]
    for origin in re.findall(
        r'<link type="text/css" rel="stylesheet" href="(https://[^/"]+)/', page.text
    ):
        assert origin in policy["style-src"]
    for origin in re.findall(r'<link rel="shortcut icon" href="(https://[^/"]+)/', page.text):
        assert origin in policy["img-src"]
    assert "https://cdn.jsdelivr.net" in policy["script-src"]
    # the inline script that starts Swagger UI
    assert "<script>" in page.text and "'unsafe-inline'" in policy["script-src"]
