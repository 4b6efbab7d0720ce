"""Moderation: published, flagged or blocked, with a reason; each rule, the profanity
classifier on calibration samples, and decision reasons."""

from __future__ import annotations

import time

import pytest

from posts.moderation import Moderator, moderate_decision, profanity
from topics.models import DecisionMade

# The samples the classifier's thresholds are calibrated on (p: alt-profanity-check 1.9.1).
# Town-life posts, plain disagreement, narrated insults and heated-but-clean decision
# reasons: p <= 0.26.
CLEAN = [
    "Lovely morning at the bakery, the cinnamon rolls are back!",
    "The town council meets tonight at 7 to discuss the new bridge.",
    "Anyone else hear the fire alarm at the library? Everyone is fine.",
    "Congratulations to Mayor Hart on the new park opening.",
    "I strongly disagree with the council's decision on parking fees.",
    "Frankly, your plan for the market is a terrible idea and you know it.",
    "Killer deal on tomatoes at the market today!",
    "The harvest festival was a blast, we danced until midnight.",
    "The sermon about sin and forgiveness was moving.",
    "Bea and I argued about the election, but we're still friends.",
    "I want to confront Tom about the rumor he spread.",
    "She insulted my cooking, so I will avoid her for a while.",
    "Because he lied to me, I want to tell him off in public.",
    "Coffee with Sam at the Daily Grind. He still takes it black, no sugar.",
    "Council votes 4-3 to delay the library repairs. More soon.",
    "Had a heated argument with Victor about the zoning plan. We'll talk again tomorrow.",
    "The river flooded the lower road again; please drive carefully.",
    "Thank you to every volunteer who cleaned up Willow Green this weekend!",
    "Rumor has it the old mill will reopen as a brewery. Anyone know more?",
    "I was wrong about the bus schedule and I apologise to everyone.",
    "Priya's crossword in the Bugle beat me again. Next week, Priya.",
    "Feeling grateful for this little town tonight.",
    "The mayor's speech was long, vague and, honestly, disappointing.",
    "Our team lost the match, but the kids played their hearts out.",
    "The bakery burned down last night. Nobody was hurt, thank goodness.",
    "Who keeps leaving trash by the fountain? Please use the bins.",
    "I asked Lily to dinner at the bistro. Wish me luck!",
    "Tom and I are not speaking after what he said at the meeting.",
    "Press conference at noon: the council will answer questions on the budget.",
    "Greeting Bea at the market because we have not talked in weeks.",
    "Victor Crane insulted Bea Summers at the Daily Grind.",
    "Victor insulted Bea at the market, calling her a fraud.",
    "Argument at the town hall: Eleanor Hart and Victor Crane disagreed about the budget.",
    "Public feud between the bakery and the cafe escalates.",
    "Nobody likes you, Victor.",
    "Get lost, Victor.",
]
# Insults and mild swearing, none on the word lists: flagged (p 0.79 to 0.9998).
HEATED = [
    "What an ass. Cut in line at the post office.",
    "He called me a moron in front of everyone at the cafe.",
    "That dumbass parked across three spaces again.",
    "bastards raised the rent again",
    "Crap, forgot my umbrella again.",
    "Shut your mouth, you clown.",
    "This council is full of crooks and morons.",
    "What a jerk, he didn't even say sorry.",
    "You're a selfish jerk.",
    "You are a pathetic little man.",
    "Bea is a fraud and a hypocrite.",
    "Victor is a pathetic loser and a coward.",
    "This sucks.",
]
# Strong profanity: blocked (p >= 0.99998).
ABUSIVE = [
    "You're a fucking liar and a thief.",
    "Go to hell, you worthless piece of shit.",
    "Fuck this town and everyone in it.",
    "Shut the fuck up, Victor.",
    "Eat shit, you stupid cow.",
    "Tom is a fucking asshole.",
    "Screw you and your bullshit plan, dickhead.",
    "You dumb bitch, nobody likes you.",
]
# Where the classifier's scores overlap: short direct insults score as high as strong
# profanity, so no threshold gets these right; the block threshold is set high because a
# blocked post is hidden and a flagged one is shown.
MISSES = [
    ("The mayor is a lying sack of shit.", "blocked"),  # p 0.988: flagged
    ("I want to punch that motherfucker in his smug face.", "blocked"),  # p 0.997: flagged
    ("Suck it, losers, our team won!", "blocked"),  # p 0.998: flagged
    ("She is such a bitch to the staff at the diner.", "blocked"),  # p 0.9997: flagged
    ("You are an idiot.", "flagged"),  # p 0.999999: blocked
]


def rules_only() -> Moderator:
    return Moderator(score_profanity=lambda text: 0.0)


def test_rules_publish_clean_text() -> None:
    assert rules_only().review("What a lovely day") == ("published", None)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("please kys", ("blocked", "blocklist: 'kys'")),
        ("Just Kill Yourself already", ("blocked", "blocklist: 'kill yourself'")),
        ("see https://example.com now", ("flagged", "contains a link")),
        ("WHY IS THE BRIDGE CLOSED AGAIN TODAY", ("flagged", "shouting (mostly capitals)")),
        ("you idiot", ("flagged", "rude word: 'idiot'")),
        ("oh hell no", ("flagged", "rude word: 'hell'")),
    ],
)
def test_each_rule(text: str, verdict: tuple[str, str]) -> None:
    assert rules_only().review(text) == verdict


@pytest.mark.parametrize(
    "text",
    [
        "Three huskys ran by the river",  # 'kys' only as a word
        "Shelley's hello to everyone",  # 'hell' only as a word
        "OK BY ME",  # shouting needs 20 letters
        "The Daily Grind opens at 7 on Main Street and closes late tonight",
    ],
)
def test_rules_need_whole_words_and_enough_capitals(text: str) -> None:
    assert rules_only().review(text) == ("published", None)


@pytest.mark.parametrize(
    ("p", "verdict"),
    [
        (0.10, ("published", None)),
        (0.7499, ("published", None)),
        (0.75, ("flagged", "classifier: profanity p=0.7500")),
        (0.9949, ("flagged", "classifier: profanity p=0.9949")),
        (0.99989, ("flagged", "classifier: profanity p=0.9999")),
        (0.9999, ("blocked", "classifier: profanity p=0.9999")),
        (1.0, ("blocked", "classifier: profanity p=1.0000")),
    ],
)
def test_profanity_thresholds(p: float, verdict: tuple[str, str | None]) -> None:
    assert Moderator(score_profanity=lambda text: p).review("nice day") == verdict


def test_thresholds_are_settings() -> None:
    m = Moderator(score_profanity=lambda text: 0.5, profanity_flag_at=0.4, profanity_block_at=0.5)
    assert m.review("x") == ("blocked", "classifier: profanity p=0.5000")


def test_order_blocked_beats_flagged_rules_before_classifiers() -> None:
    flagging = Moderator(score_profanity=lambda text: 0.8)
    blocking = Moderator(score_profanity=lambda text: 0.99999)
    assert flagging.review("kys")[1] == "blocklist: 'kys'"  # blocklist first
    assert blocking.review("you idiot")[0] == "blocked"  # a block beats a rule's flag
    assert flagging.review("you idiot") == ("flagged", "rude word: 'idiot'")  # rule's reason


def test_pluggable_classifiers() -> None:
    m = rules_only()
    m.classifiers.append(lambda text: ("blocked", "cake filter") if "cake" in text else None)
    m.classifiers.append(lambda text: ("flagged", "pie filter") if "pie" in text else None)
    assert m.review("cake") == ("blocked", "cake filter")
    assert m.review("pie") == ("flagged", "pie filter")
    assert m.review("pie and cake") == ("blocked", "cake filter")
    assert m.review("bread") == ("published", None)


@pytest.mark.parametrize("text", CLEAN)
def test_classifier_publishes_town_life(text: str) -> None:
    assert Moderator(flag_words=()).review(text) == ("published", None)


@pytest.mark.parametrize("text", HEATED)
def test_classifier_flags_insults(text: str) -> None:
    status, reason = Moderator(flag_words=()).review(text)
    assert status == "flagged" and (reason or "").startswith("classifier: profanity p=")


@pytest.mark.parametrize("text", ABUSIVE)
def test_classifier_blocks_strong_profanity(text: str) -> None:
    status, reason = Moderator(blocklist=(), flag_words=()).review(text)
    assert status == "blocked" and (reason or "").startswith("classifier: profanity p=")


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Damn it, the bridge is closed again.", ("flagged", "rude word: 'damn'")),  # p 0.67
        ("You are an idiot and everyone in this town knows it.", ("flagged", "rude word: 'idiot'")),
        ("Stupid weather ruined the picnic.", ("flagged", "rude word: 'stupid'")),  # p 0.97
    ],
)
def test_rules_and_classifier_together(text: str, verdict: tuple[str, str]) -> None:
    assert Moderator().review(text) == verdict


@pytest.mark.xfail(strict=True, reason="the classifier's scores overlap at the top: see MISSES")
@pytest.mark.parametrize(("text", "expected"), MISSES)
def test_classifier_calibration_misses(text: str, expected: str) -> None:
    assert Moderator(flag_words=()).review(text)[0] == expected


def test_calibration_margins() -> None:
    """The thresholds sit in the gaps of the samples, not on a sample."""
    m = Moderator()
    clean = max(profanity(t) for t in CLEAN)
    heated = [profanity(t) for t in HEATED]
    abusive = min(profanity(t) for t in ABUSIVE)
    assert clean < 0.3 < 0.5 < m.profanity_flag_at < min(heated)
    assert 1 - max(heated) > 2 * (1 - m.profanity_block_at) > 4 * (1 - abusive)


def test_profanity_model_loads_once_and_is_fast() -> None:
    profanity("warm up")
    started = time.perf_counter()
    for text in CLEAN:
        profanity(text)
    per_call = (time.perf_counter() - started) / len(CLEAN)
    assert per_call < 0.05  # ~5 ms measured on a shared 2-core box


def made(reason: str | None, answer: dict[str, object] | None = None) -> DecisionMade:
    return DecisionMade(
        request_id="dq_1",
        run_id="r",
        tick=3,
        due_tick=4,
        shard=0,
        npcs=["eleanor_hart"],
        prompt_hash="abc",
        status="ok",
        answer=answer if answer is not None else {"action": "wait", "reason": reason},
        reason=reason,
    )


def test_blocked_decision_reason_is_withheld_and_recorded() -> None:
    text = "Tom is a fucking asshole."
    out = moderate_decision(Moderator(), made(text))
    assert out.reason is None and out.answer == {"action": "wait"}
    assert (out.reason_moderation or "").startswith("blocked: classifier: profanity p=")
    assert text not in out.model_dump_json()


def test_flagged_decision_reason_is_kept_and_recorded() -> None:
    out = moderate_decision(Moderator(), made("He called me a moron, so I will confront him."))
    assert out.reason == "He called me a moron, so I will confront him."
    assert out.answer is not None and out.answer["reason"] == out.reason
    assert (out.reason_moderation or "").startswith("flagged: classifier: profanity p=")


def test_clean_or_missing_decision_reason_is_untouched() -> None:
    clean = made("I want to confront Tom about the rumor he spread.")
    assert moderate_decision(Moderator(), clean) is clean
    missing = made(None, {"action": "wait"})
    assert moderate_decision(Moderator(), missing) is missing
    blocked_rule = moderate_decision(rules_only(), made("kys", {"choices": []}))
    assert blocked_rule.reason is None and blocked_rule.answer == {"choices": []}
    assert blocked_rule.reason_moderation == "blocked: blocklist: 'kys'"
