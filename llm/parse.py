"""Parsing an LLM answer: from raw model text to a JSON object, and what makes it invalid
against a JSON Schema.

Small models write poor JSON: fenced, with prose around it, trailing commas, single
quotes, cut off at ``max_tokens``. ``json_repair`` recovers the object; a JSON Schema
then says, with a pointer per problem, what is still wrong, so the caller can retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import json_repair
from jsonschema import Draft202012Validator


@dataclass(frozen=True)
class Parsed:
    """A candidate answer and how it was obtained (``repaired``: repair was needed)."""

    fields: dict[str, Any]
    repaired: bool


def repair_json(text: str) -> dict[str, Any] | None:
    """The JSON object that starts at the first ``{`` of ``text``, repaired; None if none."""
    if "{" not in text:
        return None
    try:
        obj = json_repair.loads(text[text.index("{") :])
    except Exception:  # noqa: BLE001 - unrepairable JSON is just text
        return None
    return obj if isinstance(obj, dict) else None


def parse_json(text: str) -> Parsed:
    """An answer that should be one JSON object: as is when valid, else repaired ({} if none)."""
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        return Parsed(obj, repaired=False)
    return Parsed(repair_json(text) or {}, repaired=True)


def schema_errors(fields: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every way the fields break the schema, as 'pointer: message'."""
    validator = Draft202012Validator(schema)
    return [
        f"/{'/'.join(str(p) for p in err.absolute_path)}: {err.message}"
        for err in validator.iter_errors(fields)
    ]
