"""Raw model text -> a JSON object -> what breaks its JSON Schema."""

from __future__ import annotations

import pytest

from llm.parse import parse_json, repair_json, schema_errors

SCHEMA = {
    "type": "object",
    "required": ["body"],
    "additionalProperties": False,
    "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 10}},
}


@pytest.mark.parametrize(
    "raw",
    [
        '```json\n{"body": "hi",}\n```',
        'Some prose first {"body": "hi"',
        "{'body': 'hi'}",
    ],
)
def test_broken_json_is_repaired(raw: str) -> None:
    assert repair_json(raw) == {"body": "hi"}
    assert parse_json(raw).fields == {"body": "hi"} and parse_json(raw).repaired


def test_no_object_is_none_and_valid_json_is_not_repaired() -> None:
    assert repair_json("just text") is None and repair_json("[1, 2]") is None
    assert parse_json("just text").fields == {} and parse_json("just text").repaired
    parsed = parse_json('{"body": "hi"}')
    assert parsed.fields == {"body": "hi"} and not parsed.repaired


def test_schema_errors_point_at_the_field() -> None:
    assert schema_errors({"body": "hi"}, SCHEMA) == []
    assert schema_errors({}, SCHEMA) == ["/: 'body' is a required property"]
    errors = schema_errors({"body": "x" * 11, "extra": 1}, SCHEMA)
    assert any(e.startswith("/body: ") for e in errors) and len(errors) == 2
