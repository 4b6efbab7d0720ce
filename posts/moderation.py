"""Moderation: every post is published, flagged or blocked, with a reason.

Rules (a blocklist and a few heuristics) and a profanity classifier: ``alt-profanity-check``,
a linear model on word n-grams that ships its weights in the wheel (no download). Its
probability blocks at ``profanity_block_at`` and flags at ``profanity_flag_at``. The
defaults are calibrated on the samples in ``tests/unit/posts/test_moderation.py``:
town-life posts, plain disagreement and narrated insults ("Victor insulted Bea") score
at most 0.26; insults and mild swearing 0.67 to 0.9998; strong profanity 0.988 to 1. So
flagging is clean, and blocking cuts an overlap: short direct insults ("You are an
idiot.", "This sucks.") score like swearing. The block threshold is high, because a
blocked post is hidden and a flagged one shown: some strong profanity is only flagged.
``Moderator.classifiers`` takes more classifiers (a callable returning a verdict or None).

The same verdicts apply to the reasons the LLM writes for its decisions
(:func:`moderate_decision`): a blocked reason is withheld, the verdict recorded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from topics.models import DecisionMade

Verdict = tuple[str, str | None]  # (status, reason)

BLOCKLIST = ("kill yourself", "kys", "nazi", "retard", "faggot", "nigger", "rape")
FLAG_WORDS = ("idiot", "stupid", "hate", "damn", "hell", "shut up", "liar", "disgusting")
URL = re.compile(r"https?://\S+")
PROFANITY_BLOCK_AT = 0.9999
PROFANITY_FLAG_AT = 0.75


@functools.cache
def _predict_prob() -> Callable[[Sequence[str]], Any]:
    # importing it loads scikit-learn and unpickles the model: ~2 s, once per process,
    # on the first post rather than at every import of posts
    from profanity_check import predict_prob

    predict: Callable[[Sequence[str]], Any] = predict_prob
    return predict


def profanity(text: str) -> float:
    """The probability that ``text`` is profane, by ``alt-profanity-check`` (~5 ms)."""
    return float(_predict_prob()([text])[0])


@dataclass
class Moderator:
    """Blocklist + rules + the profanity classifier + pluggable classifiers; the strictest
    verdict wins (blocked before flagged, rules before classifiers)."""

    blocklist: tuple[str, ...] = BLOCKLIST
    flag_words: tuple[str, ...] = FLAG_WORDS
    score_profanity: Callable[[str], float] = profanity
    profanity_block_at: float = PROFANITY_BLOCK_AT
    profanity_flag_at: float = PROFANITY_FLAG_AT
    classifiers: list[Callable[[str], Verdict | None]] = field(default_factory=list)

    def warm(self) -> None:
        """Load the classifier's model now (a stage's start) rather than on the first text,
        where its ~2 s would block the event loop under other requests' deadlines."""
        self.score_profanity("")

    def classify_profanity(self, text: str) -> Verdict | None:
        """The profanity classifier's verdict: blocked or flagged by threshold, else None."""
        p = self.score_profanity(text)
        why = f"classifier: profanity p={p:.4f}"
        if p >= self.profanity_block_at:
            return "blocked", why
        if p >= self.profanity_flag_at:
            return "flagged", why
        return None

    def review(self, text: str) -> Verdict:
        """Verdict for one post's text."""
        low = text.lower()
        for word in self.blocklist:
            if re.search(rf"\b{re.escape(word)}\b", low):
                return "blocked", f"blocklist: {word!r}"
        classified = [
            verdict
            for classify in (self.classify_profanity, *self.classifiers)
            if (verdict := classify(text)) is not None
        ]
        for verdict in classified:
            if verdict[0] == "blocked":
                return verdict
        if URL.search(text):
            return "flagged", "contains a link"
        letters = [c for c in text if c.isalpha()]
        if len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
            return "flagged", "shouting (mostly capitals)"
        for word in self.flag_words:
            if re.search(rf"\b{re.escape(word)}\b", low):
                return "flagged", f"rude word: {word!r}"
        return classified[0] if classified else ("published", None)


def moderate_decision(moderator: Moderator, made: DecisionMade) -> DecisionMade:
    """``made`` with its model-written reason moderated: a blocked reason is withheld
    (``reason`` None and dropped from the answer), a flagged one kept; either verdict is
    recorded in ``reason_moderation`` ("blocked: <why>"). A clean reason, or none: as is."""
    if not made.reason:
        return made
    status, why = moderator.review(made.reason)
    if status == "published":
        return made
    update: dict[str, Any] = {"reason_moderation": f"{status}: {why}"}
    if status == "blocked":
        update["reason"] = None
        if made.answer is not None and "reason" in made.answer:
            update["answer"] = {k: v for k, v in made.answer.items() if k != "reason"}
    return made.model_copy(update=update)
