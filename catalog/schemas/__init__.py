"""JSON Schemas (Draft 2020-12) of the catalog files, generated from :mod:`catalog.models`.

The ``*.schema.json`` files beside this module are checked in; regenerate them with
``python -m catalog.schemas`` after changing a model (a test fails when they drift).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from catalog.models import CATALOG_FILES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parent


def schema_filename(catalog_file: str) -> str:
    """Schema file name for a catalog file: 'npcs.json' -> 'npcs.schema.json'."""
    return catalog_file.removesuffix(".json") + ".schema.json"


def build(catalog_file: str) -> dict[str, Any]:
    """The JSON Schema of one catalog file, generated from its model."""
    schema = TypeAdapter(CATALOG_FILES[catalog_file]).json_schema()
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://worldfeed.dev/schemas/catalog/{schema_filename(catalog_file)}",
        "title": schema.pop("title", catalog_file),
        **schema,
    }


def build_all() -> dict[str, dict[str, Any]]:
    """Schema file name -> schema, for every catalog file."""
    return {schema_filename(name): build(name) for name in CATALOG_FILES}


def render(schema: dict[str, Any]) -> str:
    """The checked-in text form of a schema (stable: indent 2, sorted keys)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: str | Path = SCHEMA_DIR) -> list[Path]:
    """Write every catalog file's schema into ``directory``; returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in build_all().items():
        path = out / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


@cache
def load(catalog_file: str) -> dict[str, Any]:
    """The checked-in schema of one catalog file."""
    schema: dict[str, Any] = json.loads(
        (SCHEMA_DIR / schema_filename(catalog_file)).read_text(encoding="utf-8")
    )
    return schema
