"""Author attribution: how recognisable each author's posts are (issue 14, "voice").

Each post is held out in turn and given to the author whose other posts it is most like:
leave-one-out nearest centroid, by cosine, on TF-IDF of character 2- to 4-grams within
words (case kept: capitals, punctuation and emoji are style). Only authors with at least
two posts take part (a held-out post needs a centroid of its author's others). The
accuracy is read against two baselines: chance (one author in ``n_authors``) and the
majority baseline (always guessing the author with the most posts).

The TF-IDF weights are fitted on all the posts, the held-out one included: unsupervised,
no label leaks. Content counts as well as style: an author who always writes about the
same people and places is recognisable by them. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

MIN_POSTS = 2
NGRAMS = (2, 4)


@dataclass(frozen=True)
class Attribution:
    """Leave-one-out attribution over the authors with at least two posts."""

    accuracy: float | None  # None: fewer than two such authors, nothing to tell apart
    chance: float | None  # 1 / n_authors
    majority: float | None  # the largest author's share of the posts
    n_posts: int
    n_authors: int
    per_author: dict[str, float]  # each author's share of posts attributed to them


def attribute(posts: Sequence[tuple[str, str]], min_posts: int = MIN_POSTS) -> Attribution:
    """Leave-one-out nearest-centroid attribution of ``(author, text)`` posts."""
    counts = Counter(author for author, _ in posts)
    kept = [(a, t) for a, t in posts if counts[a] >= max(min_posts, MIN_POSTS)]
    authors = sorted({a for a, _ in kept})
    n = len(kept)
    if len(authors) < 2:
        return Attribution(None, None, None, n, len(authors), {})
    predicted = _leave_one_out(authors, kept)
    truth = [authors.index(a) for a, _ in kept]
    hits = [p == t for p, t in zip(predicted, truth, strict=True)]
    per_author = {
        a: sum(h for h, t in zip(hits, truth, strict=True) if t == i) / counts[a]
        for i, a in enumerate(authors)
    }
    return Attribution(
        accuracy=sum(hits) / n,
        chance=1 / len(authors),
        majority=max(counts[a] for a in authors) / n,
        n_posts=n,
        n_authors=len(authors),
        per_author=per_author,
    )


def _leave_one_out(authors: list[str], posts: list[tuple[str, str]]) -> list[int]:
    """Each post's predicted author (an index into ``authors``): the highest cosine between
    the post and each author's centroid, its own author's without the post itself."""
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, lowercase=False)
    x = vectorizer.fit_transform([t for _, t in posts])  # rows l2-normalised (or all zero)
    member = np.zeros((len(posts), len(authors)))
    for i, (a, _) in enumerate(posts):
        member[i, authors.index(a)] = 1.0
    sums = (x.T @ member).T  # authors x features: the sum of each author's rows
    dots = np.asarray(x @ sums.T)  # posts x authors: post . author sum
    sq = np.einsum("ij,ij->i", sums, sums)  # |author sum|^2
    self_sq = np.asarray(x.multiply(x).sum(axis=1)).ravel()  # |post|^2: 1, or 0 if empty
    own = member.astype(bool)
    # the post's own author without it: sum - post, so dot - |post|^2 and
    # |sum - post|^2 = |sum|^2 - 2 post.sum + |post|^2
    dots[own] -= self_sq
    norms = np.tile(sq, (len(posts), 1))
    norms[own] = norms[own] - 2 * (dots[own] + self_sq) + self_sq
    cosine = dots / np.sqrt(np.maximum(norms, 1e-12))  # the centroid's scale cancels
    return [int(i) for i in np.argmax(cosine, axis=1)]  # ties: the first author by name
