"""The checked-in JSON Schemas match the pydantic models."""

from __future__ import annotations

from pathlib import Path

from jsonschema import Draft202012Validator

from catalog import schemas
from catalog.models import CATALOG_FILES


def test_checked_in_schemas_match_models() -> None:
    expected = {name: schemas.render(s) for name, s in schemas.build_all().items()}
    actual = {
        p.name: p.read_text(encoding="utf-8") for p in schemas.SCHEMA_DIR.glob("*.schema.json")
    }
    stale = sorted(n for n in expected.keys() | actual.keys() if expected.get(n) != actual.get(n))
    assert not stale, (
        f"schemas drifted from catalog.models: {stale}; run `python -m catalog.schemas`"
    )


def test_export_writes_every_schema(tmp_path: Path) -> None:
    written = schemas.export(tmp_path)
    assert sorted(p.name for p in written) == sorted(map(schemas.schema_filename, CATALOG_FILES))
    for path in written:
        schema = schemas.load(path.name.replace(".schema", ""))
        assert schema["$schema"] == schemas.SCHEMA_DIALECT
        Draft202012Validator.check_schema(schema)
