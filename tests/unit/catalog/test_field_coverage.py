"""Every field of every catalog model either has a behavioural test or says why it needs none.

The fields come from the models themselves: every pydantic model reachable from the
root types of ``CATALOG_FILES`` (nested models included), each with its
``model_fields``. A field is covered by a test function named
``test_field_<Model>_<field>`` or ``test_field_<Model>_<field>_<what it checks>``
anywhere under ``tests/unit/`` (found by parsing the test files, not importing them),
or by an entry in ``DESCRIPTIVE``: a field that describes rather than simulates, with
where it is used. A field whose type is only catalog models (``Npc.traits``,
``EventType.effects``) is covered through its model's own fields.
"""

from __future__ import annotations

import ast
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from catalog.models import CATALOG_FILES

UNIT_TESTS = Path(__file__).resolve().parents[1]

DESCRIPTIVE: dict[tuple[str, str], str] = {
    ("World", "name"): "world id: the run's world and the catalog's directory name",
    ("World", "title"): "display text of the world; read by no simulation code",
    ("World", "description"): "display text of the world; read by no simulation code",
    ("Place", "id"): "id that schedules, scheduled events and director rules refer to",
    ("Place", "name"): "display name in event summaries and prompts (tests/unit/posts)",
    ("Npc", "id"): "id every other file refers to; decides the NPC's shard (sim/world.py)",
    ("Npc", "handle"): "@handle shown in the UI/API and given to prompts (posts/prompt.py)",
    ("Npc", "display_name"): "name in summaries and prompts (tests/unit/posts/test_prompt.py)",
    ("Npc", "age"): "profile shown by /npcs (api/routes/npcs.py); not simulated",
    ("Npc", "interests"): "given to prompts as author_interests (posts/prompt.py)",
    ("Npc", "voice"): "how they write, given to prompts as author_voice (posts/prompt.py)",
    ("EventType", "id"): "id that channels, scheduled events and director rules refer to",
    ("EventType", "name"): "display name of the event type; read by no simulation code",
    ("Channel", "id"): "channel id (feed/chat/news) that rules, templates and NPCs refer to",
    ("Channel", "name"): "display name of the channel; read by no simulation code",
    ("Channel", "post_schema"): "JSON Schema the LLM's answer is checked against "
    "(posts/service.py; tests/unit/posts/test_output.py)",
    ("Template", "id"): "id that channel rules refer to",
    ("Template", "channel"): "the channel it writes for; catalog/checks.py checks it exists",
    ("Template", "system"): "system prompt text (tests/unit/posts/test_prompt.py)",
    ("Template", "prompt"): "user prompt text (tests/unit/posts/test_prompt.py)",
    ("ScheduledEvent", "id"): "id of the scheduled event; salts its RNG (sim/decide.py)",
    ("DirectorRule", "id"): "id of the rule; salts its RNGs (sim/director.py)",
    ("DirectorRule", "kind"): "what sort of world event the rule is (weather, festival...); "
    "descriptive, read by no simulation code",
    ("DirectorRule", "description"): "display text of the rule; read by no simulation code",
    ("ScheduleTrigger", "type"): "discriminator of the trigger union",
    ("ConditionTrigger", "type"): "discriminator of the trigger union",
}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Catalog models named anywhere in a type (list[X], X | None, dict[K, X], Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _only_models(annotation: Any) -> bool:
    """True when a type holds nothing but catalog models (and containers, keys, None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _only_models(args[0])
    if origin in (list, tuple):
        return all(_only_models(a) for a in args if a is not Ellipsis)
    if origin is dict:
        return _only_models(args[1])
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        return bool(kept) and all(_only_models(a) for a in kept)
    return False


def catalog_fields() -> list[tuple[str, str]]:
    """(model, field) of every catalog model reachable from the catalog files' roots."""
    seen: dict[str, type[BaseModel]] = {}
    todo = [m for root in CATALOG_FILES.values() for m in _models_in(root)]
    while todo:
        model = todo.pop()
        if model.__name__ in seen:
            continue
        seen[model.__name__] = model
        for info in model.model_fields.values():
            todo.extend(_models_in(info.annotation))
    return sorted(
        (name, field)
        for name, model in seen.items()
        for field, info in model.model_fields.items()
        if not _only_models(info.annotation)
    )


def field_test_names() -> set[str]:
    """Names of every ``test_field_*`` function under tests/unit/."""
    names = set()
    for path in UNIT_TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            is_def = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_def and node.name.startswith("test_field_"):
                names.add(node.name)
    return names


def _tested(model: str, field: str, names: set[str]) -> bool:
    stem = f"test_field_{model}_{field}"
    return any(n == stem or n.startswith(f"{stem}_") for n in names)


def test_every_catalog_field_has_a_behavioural_test_or_says_why_not() -> None:
    names = field_test_names()
    missing = [
        f"{model}.{field}"
        for model, field in catalog_fields()
        if (model, field) not in DESCRIPTIVE and not _tested(model, field, names)
    ]
    assert not missing, (
        f"{len(missing)} catalog field(s) have no behavioural test: {', '.join(missing)}.\n"
        "For each, write a test under tests/unit/ named test_field_<Model>_<field>_<what> "
        "that shows the field changing what the simulation (or a post) does, or, for a "
        "field that only describes, add it to DESCRIPTIVE in "
        "tests/unit/catalog/test_field_coverage.py with where it is used."
    )


def test_the_descriptive_list_names_only_existing_fields() -> None:
    stale = sorted(set(DESCRIPTIVE) - set(catalog_fields()))
    assert not stale, f"DESCRIPTIVE names fields the catalog models do not have: {stale}"


def test_the_walk_reaches_nested_models() -> None:
    fields = set(catalog_fields())
    assert {("Traits", "openness"), ("EffectSpec", "delta"), ("NpcSelector", "pick")} <= fields
    assert ("Npc", "traits") not in fields  # a model-only field: covered by Traits.*
