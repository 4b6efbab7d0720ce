"""Settings travel to subprocesses as WORLDFEED_* variables (workers, the API, benchmarks)."""

from __future__ import annotations

import pytest

from worldfeed.settings import Settings


def test_every_setting_survives_the_trip_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An optional setting left unset (None) comes back unset, a set one comes back as is:
    a worker started with to_env() builds the same Settings (a None written as 'None' once
    made every worker refuse to start)."""
    for given in (
        Settings(),
        Settings(world_snapshot_every_ticks=7, admin_token="x" * 32, world_partitions=3),
    ):
        for name, value in given.to_env().items():
            monkeypatch.setenv(name, value)
        again = Settings()
        assert again.model_dump() == given.model_dump()
