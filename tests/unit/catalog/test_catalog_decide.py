"""decide.json: the action kinds, their JSON Schemas and the decide prompt are checked at
load; a broken one is refused with file, JSON pointer and rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog import CatalogError, load_catalog
from catalog.generate import STARTER_WORLD


def _refused(root: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(root)
    return str(info.value)


def _kind(d: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(a for a in d["actions"] if a["id"] == kind)


def test_starter_decide_loads() -> None:
    decide = load_catalog(STARTER_WORLD).decide
    assert decide.budget_per_tick > 0
    assert {a.id for a in decide.actions} >= {"socialize", "confront", "wait"}
    assert "Brookfield" in decide.template.system  # {world_title} filled in


def test_a_missing_decide_file_is_refused(tmp_path: Path, world_factory: Any) -> None:
    root = world_factory()
    (root / "decide.json").unlink()
    assert "decide.json: /: file is missing [file-exists]" in _refused(root)


def test_an_invalid_action_schema_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "confront")["action_schema"]["properties"]["event_type"] = {"type": "nope"}
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/1/action_schema/properties/event_type/type" in text
    assert "[json-schema]" in text


def test_an_action_schema_not_pinned_to_its_kind_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "mend")["action_schema"]["properties"]["action"] = {"type": "string"}
        return d

    assert "decide.json: /actions/2/action_schema: accepts a decision of another kind" in (
        _refused(world_factory(decide=edit))
    )


def test_an_action_schema_rejecting_its_own_event_types_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "socialize")["action_schema"]["properties"]["event_type"] = {"enum": ["greeting"]}
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/0/action_schema: rejects a well-formed decision" in text
    assert "[action-schema-accepts]" in text


def test_field_ActionKind_event_types_must_exist_and_agree_on_targets(
    world_factory: Any,
) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "socialize")["event_types"] += ["alien_invasion", "jog_in_park"]
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/0/event_types/8: unknown event type 'alien_invasion'" in text
    assert "[action-target-consistency]" in text


def test_an_action_schema_that_drops_a_needed_target_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "romance")["action_schema"]["required"].remove("target")
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/3/action_schema: accepts a decision without 'target'" in text


def test_field_ActionKind_id_unique(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["actions"].append(dict(_kind(d, "wait")))
        return d

    assert "duplicate action id 'wait' [unique-action-id]" in _refused(world_factory(decide=edit))


def test_field_DecideTemplate_prompt_placeholders(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["template"]["prompt"] += " {secret}"
        return d

    text = _refused(world_factory(decide=edit))
    assert (
        "decide.json: /template/prompt: unknown placeholder {secret} [template-placeholders]"
        in (text)
    )


def test_field_DecideTemplate_max_memories_counts_in_the_prompt_budget(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["template"]["max_memories"] = 10
        d["template"]["max_nearby"] = 50
        return d

    assert "[prompt-budget]" in _refused(world_factory(decide=edit))


def test_field_Decide_budget_per_tick_needs_actions(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["actions"] = []
        return d

    assert "decide.json: /actions: a deliberation budget needs at least one action" in (
        _refused(world_factory(decide=edit))
    )


def test_decide_schema_errors_name_the_pointer(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["deadline_ticks"] = 0
        return d

    assert "decide.json: /deadline_ticks: 0 is less than the minimum of 1 [minimum]" in (
        _refused(world_factory(decide=edit))
    )


def test_a_feed_kind_of_event_types_that_are_no_reactions_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "react")["event_types"] = ["liked_post", "greeting"]
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/6/event_types/1: 'greeting' is not a reaction type" in text
    assert "[feed-reaction-type]" in text


def test_a_feed_kind_that_does_not_require_its_post_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        _kind(d, "react")["action_schema"]["required"] = ["action", "event_type"]
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/6/action_schema: accepts a decision without 'post'" in text
    assert "[feed-action-post]" in text


def test_a_feed_kind_whose_schema_has_no_post_is_refused(world_factory: Any) -> None:
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        del _kind(d, "react")["action_schema"]["properties"]["post"]
        return d

    text = _refused(world_factory(decide=edit))
    assert "decide.json: /actions/6/action_schema: rejects a well-formed decision" in text
    assert "[action-schema-accepts]" in text


def test_the_starter_react_kind_is_a_feed_kind_of_the_reaction_types() -> None:
    cat = load_catalog(STARTER_WORLD)
    react = cat.decide.action("react")
    assert react is not None and react.feed
    assert set(react.event_types) == set(cat.feed.reactions.model_dump().values())
