"""Fixtures of the storage tests: the session's chDB engine, a database per test, builders.

chDB hosts one engine per process; the engine and the per-test databases come from
``tests/fixtures/clickhouse.py`` (the same ones tests/api and tests/integration use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from sim.decide import score
from sim.snapshot import shard_parts
from storage import ClickHouseWriter
from topics.models import (
    DeadLettered,
    DecisionResolved,
    EventHappened,
    LLMCalled,
    NpcSnapshotted,
    PostPublished,
    PostSeen,
    RunCommanded,
    TickCompleted,
)


@pytest.fixture
def database(ch_database: Callable[[], str]) -> str:
    """This test's migrated database."""
    return ch_database()


@pytest.fixture
def writer(ch_client: Client, database: str) -> ClickHouseWriter:
    """A writer into this test's database."""
    return ClickHouseWriter(ch_client, database, batch_size=1000)


@pytest.fixture
def count(ch_client: Client, database: str) -> Callable[..., int]:
    """``count(table, final=False)``: rows of a table in this test's database."""

    def rows(table: str, final: bool = False) -> int:
        sql = f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''}"  # noqa: S608 - test identifiers
        return int(ch_client.command(sql))  # type: ignore[arg-type]  # a scalar

    return rows


@pytest.fixture
def post_factory() -> Callable[..., PostPublished]:
    """Builds post ``i``; keyword arguments override the fields."""

    def make(i: int, **kw: Any) -> PostPublished:
        fields: dict[str, Any] = {
            "post_id": f"po_{i:016x}",
            "request_id": f"rq_{i:016x}",
            "run_id": "run1",
            "event_id": f"ev_{i:016x}",
            "channel": ("feed", "chat", "news")[i % 3],
            "author": f"npc_{i % 7}",
            "tick": i // 2,
            "sim_minute": i // 2 * 15,
            "body": f"post number {i}",
            "source": "llm",
            "score": 0.5,
        }
        fields.update(kw)
        return PostPublished(**fields)

    return make


@pytest.fixture
def event_factory() -> Callable[..., EventHappened]:
    """Builds event ``i`` (scored with ``cascade``); keyword arguments override the fields."""

    def make(i: int, cascade: float = 0.25, **kw: Any) -> EventHappened:
        fields: dict[str, Any] = {
            "event_id": f"ev_{i:016x}",
            "run_id": "run1",
            "tick": i // 2,
            "sim_minute": i // 2 * 15,
            "type": ("greeted", "argued")[i % 2],
            "actor": f"npc_{i % 5}",
            "target": f"npc_{(i + 1) % 5}",
            "place": ("cafe", "inn")[i % 2],
            "witnesses": [f"npc_{(i + 2) % 5}"],
            "summary": f"event {i}",
            "impact": score(0.5, 0.5, 0.2, cascade),
        }
        fields.update(kw)
        return EventHappened(**fields)

    return make


@pytest.fixture
def snapshot_factory() -> Callable[..., NpcSnapshotted]:
    """Builds npc_a's snapshot at ``tick``; keyword arguments override the fields."""

    def make(tick: int, **kw: Any) -> NpcSnapshotted:
        fields: dict[str, Any] = {
            "run_id": "run1",
            "tick": tick,
            "npc_id": "npc_a",
            "place": "cafe",
            "reputation": 55.0,
            "relationships": {"npc_b": [10.0, 60.0, 30.0], "npc_c": [-20.0, 15.0, 5.0]},
            "memories": [[tick, "ev_1", "met npc_b at the cafe", 0.8]],
            "goals": {"friendship": 0.25},
            "state_hash": f"{tick:016x}",
        }
        fields.update(kw)
        return NpcSnapshotted(**fields)

    return make


@pytest.fixture
def llm_call_factory() -> Callable[..., LLMCalled]:
    """Builds LLM call ``i``; keyword arguments override the fields."""

    def make(i: int, **kw: Any) -> LLMCalled:
        fields: dict[str, Any] = {
            "call_id": f"ca_{i:016x}",
            "run_id": "run1",
            "request_id": f"rq_{i // 2:016x}",
            "attempt": 1 + i % 2,
            "prompt_hash": f"{i:016x}",
            "model": "smollm2" if i % 3 else None,
            "tokens_in": 100,
            "tokens_out": 20 + i,
            "latency_ms": 12.5,
            "cache_hit": i % 4 == 0,
            "outcome": "valid",
            "at_ms": 1_700_000_000_000 + i,
        }
        fields.update(kw)
        return LLMCalled(**fields)

    return make


@pytest.fixture
def message_factory(
    post_factory: Callable[..., PostPublished],
    event_factory: Callable[..., EventHappened],
    snapshot_factory: Callable[..., NpcSnapshotted],
    llm_call_factory: Callable[..., LLMCalled],
) -> Callable[[str, int], Any]:
    """``make(kind, i)``: message ``i`` of a stored kind (one per table it fills)."""

    def make(kind: str, i: int) -> Any:
        if kind == "runs":
            return RunCommanded(command="start", run_id=f"run{i}", seed=i)
        if kind == "ticks":
            return TickCompleted(
                run_id="run1",
                tick=i,
                sim_minute=i * 15,
                state_hash=f"{i:016x}",
                npcs=3,
                events=2,
                effects=4,
                wall_ms=3.5,
            )
        if kind == "events":
            return event_factory(i)
        if kind == "posts":
            return post_factory(i)
        if kind == "npc_snapshots":
            return snapshot_factory(i)
        if kind == "llm_calls":
            return llm_call_factory(i)
        if kind == "snapshots":
            states = {f"npc{i}": {"rep": 50.0, "rel": {}, "mem": [], "goal": {}, "cool": {}}}
            return shard_parts(f"run{i % 2}", i, 0, 1, states)[0]
        if kind == "decisions":
            return DecisionResolved(
                decision_id=f"dc_{i:016x}",
                request_id=f"dq_{i:016x}",
                run_id="run1",
                tick=i + 1,
                asked_tick=i,
                sim_minute=(i + 1) * 15,
                npc_id=f"npc{i}",
                cohort=i % 2 == 0,
                prompt_hash=f"{i:016x}",
                status="ok" if i % 3 else "timeout",
                outcome="accepted" if i % 3 else "fallback",
                reason_code=None if i % 3 else "timeout",
                action="socialize" if i % 3 else None,
                event_type="greeting" if i % 3 else None,
                target="npc0" if i % 3 else None,
                model_reason="why not" if i % 3 else None,
                event_id=f"ev_{i:016x}",
            )
        if kind == "exposures":
            return PostSeen(
                exposure_id=f"ex_{i:016x}",
                run_id="run1",
                tick=i + 1,
                sim_minute=(i + 1) * 15,
                npc_id=f"npc{i}",
                post_key=f"fp_{i:016x}",
                post_id=f"post_{i:016x}",
                event_id=f"ev_{i:016x}",
                post_tick=i,
                author="npc0",
                channel="feed",
                recommender="affinity",
                rank=i % 3,
                reaction="like" if i % 2 else None,
                reaction_event_id=f"ev_l{i:015x}" if i % 2 else None,
            )
        if kind == "dead_letters":
            return DeadLettered(
                stage="render",
                topic="wf.render-requests",
                partition=0,
                offset=i,
                value="{}",
                reason="schema invalid",
                at_ms=1_700_000_000_000,
            )
        raise ValueError(kind)

    return make
