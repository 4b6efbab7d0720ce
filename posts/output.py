"""From raw model text to a schema-valid post.

A 135M-parameter model writes usable free text but poor JSON, so the model writes
text and we build the JSON around it. When it does answer in JSON (or fenced JSON,
or JSON with prose around it, trailing commas, a truncated object), ``json_repair``
recovers the fields. The result is validated against the channel's JSON Schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import json_repair
from jsonschema import Draft202012Validator

_FENCE = re.compile(r"```[a-zA-Z]*\n?|```")
_LEAD = re.compile(
    r"^\s*(sure[,!.]?|here(?:'s| is)[^:\n]*:|okay[,!.]?|post:|message:|tweet:|answer:)\s*",
    re.IGNORECASE,
)
_HEADLINE = re.compile(r"^\s*(#+\s*|headline\s*:\s*|title\s*:\s*|\*\*)", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """A candidate post and how it was obtained."""

    fields: dict[str, Any]
    repaired: bool


def _strip(text: str) -> str:
    text = _FENCE.sub("", text).strip()
    for _ in range(2):
        text = _LEAD.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _cut(text: str, limit: int) -> str:
    """Shorten to ``limit`` chars at a sentence or word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    for mark in (". ", "! ", "? "):
        pos = cut.rfind(mark)
        if pos > limit // 2:
            return cut[: pos + 1]
    pos = cut.rfind(" ")
    return cut[:pos] if pos > limit // 2 else cut


def _maybe_json(text: str) -> dict[str, Any] | None:
    if "{" not in text:
        return None
    try:
        obj = json_repair.loads(text[text.index("{") :])
    except Exception:  # noqa: BLE001 - unrepairable JSON is just text
        return None
    return obj if isinstance(obj, dict) else None


def parse_output(channel: str, raw: str, schema: dict[str, Any]) -> Parsed:
    """Turn model text into the channel's fields (title/body), repairing what can be repaired."""
    props = schema.get("properties", {})
    body_max = int(props.get("body", {}).get("maxLength", 500))
    title_max = int(props.get("title", {}).get("maxLength", 120))
    obj = _maybe_json(raw)
    if obj is not None:
        fields = {k: str(v).strip() for k, v in obj.items() if k in props and v is not None}
        if "body" not in fields:
            for alt in ("text", "message", "post", "content", "article"):
                if alt in obj:
                    fields["body"] = str(obj[alt]).strip()
                    break
        if fields.get("body"):
            fields["body"] = _cut(_strip(fields["body"]), body_max)
            if "title" in props:
                fields["title"] = _cut(_strip(fields.get("title", "")), title_max) or _cut(
                    fields["body"], title_max
                )
            return Parsed(fields, repaired=True)
    text = _strip(raw)
    if "title" in props:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            return Parsed({"title": "", "body": ""}, repaired=False)
        title = _HEADLINE.sub("", lines[0]).strip(" *\"'")
        body = " ".join(lines[1:]).strip() or title
        return Parsed(
            {"title": _cut(title, title_max), "body": _cut(body, body_max)}, repaired=False
        )
    return Parsed({"body": _cut(" ".join(text.split()), body_max)}, repaired=False)


def schema_errors(fields: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every way the fields break the channel's schema, as 'pointer: message'."""
    validator = Draft202012Validator(schema)
    return [
        f"/{'/'.join(str(p) for p in err.absolute_path)}: {err.message}"
        for err in validator.iter_errors(fields)
    ]
