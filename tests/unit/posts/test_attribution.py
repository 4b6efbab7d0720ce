"""Author attribution: distinct styles are recognised well above chance, shuffled authors
are not, each post is held out of its own author's centroid, and the baselines."""

from __future__ import annotations

import random

import pytest

from posts.attribution import attribute

TOPICS = [
    "the bakery reopened on Main Street",
    "the bridge is closed again",
    "the council met tonight about the budget",
    "it rained all day at the market",
    "the harvest festival starts on Friday",
    "a new cafe opened by the river",
    "the library needs volunteers",
    "the bus was late this morning",
    "Victor and Bea argued at the town hall",
    "the school play sold out",
]
STYLES = {
    "shouty": lambda t: f"WOW!!! {t.upper()}!!! CAN'T BELIEVE IT!!!",
    "mumbly": lambda t: f"lol so {t.lower()} i guess... whatever lol",
    "formal": lambda t: f"Dear neighbours, I write to report that {t}. Kind regards.",
    "sunny": lambda t: f"Sunshine update ✨ {t} 🌸🌸 love this town xx",
}


def styled_posts(per_author: int = 6, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (author, style(rng.choice(TOPICS)))
        for author, style in STYLES.items()
        for _ in range(per_author)
    ]


def shuffled(posts: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    authors = [a for a, _ in posts]
    random.Random(seed).shuffle(authors)
    return [(a, t) for a, (_, t) in zip(authors, posts, strict=True)]


def test_distinct_styles_are_recognised_well_above_chance() -> None:
    got = attribute(styled_posts())
    assert (got.n_posts, got.n_authors) == (24, 4)
    assert got.chance == 0.25 and got.majority == 0.25
    assert got.accuracy is not None and got.accuracy >= 0.95
    assert min(got.per_author.values()) >= 0.8


def test_shuffled_authors_score_near_chance() -> None:
    posts = styled_posts(per_author=10)
    assert attribute(posts).accuracy == 1.0
    scores = [attribute(shuffled(posts, seed)).accuracy or 0.0 for seed in range(10)]
    # chance is 0.25; a shuffle keeps some of a style's posts together, hence the spread
    assert 0.15 <= sum(scores) / len(scores) <= 0.35 and max(scores) <= 0.5


def test_each_post_is_held_out_of_its_authors_centroid() -> None:
    # each of a's posts is copied by b: with itself in a's centroid it would be a's (or a
    # tie); held out, a's centroid is a's other post, unlike it, and b's holds its copy
    posts = [
        ("a", "apple pie apple pie"),
        ("a", "zebra run zebra run"),
        ("b", "apple pie apple pie"),
        ("b", "zebra run zebra run"),
        ("b", "quartz fox quartz fox"),
    ]
    got = attribute(posts)
    assert got.per_author["a"] == 0.0
    assert got.accuracy is not None and got.accuracy <= 0.6


def test_only_authors_with_two_posts_count() -> None:
    posts = [*styled_posts(per_author=3), ("loner", "just one post from me")]
    got = attribute(posts)
    assert (got.n_posts, got.n_authors) == (12, 4) and "loner" not in got.per_author
    assert attribute(posts, min_posts=4).n_authors == 0


def test_majority_baseline_follows_the_largest_author() -> None:
    posts = [p for p in styled_posts() if p[0] != "formal"] + [
        ("formal", STYLES["formal"](t)) for t in TOPICS
    ]
    got = attribute(posts)
    assert got.n_posts == 28 and got.chance == pytest.approx(1 / 4)
    assert got.majority == pytest.approx(10 / 28)


def test_fewer_than_two_authors_has_no_accuracy() -> None:
    got = attribute([("a", "one"), ("a", "two"), ("b", "only")])
    assert got.accuracy is None and got.chance is None and (got.n_posts, got.n_authors) == (2, 1)
    assert attribute([]).n_posts == 0


def test_empty_texts_do_not_break_it() -> None:
    got = attribute([("a", ""), ("a", "hello there"), ("b", ""), ("b", "HELLO THERE")])
    assert got.accuracy is not None and 0.0 <= got.accuracy <= 1.0


def brute_force_accuracy(posts: list[tuple[str, str]]) -> float:
    """Leave-one-out nearest centroid the slow way: refit each centroid per post."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False).fit_transform(
        [t for _, t in posts]
    )
    x = x.toarray()
    authors = sorted({a for a, _ in posts})
    hits = 0
    for i, (author, _) in enumerate(posts):
        best, guess = -2.0, ""
        for a in authors:
            rows = [j for j, (b, _) in enumerate(posts) if b == a and j != i]
            c = x[rows].mean(axis=0)
            cos = float(x[i] @ c / (np.linalg.norm(c) or 1.0))
            if cos > best + 1e-9:
                best, guess = cos, a
        hits += guess == author
    return hits / len(posts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_slow_leave_one_out(seed: int) -> None:
    posts = shuffled(styled_posts(per_author=5), seed)
    assert attribute(posts).accuracy == pytest.approx(brute_force_accuracy(posts))
