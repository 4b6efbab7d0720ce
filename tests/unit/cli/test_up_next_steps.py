"""What ``worldfeed up`` prints at the end: URLs, the admin token's whereabouts, kcat."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.up import next_steps, worker_metrics_port
from worldfeed.settings import Settings


def test_next_steps_name_the_urls_and_the_real_topics() -> None:
    settings = Settings(api_port=8123, topic_prefix="t1.", kafka_bootstrap="127.0.0.1:9333,h:1")
    text = "\n".join(next_steps(settings, "run-7"))
    assert "http://127.0.0.1:8123/?run_id=run-7" in text
    assert "http://127.0.0.1:8123/docs" in text
    assert "kcat -b 127.0.0.1:9333 -t t1.posts -C" in text
    assert "t1.events" in text and "wf." not in text


def test_admin_token_from_a_file_is_shown_as_a_command_not_a_secret(tmp_path: Path) -> None:
    token = tmp_path / "admin-token"
    token.write_text("s3cret-value\n")
    text = "\n".join(next_steps(Settings(admin_token_file=token), "r"))
    assert f"$(cat {token})" in text
    assert "s3cret-value" not in text


def test_a_token_from_the_environment_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLDFEED_ADMIN_TOKEN", "from-env-secret-0123456789")
    text = "\n".join(next_steps(Settings(), "r"))
    assert "from-env-secret" not in text
    assert "$WORLDFEED_ADMIN_TOKEN" in text


def test_next_steps_name_the_metrics_and_how_to_watch_them() -> None:
    text = "\n".join(next_steps(Settings(api_port=8123), "r", metrics_port=9464))
    assert "http://127.0.0.1:8123/metrics" in text and "port 9464" in text
    assert "worldfeed top" in text and "--target" not in text  # top's defaults find both
    text = "\n".join(next_steps(Settings(api_port=8123), "r", metrics_port=40123))
    assert "--target http://127.0.0.1:40123/metrics" in text  # another port: named


def test_the_worker_metrics_port_is_the_settings_or_a_free_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert worker_metrics_port(Settings(metrics_port=9555)) == 9555
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr("cli.up.UP_WORKER_METRICS_PORT", taken)  # as if 9464 were taken
        chosen = worker_metrics_port(Settings())
        assert chosen != taken and chosen > 0
    assert worker_metrics_port(Settings()) == taken  # free again: the preferred one
