"""GET /decisions (filters, pagination) and the decision counts of /stats (issue 12)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from storage import ClickHouseWriter
from topics.models import DecisionResolved


def decision(i: int, **kw: Any) -> DecisionResolved:
    fields: dict[str, Any] = {
        "decision_id": f"dc_{i:016x}",
        "request_id": f"dq_{i:016x}",
        "run_id": "run1",
        "tick": 10 + i // 2,
        "asked_tick": 9 + i // 2,
        "sim_minute": (10 + i // 2) * 15,
        "npc_id": "npc_a" if i % 2 else "npc_b",
        "prompt_hash": f"{i:016x}",
        "status": "ok",
        "outcome": "accepted",
        "action": "socialize",
        "event_type": "greeting",
        "target": "npc_c",
        "model_reason": "be nice",
        "event_id": f"ev_{i:016x}",
    }
    fields.update(kw)
    return DecisionResolved(**fields)


def test_decisions_filters_pages_and_counts(api: TestClient, writer: ClickHouseWriter) -> None:
    writer.write_messages(
        [decision(i) for i in range(5)]
        + [decision(5, status="repaired"), decision(6, status="retried")]
        + [decision(7, outcome="rejected", reason_code="target_unreachable")]
        + [decision(8, outcome="rejected", reason_code="cooldown", status="repaired")]
        + [decision(9, outcome="fallback", reason_code="timeout", status="timeout", action=None)]
        + [decision(10, outcome="fallback", reason_code="invalid", status="invalid")]
        + [decision(11, run_id="run2")]
    )
    body = api.get("/decisions", params={"run_id": "run1"}).json()
    assert len(body["items"]) == 11 and body["next_cursor"] is None
    first = body["items"][0]
    assert first["model_reason"] == "be nice" and first["outcome"] == "accepted"
    rejected = api.get("/decisions", params={"outcome": "rejected"}).json()["items"]
    assert [d["reason_code"] for d in rejected] == ["target_unreachable", "cooldown"]
    by_reason = api.get("/decisions", params={"reason": "timeout"}).json()["items"]
    assert [d["decision_id"] for d in by_reason] == [f"dc_{9:016x}"]
    mine = api.get("/decisions", params={"npc": "npc_a", "run_id": "run1"}).json()["items"]
    assert {d["npc_id"] for d in mine} == {"npc_a"} and len(mine) == 5
    ticks = api.get("/decisions", params={"tick_from": 12, "tick_to": 13}).json()["items"]
    assert {d["tick"] for d in ticks} == {12, 13}
    seen: list[str] = []
    params: dict[str, object] = {"limit": 4, "run_id": "run1"}
    while True:
        page = api.get("/decisions", params=params).json()
        seen += [d["decision_id"] for d in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [d["decision_id"] for d in body["items"]]
    assert api.get("/decisions", params={"outcome": "maybe"}).status_code == 422
    assert api.get("/decisions", params={"limit": 0}).status_code == 422
    assert api.get("/decisions", params={"cursor": "garbage"}).status_code == 422

    counts = api.get("/stats", params={"run_id": "run1"}).json()["decisions"]
    assert counts == {
        "total": 11,
        "accepted": 7,
        "accepted_first_try": 5,
        "repaired": 2,
        "retried": 1,
        "rejected": 2,
        "rejected_by_reason": {"cooldown": 1, "target_unreachable": 1},
        "timed_out": 1,
        "fallback": 2,
        "fallback_by_cause": {"invalid": 1, "timeout": 1},
    }
    assert api.get("/stats").json()["decisions"]["total"] == 12
