"""Moderation: published, flagged or blocked, with a reason."""

from __future__ import annotations

from posts.moderation import Moderator


def test_moderation_verdicts() -> None:
    m = Moderator()
    assert m.review("What a lovely day") == ("published", None)
    assert m.review("you idiot")[0] == "flagged"
    assert m.review("kys")[0] == "blocked"
    m.classifiers.append(lambda text: ("blocked", "classifier") if "cake" in text else None)
    assert m.review("cake") == ("blocked", "classifier")
