"""One rule for an event named by ids (scheduled, injected through the API, or by the shards)."""

from __future__ import annotations

from catalog import load_catalog
from catalog.event_refs import closed_problem, event_problems, open_for
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


def test_a_closed_place_is_a_problem_except_at_the_actors_home() -> None:
    cat = load_catalog(STARTER_WORLD)
    problem = closed_problem(cat, "eleanor_hart", "vogel_bakery", 16, "16:15")
    assert problem is not None
    assert (problem.field, problem.rule, problem.value) == ("place", "place-open", "vogel_bakery")
    assert problem.message == "'vogel_bakery' is closed at 16:15 (open 5..15)"
    assert closed_problem(cat, "eleanor_hart", "vogel_bakery", 14, "14:00") is None
    assert closed_problem(cat, "eleanor_hart", None, 3, "03:00") is None  # where she is
    assert closed_problem(cat, "eleanor_hart", "moon", 3, "03:00") is None  # event_problems'
    home = cat.npcs["eleanor_hart"].home
    cat.places[home] = cat.places[home].model_copy(update={"open_hour": 8, "close_hour": 20})
    shut = cat  # a fresh load: edited in place
    assert open_for(shut, home, "eleanor_hart", 3)
    other = next(n for n in cat.npcs.values() if n.home != home)
    assert not open_for(shut, home, other.id, 3)
