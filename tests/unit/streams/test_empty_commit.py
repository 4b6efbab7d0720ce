"""A commit whose partitions were all revoked while it waited does not crash the worker.

On faust-streaming 0.15.3 alone the test fails: faust hands aiokafka an empty commit,
aiokafka raises ``ValueError({})`` and faust crashes the consumer (seen in ``make bench``
when a second worker joined during a commit).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.util import commit_structure_validate
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from streams.app import build_streams
from worldfeed.settings import Settings


class Stand:
    """What faust's ``_commit`` touches: an assignment, aiokafka's consumer, a crash."""

    def __init__(self, assigned: set[TP]) -> None:
        self.assigned = assigned
        self.crashed: list[BaseException] = []
        self.committed: list[Any] = []
        self.tp_last_committed_at: dict[TP, float] = {}
        self.log = self

    def assignment(self) -> set[TP]:
        return self.assigned

    def _ensure_consumer(self) -> Any:
        return self

    async def commit(self, offsets: Any) -> None:  # aiokafka's consumer.commit
        self.committed.append(commit_structure_validate(offsets))

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)

    def exception(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module", autouse=True)
def patched(tmp_path_factory: pytest.TempPathFactory) -> None:
    build_streams(Settings(state_dir=Path(tmp_path_factory.mktemp("state"))), "empty-commit")


def test_a_commit_of_revoked_partitions_only_is_skipped() -> None:
    stand = Stand(assigned={TP("t", 1)})
    did = asyncio.run(AIOKafkaConsumerThread._commit(stand, {TP("t", 0): 5}))
    assert did is False
    assert stand.crashed == []
    assert stand.committed == []


def test_the_assigned_partitions_of_a_commit_are_still_committed() -> None:
    stand = Stand(assigned={TP("t", 1)})
    did = asyncio.run(AIOKafkaConsumerThread._commit(stand, {TP("t", 0): 5, TP("t", 1): 7}))
    assert did is True
    assert stand.crashed == []
    ((tp, meta),) = stand.committed[0].items()
    assert (tp.partition, meta.offset) == (1, 7)
