"""The loader accepts the starter world and refuses broken ones with file + pointer + rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog import CatalogError, load_catalog
from catalog.generate import STARTER_WORLD
from catalog.models import Relationship


def _set(data: Any, path: list[Any], value: Any) -> Any:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def _index(items: list[dict[str, Any]], **match: Any) -> int:
    return next(i for i, x in enumerate(items) if all(x.get(k) == v for k, v in match.items()))


def _refused(root: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_catalog(root)
    return info.value


def test_starter_world_loads() -> None:
    cat = load_catalog(STARTER_WORLD)
    assert cat.name == "town"
    assert 12 <= len(cat.places) <= 14
    assert len(cat.npcs) == 30
    assert list(cat.npcs) == sorted(cat.npcs)
    assert sum("news" in n.channels for n in cat.npcs.values()) >= 2
    assert {"Mayor", "Doctor", "Barista", "Teacher", "Student"} <= {
        n.occupation for n in cat.npcs.values()
    }
    assert 75 <= len(cat.relationships) <= 100
    assert 25 <= len(cat.goals) <= 40
    assert 38 <= len(cat.event_types) <= 50
    assert set(cat.channels) == {"feed", "chat", "news"}
    assert {"feed_post", "chat_message", "news_article"} <= set(cat.templates)
    assert 10 <= len(cat.scheduled) <= 15
    assert any("news" in cat.event_types[s.type].channels for s in cat.scheduled)
    assert {r.kind for r in cat.director} >= {
        "weather",
        "market_day",
        "festival",
        "election",
        "scandal",
        "drama",
    }
    assert len(cat.digest) == 64


def test_scheduled_tick() -> None:
    cat = load_catalog(STARTER_WORLD)
    first = cat.scheduled[0]
    assert first.time == "06:30" and first.day == 1
    assert first.sim_minute == 390
    assert first.tick(15) == 26
    assert first.tick(60) == 6
    assert [s.sim_minute for s in cat.scheduled] == sorted(s.sim_minute for s in cat.scheduled)


def test_out_of_range_trait_names_file_pointer_rule(world_factory: Any) -> None:
    root = world_factory(npcs=lambda d: _set(d, [7, "traits", "openness"], 1.4))
    err = _refused(root)
    assert f"{root}/npcs.json: /7/traits/openness: 1.4 is greater than the maximum of 1" in str(err)
    assert err.issues[0].rule == "maximum"


def test_all_schema_errors_of_a_file_are_reported(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        _set(d, [2, "traits", "neuroticism"], -0.5)
        _set(d, [5, "handle"], "no-at-sign")
        d[9]["favourite_color"] = "blue"
        del d[11]["voice"]
        return d

    err = _refused(world_factory(npcs=edit))
    pointers = {(i.pointer, i.rule) for i in err.issues}
    assert ("/2/traits/neuroticism", "minimum") in pointers
    assert ("/5/handle", "pattern") in pointers
    assert ("/9", "additionalProperties") in pointers
    assert ("/11", "required") in pointers


def test_unknown_place_reference(world_factory: Any) -> None:
    err = _refused(world_factory(npcs=lambda d: _set(d, [3, "home"], "atlantis")))
    assert "npcs.json: /3/home: unknown place 'atlantis' [npc-home-exists]" in str(err)


def test_unknown_schedule_place_and_relationship_endpoint(world_factory: Any) -> None:
    err = _refused(
        world_factory(
            npcs=lambda d: _set(d, [0, "schedule", 1, "place"], "moon_base"),
            relationships=lambda d: _set(d, [4, "target"], "nobody"),
        )
    )
    rules = {(Path(i.file).name, i.pointer, i.rule) for i in err.issues}
    assert ("npcs.json", "/0/schedule/1/place", "schedule-place") in rules
    assert ("relationships.json", "/4/target", "relationship-npc-exists") in rules


def test_effect_naming_unknown_field(world_factory: Any) -> None:
    err = _refused(world_factory(event_types=lambda d: _set(d, [6, "effects", 0, "field"], "mood")))
    issue = err.issues[0]
    assert issue.file.endswith("event_types.json")
    assert issue.pointer == "/6/effects/0/field"
    assert issue.rule == "enum"
    assert "'mood' is not one of" in issue.message


def test_effect_cross_field_rules(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        i = _index(d, id="argument")
        d[i]["effects"][0].pop("toward")
        d[i]["channels"]["feed"]["template"] = "news_article"
        j = _index(d, id="help_out")
        d[j]["effects"][3].pop("goal_kind")
        return d

    err = _refused(world_factory(event_types=edit))
    text = str(err)
    assert "affinity needs 'toward' [effect-fields]" in text
    assert "/channels/feed/template: template 'news_article' is for channel 'news'" in text
    assert "goal_progress needs goal_kind [effect-fields]" in text


def test_director_unknown_event_type(world_factory: Any) -> None:
    err = _refused(world_factory(director=lambda d: _set(d, [0, "event_type"], "alien_invasion")))
    assert (
        "director.json: /0/event_type: unknown event type 'alien_invasion' [event-type-exists]"
        in str(err)
    )


@pytest.mark.parametrize(
    ("path", "value", "pointer"),
    [
        (["probability"], 0, "/0/probability"),
        (["trigger", "time"], "03:00", "/2/trigger/time"),  # festival outside its hours
        (["participants", "place", "kind"], "clinic", "/1/participants/place/kind"),
    ],
)
def test_director_rule_that_can_never_fire(
    world_factory: Any, path: list[str], value: Any, pointer: str
) -> None:
    index = int(pointer.split("/")[1])
    err = _refused(world_factory(director=lambda d: _set(d, [index, *path], value)))
    issue = next(i for i in err.issues if i.pointer == pointer)
    assert issue.rule == "can-fire"
    assert "can never fire" in issue.message


def test_director_impossible_condition(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        i = _index(d, id="inject_drama")
        d[i]["trigger"]["value"] = 0  # events_last_hour < 0 is never true
        return d

    err = _refused(world_factory(director=edit))
    assert "rule can never fire: events_last_hour < 0" in str(err)


def test_scheduled_event_references(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        d[0]["actor"] = "ghost"
        d[1]["type"] = "teleport"
        d[2]["place"] = "nowhere"
        return d

    err = _refused(world_factory(scheduled=edit))
    got = {(i.pointer, i.rule) for i in err.issues}
    assert {
        ("/0/actor", "npc-exists"),
        ("/1/type", "event-type-exists"),
        ("/2/place", "place-exists"),
    } <= got


def test_scheduled_event_at_a_closed_place(world_factory: Any) -> None:
    """A closed place hosts no event: the loader names file, pointer and rule."""

    def edit(d: Any) -> Any:
        i = _index(d, id="d1_first_loaf")  # vogel_bakery opens 5..15
        d[i]["time"] = "04:30"
        return d

    err = _refused(world_factory(scheduled=edit))
    i = _index(json.loads((STARTER_WORLD / "scheduled.json").read_text()), id="d1_first_loaf")
    issue = next(x for x in err.issues if x.rule == "place-open")
    assert (issue.file.endswith("scheduled.json"), issue.pointer) == (True, f"/{i}/place")
    assert issue.message == "'vogel_bakery' is closed at 04:30 (open 5..15)"
    assert f"/{i}/place" in str(err) and "place-open" in str(err)


def test_scheduled_event_past_midnight_and_at_the_actors_home(world_factory: Any) -> None:
    """rusty_anchor is open 16..2: 01:30 is fine, 02:00 is not; a home closed by its hours
    still hosts its own residents."""

    def edit(d: Any) -> Any:
        i = _index(d, id="d1_karaoke")
        d[i]["time"] = "01:30"
        j = _index(d, id="d1_pastry_truce")
        d[j]["time"] = "02:00"
        return d

    err = _refused(world_factory(scheduled=edit))
    sched = json.loads((STARTER_WORLD / "scheduled.json").read_text())
    closed = [x.pointer for x in err.issues if x.rule == "place-open"]
    assert closed == [f"/{_index(sched, id='d1_pastry_truce')}/place"]


def test_director_rule_whose_place_is_never_open_when_due(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        i = _index(d, id="saturday_market")  # market_square opens 6..18
        d[i]["trigger"]["time"] = "05:00"
        j = _index(d, id="slow_news_scandal")  # the_bugle opens 7..22
        d[j]["trigger"]["start_hour"], d[j]["trigger"]["end_hour"] = 22, 24
        d[j]["participants"]["place"] = {"place": "the_bugle"}
        return d

    err = _refused(world_factory(director=edit))
    director = json.loads((STARTER_WORLD / "director.json").read_text())
    got = {(x.pointer, x.rule) for x in err.issues if "closed" in x.message}
    assert got == {
        (f"/{_index(director, id='saturday_market')}/participants/place/kind", "can-fire"),
        (f"/{_index(director, id='slow_news_scandal')}/participants/place/place", "can-fire"),
    }


def test_template_rules(world_factory: Any) -> None:
    def edit(d: Any) -> Any:
        d[0]["prompt"] += " {author_shoe_size}"
        d[1]["max_memories"] = 10
        d[1]["prompt"] += " " + "blah " * 300
        return d

    err = _refused(world_factory(templates=edit))
    rules = {i.rule for i in err.issues}
    assert {"template-placeholders", "prompt-budget"} <= rules


def test_unknown_template_reference(world_factory: Any) -> None:
    err = _refused(
        world_factory(event_types=lambda d: _set(d, [6, "channels", "feed", "template"], "nope"))
    )
    assert (
        "event_types.json: /6/channels/feed/template: unknown template 'nope' [template-exists]"
        in str(err)
    )


def test_missing_file(world_factory: Any) -> None:
    root = world_factory()
    (root / "goals.json").unlink()
    err = _refused(root)
    assert str(err) == f"{root}/goals.json: /: file is missing [file-exists]"


def test_invalid_json(world_factory: Any) -> None:
    root = world_factory()
    (root / "places.json").write_text('[{"id": "x",}')
    err = _refused(root)
    assert str(err).startswith(f"{root}/places.json: /: invalid JSON:")
    assert err.issues[0].rule == "json-syntax"


def test_errors_from_several_files_are_all_reported(world_factory: Any) -> None:
    root = world_factory(
        npcs=lambda d: _set(d, [0, "age"], 500), goals=lambda d: _set(d, [0, "progress"], 2)
    )
    (root / "world.json").write_text(json.dumps({"name": "Bad Name"}))
    files = {Path(i.file).name for i in _refused(root).issues}
    assert files == {"npcs.json", "goals.json", "world.json"}


def test_duplicate_items_are_refused_by_schema_and_model(world_factory: Any) -> None:
    err = _refused(
        world_factory(relationships=lambda d: _set(d, [4, "tags"], ["friend", "friend"]))
    )
    assert [(i.pointer, i.rule) for i in err.issues] == [("/4/tags", "uniqueItems")]
    with pytest.raises(ValueError, match="duplicate items"):
        Relationship(source="a", target="b", affinity=0, trust=0, familiarity=0, tags=["rival"] * 2)


def test_lax_values_the_schema_accepts_still_load(world_factory: Any) -> None:
    # 1.0 for an integer is valid JSON Schema (an integer-valued number) but not strict
    # pydantic: the fast path declines it and the schema path accepts it as before
    root = world_factory(npcs=lambda d: _set(d, [0, "age"], 30.0))
    assert load_catalog(root).npcs[json.loads((root / "npcs.json").read_text())[0]["id"]].age == 30
