"""storage.clickhouse: DSNs, and one cached engine per chDB path in a process."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from storage import connect, database_of, is_embedded
from storage.clickhouse import chdb_path_of


def test_connect_caches_one_client_per_chdb_path(chdb_path: Path, ch_client: Client) -> None:
    assert connect(f"chdb://{chdb_path}") is ch_client
    assert connect(f"chdb:///{chdb_path}/?database=other") is ch_client
    assert chdb_path_of(f"chdb://{chdb_path}/") == str(chdb_path.resolve())


def test_dsns_name_their_database() -> None:
    assert is_embedded("chdb:///x") and not is_embedded("http://ch:8123")
    assert database_of("chdb:///data/ch") == "worldfeed"
    assert database_of("chdb:///data/ch?database=wf_x") == "wf_x"
    assert database_of("http://u:p@ch:8123/analytics") == "analytics"
    assert database_of("http://ch:8123") == "worldfeed"
    with pytest.raises(ValueError, match="identifier"):
        database_of("http://ch:8123/bad-name;drop")
    with pytest.raises(ValueError, match="without a path"):
        chdb_path_of("chdb://")
