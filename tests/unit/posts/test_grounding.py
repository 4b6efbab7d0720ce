"""The grounding validator, rule by rule: a passing and a failing text for each, on the
starter world's real names and places."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import Npc, Style
from llm.cache import sampling_for
from posts.grounding import (
    Subject,
    WorldNames,
    headline_problems,
    invented_names,
    names_of,
    present_tense,
    problems,
    prune,
    rule_of,
    title_invented,
    unsupported_words,
)
from posts.prompt import build_prompt, lead_for, must_name, revise, style_of
from sim.world import WorldIndex, load_world
from topics.models import EventHappened, ImpactScore, RenderRequested


@pytest.fixture(scope="module")
def town() -> WorldIndex:
    return load_world("town")


@pytest.fixture(scope="module")
def names(town: WorldIndex) -> WorldNames:
    return names_of(town)


def subject(**kw: Any) -> Subject:
    base: dict[str, Any] = {
        "channel": "feed",
        "author": "jay_okafor",  # a witness
        "actor": "victor_crane",
        "target": "eleanor_hart",
        "place": "town_hall",
        "summary": "Victor Crane argued with Eleanor Hart at Brookfield Town Hall",
        "valence": "negative",
        "requires_place": True,
    }
    return Subject(**(base | kw))


def rules(names: WorldNames, body: str, title: str | None = None, **kw: Any) -> set[str]:
    fields = {"body": body} | ({"title": title} if title is not None else {})
    return {rule_of(p) for p in problems(fields, subject(**kw), names)}


GROUNDED = "Victor Crane and Eleanor Hart went at it again at Brookfield Town Hall. Ugh."


def test_a_grounded_post_passes_every_rule(names: WorldNames) -> None:
    assert rules(names, GROUNDED) == set()


def test_actor_must_be_named(names: WorldNames) -> None:
    assert "actor" in rules(names, "Eleanor Hart got shouted at in Brookfield Town Hall. Sad.")
    assert "actor" not in rules(names, "Crane shouted at Eleanor Hart at the Town Hall. Sad.")


def test_the_actor_may_write_in_the_first_person(names: WorldNames) -> None:
    text = "I had words with Eleanor Hart at the Town Hall. Brookfield deserves better."
    assert rules(names, text, author="victor_crane") == set()
    assert "actor" in rules(names, text)  # from a witness, "I" is not Victor


def test_target_must_be_named_or_write_in_the_first_person(names: WorldNames) -> None:
    assert "target" in rules(names, "Victor Crane lost it at Brookfield Town Hall today.")
    mine = "Victor Crane shouted at me at Brookfield Town Hall. Disappointing."
    assert "target" not in rules(names, mine, author="eleanor_hart")


def test_place_is_needed_where_the_channel_requires_it(names: WorldNames) -> None:
    text = "Victor Crane and Eleanor Hart are at it again. Exhausting."
    assert "place" in rules(names, text)
    assert "place" not in rules(names, text, channel="chat", requires_place=False)
    # the place by a shorter form of its name
    assert "place" not in rules(names, "Victor Crane and Eleanor Hart at Town Hall again. Ugh.")


def test_invented_people_and_places_fail(names: WorldNames) -> None:
    got = problems({"body": GROUNDED + " Even Sarah from Manchester heard it."}, subject(), names)
    assert any(p.startswith("invented: names Sarah, Manchester") for p in got)
    assert invented_names("Priya Raman of The Brookfield Bugle was there on Friday.", names) == []
    assert invented_names("I told the New York Times.", names) == ["New", "York", "Times"]


def test_sentence_openers_and_prompt_words_are_not_names(names: WorldNames) -> None:
    assert invented_names("Honestly, what a day. We've had worse. Ugh.", names) == []
    assert invented_names("Despite the rain, we went.", names) == []  # a common word
    assert invented_names("Brookville again!", names, vocabulary=["Brookville"]) == []
    assert invented_names("Brookville again!", names) == ["Brookville"]
    assert invented_names("We drove to Paris.", names) == ["Paris"]  # mid-sentence


def test_a_role_the_world_does_not_give_is_a_contradiction(names: WorldNames) -> None:
    bad = GROUNDED + " Victor Crane, who used to be the mayor, left."
    assert "role" in rules(names, bad)
    assert "role" in rules(names, GROUNDED + " Mayor Crane left.")
    assert "role" not in rules(names, GROUNDED + " Mayor Hart left.")  # Eleanor Hart is mayor
    assert "role" not in rules(names, GROUNDED + " Victor Crane, the councillor, left.")


def test_kin_the_world_does_not_have_is_a_contradiction(names: WorldNames) -> None:
    assert "kin" in rules(names, GROUNDED + " Victor Crane's wife Eleanor Hart sighed.")
    assert "kin" not in rules(names, GROUNDED + " Eleanor Hart's daughter Mia Hart sighed.")


def test_naming_another_known_place_instead_is_a_contradiction(names: WorldNames) -> None:
    text = "Victor Crane and Eleanor Hart argued at Market Square. Ugh."
    assert "wrong_place" in rules(names, text)
    assert "wrong_place" not in rules(names, GROUNDED + " Then off to Market Square.")


def test_tone_must_fit_the_valence(names: WorldNames) -> None:
    cheerful = GROUNDED + " So happy and excited, what a wonderful, amazing day!"
    assert "tone" in rules(names, cheerful)
    assert "tone" not in rules(names, cheerful, valence="positive")
    bitter = GROUNDED + " Awful, terrible, disgusting and sad."
    assert "tone" in rules(names, bitter, valence="positive")
    assert "tone" not in rules(names, bitter, valence="mixed")


def test_letter_openings_and_third_person_self(names: WorldNames) -> None:
    assert "letter" in rules(names, "Eleanor Hart, I saw Victor Crane at Brookfield Town Hall.")
    assert "letter" not in rules(names, GROUNDED)
    third = "Jay Okafor saw Victor Crane and Eleanor Hart argue at Brookfield Town Hall. Yikes."
    assert "third_person" in rules(names, third)
    assert "third_person" not in rules(names, "I saw " + GROUNDED)


def test_news_needs_its_own_headline_and_two_paragraphs(names: WorldNames) -> None:
    news = {"channel": "news", "author": "priya_raman"}
    two = GROUNDED + "\n\nThe council meets again on Monday."
    assert rules(names, two, "Council Clash at Town Hall", **news) == set()
    assert "headline" in rules(names, two, subject().summary, **news)
    assert "headline" in rules(names, two, "The facts:", **news)
    assert "paragraphs" in rules(names, GROUNDED, "Council Clash at Town Hall", **news)


def _request(town: WorldIndex, channel: str, author: str) -> RenderRequested:
    ev = EventHappened(
        event_id="ev1",
        run_id="r",
        tick=40,
        sim_minute=600,
        type="argument",
        actor="victor_crane",
        target="eleanor_hart",
        place="town_hall",
        summary="Victor Crane argued with Eleanor Hart at Brookfield Town Hall",
        impact=ImpactScore(novelty=0.5, conflict=0.5, status=0.5, cascade=0, total=0.7),
    )
    template = {"feed": "feed_post", "chat": "chat_message", "news": "news_article"}[channel]
    return RenderRequested(
        request_id="rq1",
        run_id="r",
        channel=channel,
        author=author,
        template=template,
        score=0.7,
        event=ev,
    )


def test_retries_say_why_and_start_with_the_event(town: WorldIndex) -> None:
    req = _request(town, "feed", "victor_crane")
    prompt = build_prompt(town, req, town.catalog.templates["feed_post"])
    why = ["target: does not name Eleanor Hart"]
    retry = revise(town, req, prompt, why)
    assert "rejected (does not name Eleanor Hart)" in retry.user and not prompt.prefill
    assert retry.prefill == "I argued with Eleanor Hart at Brookfield Town Hall. "
    assert retry.text.endswith(retry.prefill)
    news = _request(town, "news", "priya_raman")
    p = build_prompt(town, news, town.catalog.templates["news_article"])
    assert p.grammar and "Victor Crane argued" not in p.grammar
    last = revise(town, news, p, why)
    assert last.grammar and '"Victor Crane argued with Eleanor Hart at Brookfield Town Hall. "' in (
        last.grammar
    )
    assert lead_for(town, news).startswith("Victor Crane argued")


def test_field_Channel_requires_place_makes_a_post_name_the_place(town: WorldIndex) -> None:
    feed = must_name(town, _request(town, "feed", "jay_okafor"))
    chat = must_name(town, _request(town, "chat", "jay_okafor"))
    assert feed == ["Victor Crane", "Eleanor Hart", "Brookfield Town Hall"]
    assert chat == ["Victor Crane", "Eleanor Hart"]  # chat: requires_place false


def test_field_EventType_valence_sets_the_mood_and_the_tone_rule(town: WorldIndex) -> None:
    req = _request(town, "feed", "jay_okafor")
    assert town.catalog.event_types["argument"].valence == "negative"
    prompt = build_prompt(town, req, town.catalog.templates["feed_post"])
    assert "bad news" in prompt.user
    rescue = req.model_copy(update={"event": req.event.model_copy(update={"type": "rescue"})})
    assert "good news" in build_prompt(town, rescue, town.catalog.templates["feed_post"]).user


def _style(**kw: Any) -> str:
    return style_of(Npc.model_construct(style=Style(**kw)))


def test_field_Style_manner_is_told_to_the_model() -> None:
    assert "Manner: blunt." in _style(manner="blunt")
    assert "Manner: casual." in _style()


def test_field_Style_emoji_asks_for_an_emoji() -> None:
    assert "emoji" in _style(emoji=True) and "emoji" not in _style()


def test_field_Style_quirks_are_listed_as_habits() -> None:
    assert "Habits: says 'aye'; nautical slang." in _style(quirks=["says 'aye'", "nautical slang"])
    assert "Habits" not in _style()


def test_field_Style_length_sets_the_length_asked_for(town: WorldIndex) -> None:
    terse = build_prompt(
        town, _request(town, "feed", "otto_brandt"), town.catalog.templates["feed_post"]
    )
    chatty = build_prompt(
        town, _request(town, "feed", "walter_pike"), town.catalog.templates["feed_post"]
    )
    assert "one short sentence" in terse.user and "two or three sentences" in chatty.user


def test_field_Style_temperature_shifts_the_sampling(town: WorldIndex) -> None:
    hot = build_prompt(
        town, _request(town, "feed", "noah_fischer"), town.catalog.templates["feed_post"]
    )
    plain = build_prompt(
        town, _request(town, "feed", "jay_okafor"), town.catalog.templates["feed_post"]
    )
    assert hot.temperature == 0.15 and plain.temperature == 0.0
    assert sampling_for(hot, 1)["temperature"] == pytest.approx(
        sampling_for(plain, 1)["temperature"] + 0.15
    )


def test_field_Template_examples_appear_in_the_prompt(town: WorldIndex) -> None:
    t = town.catalog.templates["feed_post"]
    prompt = build_prompt(town, _request(town, "feed", "jay_okafor"), t)
    assert t.examples and all(e.post in prompt.text for e in t.examples)
    assert prompt.text.index(t.examples[0].post) < prompt.text.index(prompt.user)  # earlier turn
    assert t.examples[0].post not in prompt.user
    bare = t.model_copy(update={"examples": []})
    assert (
        t.examples[0].post
        not in build_prompt(town, _request(town, "feed", "jay_okafor"), bare).text
    )


def test_field_Example_event_is_the_question_of_an_earlier_turn(town: WorldIndex) -> None:
    t = town.catalog.templates["chat_message"]
    prompt = build_prompt(town, _request(town, "chat", "jay_okafor"), t)
    assert prompt.shots[0][0] == f"What happened: {t.examples[0].event}"
    assert f"<|im_start|>user\nWhat happened: {t.examples[0].event}<|im_end|>" in prompt.text


def test_field_Example_post_is_the_answer_of_an_earlier_turn(town: WorldIndex) -> None:
    t = town.catalog.templates["chat_message"]
    prompt = build_prompt(town, _request(town, "chat", "jay_okafor"), t)
    assert f"<|im_start|>assistant\n{t.examples[0].post}<|im_end|>" in prompt.text


def _pruned(names: WorldNames, body: str, **kw: Any) -> tuple[str, list[str]]:
    keep = kw.pop("keep", "")
    examples = kw.pop("examples", ())
    fields, dropped = prune({"body": body}, subject(**kw), names, (), keep, examples)
    return fields["body"], dropped


@pytest.mark.parametrize(
    ("sentence", "rule"),
    [
        ("We all drove over from Manchester.", "invented"),
        ("Victor Crane, who used to be the mayor, left.", "role"),
        ("Victor Crane's wife Eleanor Hart sighed.", "kin"),
        ("Then it moved on to Market Square.", "wrong_place"),
        ("Jay Okafor could not believe it.", "third_person"),
        ("My knees hate me, but it's dry in there now.", "echo"),
        ("How it feels: something that makes you want to cry.", "echo"),
        ("Your last draft was rejected (too short).", "echo"),
        ("The article: everyone agreed.", "echo"),
    ],
)
def test_prune_drops_a_sentence_that_breaks_a_rule_on_its_own(
    names: WorldNames, sentence: str, rule: str
) -> None:
    example = "Three hours on a ladder. My knees hate me, but it's dry in there now."
    body, dropped = _pruned(names, f"{GROUNDED} {sentence} What a day.", examples=[example])
    assert dropped == [rule]
    assert body == GROUNDED + " What a day."
    assert rules(names, body) == set()  # the rest passes the validator


def test_prune_leaves_a_clean_post_alone_and_an_empty_one_to_the_validator(
    names: WorldNames,
) -> None:
    assert _pruned(names, GROUNDED) == (GROUNDED, [])
    bad = "We all drove over from Manchester."
    assert _pruned(names, bad) == (bad, ["invented"])  # nothing left: rejected with reasons
    assert "invented" in rules(names, bad)
    # a post of echoes only (which the validator does not see) is emptied, so it fails
    echoes = "The article: a festival.\n\nBear in mind that it is big."
    assert _pruned(names, echoes) == ("", ["echo"])


def test_prune_keeps_the_given_start_and_news_paragraphs(names: WorldNames) -> None:
    lead = "Victor Crane argued with Eleanor Hart at Dr. Nwosu's Manchester Clinic."
    body, dropped = _pruned(names, f"{lead} Off to Leeds.\n\nDr. Amara Nwosu was calm.", keep=lead)
    assert body == f"{lead}\n\nDr. Amara Nwosu was calm."  # "Dr." does not end a sentence
    assert dropped == ["invented"]
    # a pruned post that no longer names the actor still fails
    body, _ = _pruned(
        names, "Victor Crane met Manchester United. Eleanor Hart was at Brookfield Town Hall."
    )
    assert "actor" in rules(names, body)


def test_appositive_roles_are_checked_to_the_sixth_word(names: WorldNames) -> None:
    assert "role" in rules(
        names, GROUNDED + " Victor Crane, a proud and retired fisherman, sighed."
    )
    assert "role" not in rules(names, GROUNDED + " Victor Crane, the mayor's rival, sighed.")
    assert "role" not in rules(names, GROUNDED + " Victor Crane, a friend of the baker, sighed.")


def test_a_headline_on_its_own(names: WorldNames) -> None:
    news = subject(channel="news", author="priya_raman")
    assert headline_problems("Crane And Hart Clash Over Budget", news, names) == []
    assert {
        rule_of(p) for p in headline_problems("Town Hall Clash Rocks Brookfield", news, names)
    } == {"actor"}
    assert {
        rule_of(p) for p in headline_problems("Crane Slams Brookville Council", news, names)
    } == {"invented"}
    assert {rule_of(p) for p in headline_problems(news.summary, news, names)} == {"headline"}
    assert title_invented("Crane Blames Oakridge For Delays", names) == ["Oakridge"]
    assert title_invented("Crane blames the oven for delays", names) == []  # not names
    for unfinished in (
        "Hart, the mayor of the town, was interrupted by a",
        "Crane And Hart Clash,",
        "Eleanor Hart Argues With Crane andVictoreCranes",  # words glued at the word cap
        "Crane And Hart Clash Over named-and-shaken",
        "Crane Fire Destroys The Oven's'reactor-1",
        "Victor Crane is a town councillor who argued",  # a sentence, not a headline
    ):
        assert "headline" in [rule_of(p) for p in headline_problems(unfinished, news, names)]


def test_a_headline_says_only_what_the_event_did(names: WorldNames) -> None:
    """Content words of a headline come from the summary (any form), the world's names and
    titles, or the verbs headlines retell with; one word of its own is allowed."""
    speech = subject(
        channel="news", actor="eleanor_hart", target=None, place="willow_green",
        summary="Eleanor Hart gave a fiery election speech at Willow Green",
    )  # fmt: skip
    for fine in (
        "Eleanor Hart Gives Fiery Speech At Willow Green",
        "Mayor Hart Rallies Willow Green In Election Speech",  # a headline verb
        "Eleanor Hart Fires Up Willow Green",  # one word of its own
    ):
        assert headline_problems(fine, speech, names, speech.summary.split()) == [], fine
    assert unsupported_words("Eleanor Hart Wins Election At Willow Green", speech, names) == [
        "Wins"
    ]
    for wrong in (
        "Eleanor Hart Flames Win Election At Willow Green",  # she gave a speech
        "Eleanor Hart Falls Down Bridge At Willow Green",
    ):
        found = headline_problems(wrong, speech, names)
        assert [p for p in found if "says what the event does not" in p], wrong


def test_a_headline_repeating_the_worked_example_fails(names: WorldNames) -> None:
    news = subject(channel="news", author="priya_raman")
    example = "The bakery's oven broke down before dawn."
    echo = "The bakery's oven broke down before Crane spoke"
    found = headline_problems(echo, news, names, (), [example])
    assert {rule_of(p) for p in found} == {"headline"}
    assert any("repeats the example" in p for p in found)
    assert headline_problems("Crane And Hart Clash Over Budget", news, names, (), [example]) == []


def test_a_headline_saying_a_word_twice_fails(names: WorldNames) -> None:
    """SmolLM2 under the headline grammar loops ("Councillor Councillor Councillor"); a
    surname two people share and a joining word may come twice."""
    news = subject(channel="news", author="priya_raman")
    for looped in (
        "Victor Crane Clashes With Councillor Councillor",
        "Victor Crane Argues About Budget And Budget",
    ):
        found = headline_problems(looped, news, names)
        assert [p for p in found if "twice" in p], looped
    rescue = subject(
        channel="news", actor="leo_marchetti", target="rosa_marchetti", place="maple_row",
        summary="Leo Marchetti saved Rosa Marchetti at Maple Row houses",
    )  # fmt: skip
    fine = "Leo Marchetti Rescues Rosa Marchetti At Maple Row Houses"
    assert headline_problems(fine, rescue, names) == []
    assert headline_problems("Victor Crane Clashes With Hart At Town Hall", news, names) == []


def test_a_headline_in_the_present_is_not_the_summary_copied(names: WorldNames) -> None:
    """The summary in title case is copied; told in the present, it is a headline."""
    news = subject(channel="news", author="priya_raman")
    copied = "Victor Crane Argued With Eleanor Hart At Brookfield Town Hall"
    assert {rule_of(p) for p in headline_problems(copied, news, names)} == {"headline"}
    told = "Victor Crane Argues With Eleanor Hart At Brookfield Town Hall"
    assert headline_problems(told, news, names) == []


@pytest.mark.parametrize(
    ("past", "present"),
    [
        ("collapsed", "collapses"), ("argued", "argues"), ("helped", "helps"),
        ("called", "calls"), ("snapped", "snaps"), ("replied", "replies"), ("led", "leads"),
        ("kissed", "kisses"), ("gave", "gives"), ("organized", "organizes"), ("said", "says"),
    ],
)  # fmt: skip
def test_present_tense_of_a_summary_verb(past: str, present: str) -> None:
    assert present_tense(past) == present


def test_present_tense_knows_no_other_word() -> None:
    assert [present_tense(w) for w in ("speech", "red", "the", "walked")][:3] == [None] * 3


def test_a_pronoun_or_an_odd_possessive_is_no_invented_name(names: WorldNames) -> None:
    """Seen in make eval-posts: "(I am not a mayor) You can say..." and "Otto'S Cafe"."""
    text = "I am not the mayor (just a neighbour) You can say it to me. Otto'S stall is shut."
    assert invented_names(text, names) == []
    assert invented_names("Otto'S stall and Ottoline's stall.", names) == ["Ottoline"]


def test_the_actors_own_post_must_say_what_happened(names: WorldNames) -> None:
    """Written by the actor in the first person, a post still tells the event: a word of
    the summary (any form), the target or the place. Seen in make eval-posts: Mia Hart's
    chat about the protest she led was "I'm so sorry to hear about your family."."""
    protest = {
        "channel": "chat", "author": "mia_hart", "actor": "mia_hart", "target": None,
        "place": None, "requires_place": False, "valence": "mixed",
        "summary": "Mia Hart and Zoe Kim led a 'Save Willow Green' protest with painted banners",
    }  # fmt: skip
    elsewhere = "I'm so sorry to hear about your family. I'll do everything I can."
    assert rules(names, elsewhere, **protest) == {"about"}
    for told in (
        "We were protesting all afternoon and my arms hurt from the banners.",
        "I painted banners all night and I would do it again.",
    ):
        assert rules(names, told, **protest) == set(), told


def test_a_news_sentence_about_headlines_is_an_echo(names: WorldNames) -> None:
    """SmolLM2 repeats the task: "In a short headline, you can highlight the story."."""
    news = subject(channel="news", author="priya_raman")
    told = "Victor Crane argued with Eleanor Hart at Brookfield Town Hall."
    body = f"{told} In a short headline, you can highlight the main story."
    fields, dropped = prune({"body": body}, news, names)
    assert dropped == ["echo"]
    assert fields["body"] == told


def test_a_sentence_where_someone_dies_is_pruned(names: WorldNames) -> None:
    """Nobody dies in the world; SmolLM2 on a collapse wrote "90% of the people in the
    school died" and "Noah Fischer was knocked down by a bomb"."""
    collapse = subject(
        channel="chat", author="jay_okafor", actor="noah_fischer", target=None,
        place="brookfield_school", summary="Noah Fischer collapsed at Brookfield School",
    )  # fmt: skip
    told = "Noah Fischer collapsed at Brookfield School."
    for invented in ("90% of the people in the school died.", "He was hit by a bomb."):
        fields, dropped = prune({"body": f"{told} {invented}"}, collapse, names)
        assert (fields["body"], dropped) == (told, ["death"]), invented
    assert prune({"body": f"{told} I hope he is okay."}, collapse, names)[1] == []


def test_a_news_body_names_who_did_it_not_only_its_headline(names: WorldNames) -> None:
    """Seen in make eval-posts: "Mia Hart Leads Protest" over the body 'The event was
    called "Save Willow Green" and it. Border: no borders on either side.'."""
    news = {"channel": "news", "author": "priya_raman"}
    title = "Victor Crane Clashes With Eleanor Hart"
    empty = "It was a long day at Brookfield Town Hall.\n\nNobody said much about it after."
    assert rules(names, empty, title, **news) == {"actor"}
    told = "Victor Crane raised his voice at Brookfield Town Hall.\n\nThe meeting went on."
    assert rules(names, told, title, **news) == set()
