"""storage/ at volume on the real ClickHouse engine (chDB): a 100k-row insert timing and
the feed projections' read plans over 100k posts.

The rest of storage (mapping, dedup, migrations, reads) is tested on the same engine in
tests/unit/storage. One chDB engine per process: the session's engine (the same path
tests/api uses), and every test gets its own database.
"""

from __future__ import annotations

import time

import pytest
from clickhouse_connect.driver.client import Client

from storage import ClickHouseWriter, row_for
from topics.models import PostPublished

pytestmark = pytest.mark.integration


def _post(i: int, **kw: object) -> PostPublished:
    fields: dict[str, object] = {
        "post_id": f"po_{i:016x}",
        "request_id": f"rq_{i:016x}",
        "run_id": "run1",
        "event_id": f"ev_{i:016x}",
        "channel": ("feed", "chat", "news")[i % 3],
        "author": f"npc_{i % 97}",
        "tick": i // 10,
        "sim_minute": i // 10 * 15,
        "body": f"post number {i}",
        "source": "llm",
        "score": 0.5,
    }
    fields.update(kw)
    return PostPublished(**fields)  # type: ignore[arg-type]  # test builder


def _count(client: Client, database: str, table: str, final: bool = False) -> int:
    return int(client.command(f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''}"))  # noqa: S608 - checked identifiers, values bound


def test_insert_100k_rows_timing(ch_client: Client, ch_database, capsys) -> None:
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=100_000)
    rows = [row_for(_post(i))[1] for i in range(100_000)]
    for row in rows:
        writer.add("posts", row)
    started = time.perf_counter()
    assert writer.flush_sync() == {"posts": 100_000}
    elapsed = time.perf_counter() - started
    assert writer.inserts == 1
    assert _count(ch_client, database, "posts") == 100_000
    started = time.perf_counter()
    count = _count(ch_client, database, "posts", final=True)
    final_s = time.perf_counter() - started
    assert count == 100_000
    with capsys.disabled():
        print(
            f"\n100k posts: one insert {elapsed:.2f} s ({100_000 / elapsed:,.0f} rows/s); "
            f"count() FINAL {final_s * 1000:.0f} ms"
        )


@pytest.mark.parametrize(
    ("filters", "projection"),
    [
        ({"run_id": "run1"}, "feed_by_run"),
        ({"run_id": "run1", "author": "npc_5"}, "feed_by_author"),
        ({"channel": "news"}, "feed_by_channel"),
        ({"run_id": "run1", "channel": "news"}, None),  # the table's own key
    ],
)
def test_feed_reads_in_order_from_the_projection_for_its_filters(
    ch_client: Client, ch_database, filters: dict[str, str], projection: str | None
) -> None:
    """Each common feed filter has a key it reads newest-first (migration 0004)."""
    database = ch_database()
    writer = ClickHouseWriter(ch_client, database, batch_size=100_000)
    # enough granules (8192 rows) that the keys prune differently; two runs
    writer.write_messages([_post(i, run_id=f"run{i % 2 + 1}") for i in range(100_000)])
    where = " AND ".join(f"{k} = '{v}'" for k, v in filters.items())
    plan = "\n".join(
        row[0]
        for row in ch_client.query(
            f"EXPLAIN actions = 1 SELECT post_id FROM {database}.posts WHERE {where} "  # noqa: S608 - test constants
            "ORDER BY tick DESC, post_id DESC LIMIT 10"
        ).result_rows
    )
    assert f"ReadFromMergeTree ({projection or f'{database}.posts'})" in plan, plan
    assert "InReverseOrder" in plan, plan
