"""schemathesis against the OpenAPI spec: generated requests to every operation (the
in-process app over real chDB with some data) never get a 5xx.

Bounded: a few examples per operation, no deadline, so the run stays well under a minute.
The live stream never ends by design, so it is left out (tests/api/test_api_stream.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.main import create_app
from storage import ClickHouseWriter
from topics.models import NpcSnapshotted, RunCommanded
from worldfeed.settings import Settings


@pytest.fixture
def api_schema(
    chdb_path: Path,
    ch_client: Client,
    database: str,
    writer: ClickHouseWriter,
    event_factory,
    post_factory,
    tick_factory,
    tmp_path: Path,
) -> Iterator[schemathesis.BaseSchema]:
    writer.write_messages(
        [RunCommanded(command="start", run_id="run1", world="town")]
        + [event_factory(i, actor="eleanor_hart") for i in range(20)]
        + [post_factory(i, author="eleanor_hart") for i in range(20)]
        + [tick_factory(i) for i in range(20)]
        + [
            NpcSnapshotted(
                run_id="run1",
                tick=4,
                npc_id="eleanor_hart",
                reputation=50,
                relationships={"sam_okafor": [1.0, 2.0, 3.0]},
                state_hash="0" * 16,
            )
        ]
    )
    settings_ = Settings(
        env="test",
        clickhouse_dsn=f"chdb://{chdb_path}?database={database}",
        kafka_bootstrap="127.0.0.1:1",  # admin needs a token the generator does not have
    )
    app = create_app(settings_, ch_client, worlds_dir=tmp_path / "worlds")
    with TestClient(app):  # runs the lifespan: storage, migrations
        yield schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/stream/posts")


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        call()
