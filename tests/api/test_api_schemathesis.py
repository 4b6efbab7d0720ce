"""schemathesis against the OpenAPI spec: generated requests to every operation (the
in-process app over real chDB with some data, the admin routes with a valid token
against the real broker, the live stream with a short lifetime) never get a 5xx, and
every response conforms to the spec.

Randomized: each run draws a new seed and prints it; ``WORLDFEED_SCHEMATHESIS_SEED=<seed>``
replays a run and ``WORLDFEED_SCHEMATHESIS_EXAMPLES`` changes the examples per operation
(default :data:`EXAMPLES`, valid and invalid ones: about 1.5 minutes on two cores).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from bus.admin import ensure_topics
from storage import ClickHouseWriter
from topics.models import NpcSnapshotted, RunCommanded
from worldfeed.settings import Settings

EXAMPLES = 30
TOKEN = "schemathesis-admin-token"  # noqa: S105 - a test token
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
async def admin_topics(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings on the real broker, with the topics the admin commands go to."""
    settings = settings_factory()
    await ensure_topics(settings)
    return settings


@pytest.fixture
def api_schema(
    admin_topics: Settings,
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
    settings_ = admin_topics.model_copy(
        update={
            "clickhouse_dsn": f"chdb://{chdb_path}?database={database}",
            "admin_token": admin_topics.admin_token.__class__(TOKEN),
            "api_allowed_hosts": ["*"],  # schemathesis picks its own Host
            "stream_lifetime_s": 0.3,  # the stream ends, so a call returns
            "world_max_relationships": 2000,  # generated worlds stay small and quick
        }
    )
    app = create_app(settings_, ch_client, worlds_dir=tmp_path / "worlds")
    with TestClient(app):  # runs the lifespan: storage, migrations
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _seed() -> int:
    given_seed = os.environ.get("WORLDFEED_SCHEMATHESIS_SEED")
    return int(given_seed) if given_seed else random.SystemRandom().randrange(2**32)


def test_no_server_errors_and_responses_match_the_spec(
    api_schema: schemathesis.BaseSchema, capsys: pytest.CaptureFixture[str]
) -> None:
    run_seed = _seed()
    examples = int(os.environ.get("WORLDFEED_SCHEMATHESIS_EXAMPLES", EXAMPLES))
    with capsys.disabled():
        print(f"\nschemathesis: WORLDFEED_SCHEMATHESIS_SEED={run_seed}, {examples} examples/op")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert len(operations) >= 18 and "/stream/posts" in paths
    assert {p for p in paths if p.startswith("/admin")} == {
        "/admin/runs",
        "/admin/runs/{run_id}/pause",
        "/admin/runs/{run_id}/resume",
        "/admin/runs/{run_id}/stop",
        "/admin/runs/{run_id}/speed",
        "/admin/runs/{run_id}/inject",
        "/admin/runs/{run_id}/snapshots",
        "/admin/runs/{run_id}/replay",
        "/admin/runs/{run_id}/branch",
        "/admin/worlds",
        "/admin/sql",
    }
    for operation in operations:
        # valid requests, and invalid ones (hostile input must be a 4xx, never a 5xx)
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @hypothesis_seed(run_seed)
        @given(case=cases)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"} if case.path.startswith("/admin") else {}
            case.call_and_validate(headers=headers, checks=CHECKS)

        call()
