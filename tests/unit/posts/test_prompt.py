"""Prompts: voiced from the author's side, and free of anything request-specific."""

from __future__ import annotations

from collections.abc import Callable

from llm.cache import cache_key, sampling_for
from posts.prompt import build_prompt, values_for, voiced_summary
from sim.world import WorldIndex
from topics.models import RenderRequested

MakeRequest = Callable[..., RenderRequested]


def test_voiced_summary_speaks_to_the_author(index: WorldIndex, make_request: MakeRequest) -> None:
    req = make_request()
    text = voiced_summary(index, req)
    assert text.startswith("You argued with the baker")
    assert voiced_summary(index, req, first_person=False).startswith(
        index.npc(req.author).display_name
    )


def test_seed_and_cache_key_depend_on_prompt_not_request(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    t = index.catalog.templates["feed_post"]
    p1 = build_prompt(index, make_request(n=1), t)
    p2 = build_prompt(index, make_request(n=2), t)
    assert sampling_for(p1, 1) == sampling_for(p2, 1)  # same text, different requests
    assert sampling_for(p1, 1)["seed"] != sampling_for(p1, 2)["seed"]
    assert cache_key("m", p1, sampling_for(p1, 1)) != cache_key("m", p1, sampling_for(p1, 2))


def test_day_and_time_of_the_event(index: WorldIndex, make_request: MakeRequest) -> None:
    req = make_request()
    late = req.model_copy(
        update={"event": req.event.model_copy(update={"sim_minute": 1440 + 7 * 60 + 5})}
    )
    assert (values_for(index, req, [])["day"], values_for(index, req, [])["time"]) == ("1", "10:00")
    assert (values_for(index, late, [])["day"], values_for(index, late, [])["time"]) == (
        "2",
        "07:05",
    )


def test_a_headline_is_told_from_the_events_own_words(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    """title_rules: the actor leads, the verb is the actor's deed in the present (never a
    passive's, never a later clause's), then phrases of the summary once each, in order."""
    import re

    from posts.prompt import headline_grammar

    req = make_request("news")
    actor = index.npc(req.event.actor).display_name
    summary = f"{actor} collapsed at Otto's cheese stall and an ambulance was called; Crane left"
    req = req.model_copy(update={"event": req.event.model_copy(update={"summary": summary})})
    grammar = headline_grammar(index, req)
    rules = dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())
    assert rules["title"] == f'"{actor}" " " verb s0'
    assert re.findall(r'"([^"]+)"', rules["verb"]) == ["Collapses"]  # not "Calls", "Leaves"
    phrases = [re.findall(r'"([^"]+)"', rules[k])[1:] for k in rules if re.fullmatch(r"p\d+", k)]
    place = index.place_name(req.event.place)
    # each after the joining word the summary puts before it, if any ("at Otto's")
    assert phrases == [
        ["At ", "Otto's"],
        ["Cheese"],
        ["Stall"],
        ["And ", "Ambulance"],
        ["At ", place],
    ], phrases
    assert rules["s0"] == "p0 s1? | s1" and rules[f"s{len(phrases) - 1}"] == f"p{len(phrases) - 1}"
