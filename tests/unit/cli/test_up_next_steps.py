"""What ``worldfeed up`` prints at the end: URLs, the admin token's whereabouts, kcat."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.up import next_steps
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
