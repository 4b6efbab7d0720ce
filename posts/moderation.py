"""Moderation: every post is published, flagged or blocked, with a reason.

Rules are a blocklist and a few heuristics; ``Moderator.classifiers`` is where a
model-based classifier plugs in (a callable returning a verdict or None).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

Verdict = tuple[str, str | None]  # (status, reason)

BLOCKLIST = ("kill yourself", "kys", "nazi", "retard", "faggot", "nigger", "rape")
FLAG_WORDS = ("idiot", "stupid", "hate", "damn", "hell", "shut up", "liar", "disgusting")
URL = re.compile(r"https?://\S+")


@dataclass
class Moderator:
    """Blocklist + rules + pluggable classifiers; the strictest verdict wins."""

    blocklist: tuple[str, ...] = BLOCKLIST
    flag_words: tuple[str, ...] = FLAG_WORDS
    classifiers: list[Callable[[str], Verdict | None]] = field(default_factory=list)

    def review(self, text: str) -> Verdict:
        """Verdict for one post's text."""
        low = text.lower()
        for word in self.blocklist:
            if re.search(rf"\b{re.escape(word)}\b", low):
                return "blocked", f"blocklist: {word!r}"
        for classify in self.classifiers:
            verdict = classify(text)
            if verdict is not None and verdict[0] == "blocked":
                return verdict
        if URL.search(text):
            return "flagged", "contains a link"
        letters = [c for c in text if c.isalpha()]
        if len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
            return "flagged", "shouting (mostly capitals)"
        for word in self.flag_words:
            if re.search(rf"\b{re.escape(word)}\b", low):
                return "flagged", f"rude word: {word!r}"
        for classify in self.classifiers:
            verdict = classify(text)
            if verdict is not None:
                return verdict
        return "published", None
