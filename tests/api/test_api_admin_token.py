"""The admin token (issue 13): generated on first start when unset, kept 0600, placeholders
refused; the Host header checked; the API binds to loopback by default."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.admin_token import AdminTokenError, read_or_create, usage
from api.main import create_app
from worldfeed.settings import PLACEHOLDER_TOKENS, Settings

REAL = "a-real-secret-token"


def _admin(client: TestClient, token: str) -> int:
    return client.get("/admin/nothing", headers={"Authorization": f"Bearer {token}"}).status_code


def test_an_unset_token_is_generated_once_kept_0600_and_opens_admin(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = api_settings()
    assert not settings.admin_token.get_secret_value()
    with caplog.at_level(logging.WARNING, logger="api.admin_token"):
        app = create_app(settings, ch_client)
    path = tmp_path / "admin-token"
    token = path.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the log says where the token is and how to send it
    assert str(path) in caplog.text and "Authorization: Bearer $(cat" in caplog.text
    with client_of(app) as client:
        assert _admin(client, token) == 404  # past the guard: no such admin route
        for guess in ("dev-admin-token", "change-me", "x" * 43):
            assert _admin(client, guess) == 403
    # the next start keeps the same token
    again = create_app(api_settings(), ch_client)
    with client_of(again) as client:
        assert _admin(client, token) == 404
    assert path.read_text().strip() == token


@pytest.mark.parametrize("token", sorted(PLACEHOLDER_TOKENS - {""}) + [" dev-admin-token "])
@pytest.mark.parametrize("env", ["dev", "test", "prod"])
def test_a_published_placeholder_token_is_refused_in_every_env(token: str, env: str) -> None:
    with pytest.raises(ValidationError, match="WORLDFEED_ADMIN_TOKEN is a published placeholder"):
        Settings(env=env, admin_token=token)


def test_prod_needs_a_configured_token() -> None:
    with pytest.raises(ValidationError, match="WORLDFEED_ADMIN_TOKEN must be set"):
        Settings(env="prod")
    assert Settings(env="prod", admin_token=REAL).admin_token


def test_a_token_file_others_can_read_or_holding_a_placeholder_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admin-token"
    path.write_text("a-long-enough-token-for-this-test\n")
    path.chmod(0o644)
    with pytest.raises(AdminTokenError, match="readable by others"):
        read_or_create(path)
    path.chmod(0o600)
    assert read_or_create(path) == "a-long-enough-token-for-this-test"
    for bad in ("dev-admin-token", "short", ""):
        path.write_text(bad)
        with pytest.raises(AdminTokenError, match="placeholder or a token shorter"):
            read_or_create(path)


def test_usage_names_the_file_or_the_variable(tmp_path: Path) -> None:
    from_file = usage(Settings(admin_token_file=tmp_path / "t"))
    assert f"$(cat {tmp_path / 't'})" in from_file and "http://127.0.0.1:8000/admin" in from_file
    configured = usage(Settings(admin_token=REAL, api_port=8123))
    assert "$WORLDFEED_ADMIN_TOKEN" in configured and ":8123/" in configured


def test_the_api_binds_to_loopback_by_default() -> None:
    settings = Settings()
    assert settings.api_host == "127.0.0.1"
    assert set(settings.api_allowed_hosts) <= {"localhost", "127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("localhost:8000", 200),
        ("127.0.0.1:8000", 200),
        ("[::1]:8000", 200),
        ("LOCALHOST", 200),
        ("evil.example", 400),
        ("evil.example:8000", 400),
        ("localhost.evil.example", 400),
        ("127.0.0.1.nip.io", 400),
        ("", 400),
        ("[::1", 400),
    ],
)
def test_the_host_header_must_be_an_allowed_name(api: TestClient, host: str, status: int) -> None:
    response = api.get("/health", headers={"Host": host})
    assert response.status_code == status, response.text
    if status == 400:
        assert "invalid Host header" in response.text
        assert response.headers["x-content-type-options"] == "nosniff"


def test_allowed_hosts_come_from_the_settings(
    api_settings: Callable[..., Settings],
    ch_client: Client,
    client_of: Callable[[FastAPI], TestClient],
) -> None:
    app = create_app(api_settings(api_allowed_hosts=["feed.example.org", "*.lan"]), ch_client)
    with client_of(app) as client:
        assert client.get("/health", headers={"Host": "feed.example.org"}).status_code == 200
        assert client.get("/health", headers={"Host": "box.lan:8000"}).status_code == 200
        assert client.get("/health", headers={"Host": "lan"}).status_code == 400
        assert client.get("/health", headers={"Host": "localhost"}).status_code == 400
    anywhere = create_app(api_settings(api_allowed_hosts=["*"]), ch_client)
    with client_of(anywhere) as client:
        assert client.get("/health", headers={"Host": "any.example"}).status_code == 200
