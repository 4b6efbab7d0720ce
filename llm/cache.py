"""Cache keys and sampling: what makes two LLM calls the same call.

The sampling seed is derived from the prompt's hash and the attempt number, never from
who asks. Identical prompts then get identical sampling parameters, so "same prompt +
same sampling -> same answer" holds for the cache and for the model alike, and a
redelivered or repeated request (a replayed or branched run) is answered from the
cache. The cache key is sha256(model, prompt, sampling JSON).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from worldfeed.ids import stable_hash64

ATTEMPTS: tuple[dict[str, float], ...] = (  # the first try and each retry: other sampling
    {"temperature": 0.3, "top_p": 0.9, "repetition_penalty": 1.15},
    {"temperature": 0.6, "top_p": 0.95, "repetition_penalty": 1.2},
    {"temperature": 0.1, "top_p": 0.8, "repetition_penalty": 1.25},
)


class LLMPrompt(Protocol):
    """What the LLM loop needs of a prompt: its full text and its output budget."""

    @property
    def text(self) -> str:
        """The text the model sees (besides the chat markup)."""
        ...

    @property
    def max_tokens(self) -> int:
        """Most tokens the answer may have."""
        ...


def prompt_hash(prompt: LLMPrompt) -> str:
    """sha256 of the prompt text (16 hex digits), as recorded in the cost ledger."""
    return hashlib.sha256(prompt.text.encode("utf-8")).hexdigest()[:16]


def sampling_for(prompt: LLMPrompt, attempt: int) -> dict[str, Any]:
    """Sampling of an attempt; the seed depends on the prompt and attempt only (cacheable).

    A prompt may also carry ``stop`` (its chat template's end-of-turn markers),
    ``grammar`` (GBNF; sent as vLLM's ``guided_decoding``) and ``temperature`` (added
    to the attempt's temperature: the author's style).
    """
    out: dict[str, Any] = dict(
        ATTEMPTS[attempt - 1],
        max_tokens=prompt.max_tokens,
        seed=stable_hash64(prompt_hash(prompt), attempt) % (2**31),
    )
    shift = float(getattr(prompt, "temperature", 0.0) or 0.0)
    if shift:
        out["temperature"] = round(max(0.0, out["temperature"] + shift), 3)
    stop = getattr(prompt, "stop", ())
    if stop:
        out["stop"] = list(stop)
    grammar = getattr(prompt, "grammar", None)
    if grammar:
        out["guided_decoding"] = {"grammar": grammar}
    return out


def cache_key(model: str, prompt: LLMPrompt, sampling: dict[str, Any]) -> bytes:
    """Key of the completion cache: the model, the prompt and every sampling parameter."""
    blob = json.dumps([model, prompt.text, sampling], sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest().encode()
