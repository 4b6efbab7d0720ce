"""What every LLM client answers and raises, so callers need no transport stack.

The loop in :mod:`llm.complete` works against the :class:`LLM` protocol; the Triton
client in :mod:`llm.client` is one implementation, test doubles are others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class LLMFailure(Exception):
    """Base of every failure of :meth:`LLM.generate`."""


class LLMUnavailable(LLMFailure):
    """The server could not be reached or did not answer in time, after all retries."""


class LLMError(LLMFailure):
    """The server answered, but the model returned an error for this request."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One generation result.

    Attributes:
        text: The generated text (the prompt is never included).
        tokens_in: Prompt tokens as counted by the model (chat template included).
        tokens_out: Generated tokens.
        latency_ms: Wall time of the successful attempt, in milliseconds.
        model: Name of the model that answered.
    """

    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    model: str


class LLM(Protocol):
    """A text generator: ``model`` names it, ``generate`` answers one prompt.

    ``generate`` raises :class:`LLMUnavailable` when the server is out of reach (the
    caller may wait and ask again) and :class:`LLMError` when the model refused this
    request (asking again with the same input will not help).
    """

    @property
    def model(self) -> str:
        """Name of the model, part of every cache key."""
        ...

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        """Generate a completion of ``prompt`` with these sampling parameters."""
        ...
