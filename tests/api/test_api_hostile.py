"""Hostile inputs (issue 13): tick bounds and security headers."""

from __future__ import annotations

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
