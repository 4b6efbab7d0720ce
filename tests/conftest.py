"""Shared fixtures: the real services, one per session; everything else per test."""

from __future__ import annotations

import signal
from types import FrameType

import pytest

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.clickhouse",
    "tests.fixtures.triton",
    "tests.fixtures.processes",
]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI timeout, ``kill``) stops the session like Ctrl-C does: pytest then runs
    the fixtures' teardown, which stops every broker, Triton server and worker they
    started (by default SIGTERM ends Python at once and leaves them running)."""
    signal.signal(signal.SIGTERM, _interrupt)
