"""``worldfeed sql`` against the API served over HTTP (real chDB): table, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from api.main import create_app
from cli.main import main
from cli.sql import format_result
from storage import ClickHouseWriter
from tests.fixtures.live_api import serve
from worldfeed.settings import Settings


@pytest.fixture
def api_url(chdb_path: Path, ch_client: Client, database: str) -> Iterator[str]:
    settings = Settings(env="test", clickhouse_dsn=f"chdb://{chdb_path}?database={database}")
    with serve(create_app(settings, ch_client)) as url:
        yield url


QUERY = (
    "SELECT channel, count() AS posts FROM posts WHERE run_id = 'run1' "
    "GROUP BY channel ORDER BY channel"
)


def test_sql_formats(
    api_url: str, writer: ClickHouseWriter, post_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    writer.write_messages(
        [post_factory(i, channel="chat" if i % 2 else "feed", body=f'p, "{i}"') for i in range(5)]
    )
    assert main(["sql", QUERY, "--api", api_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["channel", "posts"]
    assert table[2].split() == ["chat", "2"] and table[3].split() == ["feed", "3"]
    assert table[-1] == "(2 rows)"

    assert main(["sql", QUERY, "--api", api_url, "--format", "csv"]) == 0
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == [
        ["channel", "posts"],
        ["chat", "2"],
        ["feed", "3"],
    ]

    assert (
        main(
            [
                "sql",
                "SELECT body FROM posts ORDER BY post_id LIMIT 1",
                "--api",
                api_url,
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"body": 'p, "0"'}]


def test_sql_errors_are_one_line_on_stderr(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "DROP TABLE posts", "--api", api_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("worldfeed sql: 403: read-only")
    assert main(["sql", "SELECT 1", "--api", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the API" in capsys.readouterr().err


def test_table_cuts_long_cells_and_aligns_numbers() -> None:
    text = format_result(
        {"columns": ["n", "s"], "rows": [[1, "x" * 100], [22, None]], "truncated": True}, "table"
    )
    lines = text.splitlines()
    assert lines[2].startswith(" 1  ") and len(lines[2]) < 70
    assert lines[-1] == "(2 rows, truncated at the row or byte limit)"
