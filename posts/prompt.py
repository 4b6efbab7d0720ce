"""Prompts from the catalog's templates, the author's profile and memories.

A 135M-parameter model copes best with short, concrete prompts written from the
author's point of view, so the event summary is re-voiced for the author ("You saved
Otto Brandt at Market Square" rather than "Ines Alvarez saved Otto Brandt at Market
Square at Market Square") and the place is named once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from catalog.models import Template
from sim.calendar import MINUTES_PER_HOUR, day_of, hour_of
from sim.world import WorldIndex
from topics.models import RenderRequested

MAX_PROMPT_CHARS = 1800  # ~450 tokens for SmolLM2's tokenizer on English text
NO_MEMORIES = "nothing in particular"


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for the LLM, plus what built it."""

    system: str
    user: str
    max_tokens: int
    template: str

    @property
    def text(self) -> str:
        """System and user parts as one text (what the model sees besides the chat markup)."""
        return f"{self.system}\n\n{self.user}"


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:  # unknown placeholders stay visible, never crash
        return "{" + key + "}"


def _names(display_name: str) -> list[str]:
    """Ways a summary may name an NPC: full name, then first name ("Mayor Hart" stays)."""
    parts = display_name.split()
    return [display_name, parts[0]] if len(parts) > 1 else [display_name]


def voiced_summary(index: WorldIndex, req: RenderRequested, first_person: bool = True) -> str:
    """The event summary (from the author's point of view), with its place named once."""
    ev = req.event
    text = ev.summary.strip().rstrip(".")
    author = index.npc(req.author)
    for name in _names(author.display_name) if first_person else []:
        pattern = re.compile(rf"^{re.escape(name)}\b")
        if pattern.search(text):  # the author did it: "You saved ..."
            text = pattern.sub("You", text, count=1)
            break
    for name in _names(author.display_name) if first_person else []:
        if re.search(rf"\b{re.escape(name)}\b", text):  # the author is the object: "... you"
            text = re.sub(rf"\b{re.escape(name)}\b", "you", text, count=1)
            break
    place = index.place_name(ev.place)
    if ev.place and place.lower() not in text.lower():
        text = f"{text} at {place}"
    return text + "."


def values_for(index: WorldIndex, req: RenderRequested, memories: list[str]) -> dict[str, str]:
    """Placeholder values for a request's template."""
    author = index.npc(req.author)
    ev = req.event
    return _Defaults(
        author_name=author.display_name,
        author_handle=author.handle,
        author_voice=author.voice,
        author_occupation=author.occupation.lower()
        if author.occupation[:1].isupper() and not author.occupation.isupper()
        else author.occupation,
        author_interests=", ".join(author.interests[:4]),
        event_summary=voiced_summary(index, req, first_person=req.channel != "news"),
        place_name=index.place_name(ev.place),
        actor_name=index.npc(ev.actor).display_name,
        target_name=index.npc(ev.target).display_name if ev.target else "",
        memories="; ".join(memories) if memories else NO_MEMORIES,
        channel=req.channel,
        day=str(day_of(ev.sim_minute)),
        time=f"{hour_of(ev.sim_minute):02d}:{ev.sim_minute % MINUTES_PER_HOUR:02d}",
    )


def build_prompt(
    index: WorldIndex, req: RenderRequested, template: Template, max_tokens: int | None = None
) -> Prompt:
    """Fill the template; memories (the actor's most salient) are trimmed to fit the budget.

    ``max_tokens`` (``WORLDFEED_LLM_MAX_TOKENS``) caps the template's own ``max_tokens``.
    """
    memories = (
        req.event.actor_memories[: template.max_memories] if req.author == req.event.actor else []
    )
    while True:
        values = values_for(index, req, memories)
        system = template.system.format_map(values)
        user = template.prompt.format_map(values)
        if len(system) + len(user) <= MAX_PROMPT_CHARS or not memories:
            break
        memories = memories[:-1]
    return Prompt(
        system=system,
        user=user[: MAX_PROMPT_CHARS - len(system)],
        max_tokens=min(template.max_tokens, max_tokens or template.max_tokens),
        template=template.id,
    )
