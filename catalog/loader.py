"""Load a world directory: read each file, validate it against its JSON Schema, then check
cross-references. Every problem becomes a :class:`~catalog.errors.CatalogError`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from catalog import schemas
from catalog.checks import check_catalog
from catalog.errors import CatalogError, CatalogIssue, json_pointer
from catalog.models import CATALOG_FILES, OPTIONAL_FILES, Catalog, Decide, Template, World

log = logging.getLogger(__name__)


def open_text(file: Path, shown: str) -> TextIO:
    """A catalog file opened to read; CatalogError when it is missing or unreadable."""
    try:
        return file.open(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError([CatalogIssue(shown, "/", "file is missing", "file-exists")]) from None
    except OSError as exc:
        raise CatalogError([CatalogIssue(shown, "/", str(exc), "file-readable")]) from None


def read_text(f: TextIO, shown: str, size: int = -1) -> str:
    """``f.read(size)`` of a file :func:`open_text` opened; CatalogError when it cannot be
    read or is not UTF-8 (naming the byte)."""
    try:
        return f.read(size)
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8: byte {exc.object[exc.start : exc.start + 1]!r} ({exc.reason})"
        raise CatalogError([CatalogIssue(shown, "/", msg, "file-encoding")]) from None
    except OSError as exc:
        raise CatalogError([CatalogIssue(shown, "/", str(exc), "file-readable")]) from None


def _read_json(file: Path, shown: str) -> Any:
    with open_text(file, shown) as f:
        text = read_text(f, shown)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise CatalogError([CatalogIssue(shown, "/", msg, "json-syntax")]) from None


def _specific(error: SchemaError) -> SchemaError:
    """The most telling sub-error of an anyOf/oneOf failure (e.g. a nullable field)."""
    while error.context:
        error = best_match(error.context)
    return error


def schema_issues(catalog_file: str, data: Any, shown: str) -> list[CatalogIssue]:
    """Every JSON Schema violation of one file's data, in document order."""
    validator = Draft202012Validator(schemas.load(catalog_file))
    issues = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path]):
        err = _specific(err)
        issues.append(
            CatalogIssue(shown, json_pointer(err.absolute_path), err.message, str(err.validator))
        )
    return issues


@functools.cache
def file_adapter(catalog_file: str) -> TypeAdapter[Any]:
    return TypeAdapter(CATALOG_FILES[catalog_file])


def parse_file(catalog_file: str, data: Any, shown: str) -> Any:
    """Validate one file's data with its JSON Schema, then build its models."""
    issues = schema_issues(catalog_file, data, shown)
    if issues:
        raise CatalogError(issues)
    try:
        return file_adapter(catalog_file).validate_python(data)
    except PydanticError as exc:  # the schema should have caught it; report it the same way
        raise CatalogError(
            [CatalogIssue(shown, json_pointer(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        ) from None


def read_file(catalog_file: str, file: Path, shown: str) -> Any:
    """One catalog file, parsed and validated.

    The fast path is pydantic's strict JSON validation: the models carry every
    constraint of the generated schemas (and a few more), and it is ~100x faster than
    walking the schema, which matters for generated worlds of 100k NPCs. Anything it
    rejects goes through :func:`parse_file`, whose JSON Schema errors name the place.
    """
    with contextlib.suppress(OSError, PydanticError):
        return file_adapter(catalog_file).validate_json(file.read_bytes(), strict=True)
    return parse_file(catalog_file, _read_json(file, shown), shown)


WORLD_TITLE = "{world_title}"


def name_the_world(templates: list[Template], world: World) -> list[Template]:
    """Templates with ``{world_title}`` replaced by the world's title (``world.json``).

    Templates name the world through this variable, so a copy of a world with a new
    title needs no edit of its prompts; the other placeholders stay for the renderer.
    """
    title = world.title.replace("{", "{{").replace("}", "}}")
    return [
        t.model_copy(
            update={
                "system": t.system.replace(WORLD_TITLE, title),
                "prompt": t.prompt.replace(WORLD_TITLE, title),
            }
        )
        if WORLD_TITLE in t.system or WORLD_TITLE in t.prompt
        else t
        for t in templates
    ]


def name_the_decide(decide: Decide, world: World) -> Decide:
    """decide.json with ``{world_title}`` filled in, like :func:`name_the_world`."""
    t = decide.template
    if WORLD_TITLE not in t.system and WORLD_TITLE not in t.prompt:
        return decide
    title = world.title.replace("{", "{{").replace("}", "}}")
    named = t.model_copy(
        update={
            "system": t.system.replace(WORLD_TITLE, title),
            "prompt": t.prompt.replace(WORLD_TITLE, title),
        }
    )
    return decide.model_copy(update={"template": named})


def read_files(root: Path, names: Iterable[str]) -> dict[str, Any]:
    """The named catalog files of a world directory, each parsed and validated (an optional
    file that is absent is left out); every file's problems together in one CatalogError."""
    parsed: dict[str, Any] = {}
    issues: list[CatalogIssue] = []
    for name in names:
        shown = str(root / name)
        if name in OPTIONAL_FILES and not (root / name).exists():
            continue
        try:
            parsed[name] = read_file(name, root / name, shown)
        except CatalogError as exc:
            issues.extend(exc.issues)
    if issues:
        raise CatalogError(issues)
    return parsed


def assemble(parsed: dict[str, Any]) -> Catalog:
    """A Catalog of parsed files (:func:`read_files`), the world's title filled in."""
    return Catalog(
        world=parsed["world.json"],
        places=parsed["places.json"],
        npcs=parsed["npcs.json"],
        relationships=parsed["relationships.json"],
        goals=parsed["goals.json"],
        event_types=parsed["event_types.json"],
        channels=parsed["channels.json"],
        templates=name_the_world(parsed["templates.json"], parsed["world.json"]),
        scheduled=parsed["scheduled.json"],
        director=parsed["director.json"],
        decide=name_the_decide(parsed["decide.json"], parsed["world.json"]),
        feed=parsed.get("feed.json"),
    )


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate the world directory at ``path``; raises CatalogError on any problem."""
    root = Path(path)
    parsed = read_files(root, CATALOG_FILES)
    catalog = assemble(parsed)
    issues = check_catalog(catalog, lambda name: str(root / name), parsed)
    if issues:
        raise CatalogError(issues)
    log.debug("loaded catalog %r from %s", catalog, root)
    return catalog
