"""Chat templates: a system message, a user message and the answer's start, as model text.

Triton's vLLM backend takes ``text_input`` as the raw prompt, and so does the local
llama.cpp model (``triton_models/llm``): the client renders the model's chat template.
Rendering here, not in the server, lets a prompt end inside the assistant's turn (a
*prefill*: the answer's first words, which the model continues) and makes the cache key
the exact text the model saw.

``WORLDFEED_LLM_CHAT_TEMPLATE`` names the model family:

* ``chatml``: SmolLM2, Qwen2/2.5 and other ChatML instruct models (the default);
* ``llama3``: Llama 3.x instruct models;
* ``plain``: no markup (a base model, or a server that applies its own template).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    """How one model family marks up a conversation."""

    name: str
    system: str  # "{content}" placeholders
    user: str
    assistant: str  # the assistant turn's opening (the answer follows)
    stop: tuple[str, ...]  # end-of-turn markers: generation stops there
    end: str  # closes an assistant turn (after an example answer)

    def render(
        self,
        system: str,
        user: str,
        prefill: str = "",
        shots: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """The prompt text: the system turn, example exchanges (``shots``: user, answer),
        the user turn, then the assistant turn's start (``prefill``: the answer's start)."""
        out = self.system.format(content=system) if system else ""
        for question, answer in shots:
            out += self.user.format(content=question) + self.assistant + answer + self.end
        return out + self.user.format(content=user) + self.assistant + prefill


TEMPLATES: dict[str, ChatTemplate] = {
    "chatml": ChatTemplate(
        "chatml",
        system="<|im_start|>system\n{content}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n",
        assistant="<|im_start|>assistant\n",
        stop=("<|im_end|>", "<|im_start|>"),
        end="<|im_end|>\n",
    ),
    "llama3": ChatTemplate(
        "llama3",
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant="<|start_header_id|>assistant<|end_header_id|>\n\n",
        stop=("<|eot_id|>",),
        end="<|eot_id|>",
    ),
    "plain": ChatTemplate(
        "plain", system="{content}\n\n", user="{content}\n\n", assistant="", stop=(), end="\n\n"
    ),
}
DEFAULT = TEMPLATES["chatml"]


def template_named(name: str) -> ChatTemplate:
    """The chat template of a model family, or a ValueError naming the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown chat template {name!r}; known: {', '.join(sorted(TEMPLATES))}"
        ) from None
