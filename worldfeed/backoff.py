"""Retry delays: the one backoff every retry loop uses (LLM client, sink, consumers).

Exponential with "equal jitter": the nominal delay doubles from ``first_s`` up to
``cap_s``; with a jitter source the delay is uniform in ``[nominal / 2, nominal]``, so
clients that failed together do not retry together.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

_JITTER = random.Random()  # noqa: S311 - retry jitter, not security, not simulation state


def backoff_delay(
    attempt: int, first_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Seconds to sleep before retry number ``attempt`` (0 = the first retry), jittered."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    nominal = min(cap_s, first_s * 2.0**attempt)
    return nominal / 2 + (rng or _JITTER).random() * nominal / 2


def backoff(first_s: float, cap_s: float) -> Iterator[float]:
    """Retry delays without jitter, doubling from ``first_s`` up to ``cap_s``, without end."""
    delay = first_s
    while True:
        yield delay
        delay = min(cap_s, delay * 2)
