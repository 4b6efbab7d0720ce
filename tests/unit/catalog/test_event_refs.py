"""One rule for an event named by ids (scheduled, injected through the API, or by the shards)."""

from __future__ import annotations

from catalog import load_catalog
from catalog.event_refs import event_problems
from catalog.generate import STARTER_WORLD

GOOD = {"type_": "gossip", "actor": "eleanor_hart", "target": "sam_okafor", "place": None}


def test_a_valid_event_has_no_problem() -> None:
    cat = load_catalog(STARTER_WORLD)
    assert event_problems(cat, **GOOD) == []
    assert event_problems(cat, **{**GOOD, "place": "market_square"}) == []


def test_each_problem_names_its_field_and_value() -> None:
    cat = load_catalog(STARTER_WORLD)
    cases = [
        ({"type_": "levitated"}, "type", "unknown event type 'levitated'", "event-type-exists"),
        ({"actor": "ghost"}, "actor", "unknown npc 'ghost'", "npc-exists"),
        ({"target": "ghost"}, "target", "unknown npc 'ghost'", "npc-exists"),
        ({"place": "moon"}, "place", "unknown place 'moon'", "place-exists"),
        (
            {"target": "eleanor_hart"},
            "target",
            "target must differ from actor",
            "target-consistency",
        ),
        ({"target": None}, "target", "event type 'gossip' needs a target", "target-consistency"),
        (
            {"type_": "book_club"},
            "target",
            "event type 'book_club' takes no target",
            "target-consistency",
        ),
    ]
    for change, field, message, rule in cases:
        problems = event_problems(cat, **{**GOOD, **change})
        assert [(p.field, p.message, p.rule) for p in problems] == [(field, message, rule)], change
        assert problems[0].value == {**GOOD, **change}[field if field != "type" else "type_"]
