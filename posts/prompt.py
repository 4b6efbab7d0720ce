"""Prompts from the catalog's templates, the author's profile and memories."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import Template
from sim.world import WorldIndex
from topics.models import RenderRequested

MAX_PROMPT_CHARS = 1800  # ~450 tokens for SmolLM2's tokenizer on English text


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


def values_for(index: WorldIndex, req: RenderRequested, memories: list[str]) -> dict[str, str]:
    """Placeholder values for a request's template."""
    author = index.npc(req.author)
    ev = req.event
    return _Defaults(
        author_name=author.display_name,
        author_handle=author.handle,
        author_voice=author.voice,
        author_occupation=author.occupation,
        author_interests=", ".join(author.interests[:4]),
        event_summary=ev.summary,
        place_name=index.place_name(ev.place),
        actor_name=index.npc(ev.actor).display_name,
        target_name=index.npc(ev.target).display_name if ev.target else "",
        memories="; ".join(memories) if memories else "nothing in particular",
        channel=req.channel,
        day=str(ev.sim_minute // 1440 + 1),
        time=f"{(ev.sim_minute // 60) % 24:02d}:{ev.sim_minute % 60:02d}",
    )


def build_prompt(index: WorldIndex, req: RenderRequested, template: Template) -> Prompt:
    """Fill the template; memories (the actor's most salient) are trimmed to fit the budget."""
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
        max_tokens=template.max_tokens,
        template=template.id,
    )
