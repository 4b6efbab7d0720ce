"""From raw model text to a post's fields, and what makes a post not worth publishing.

A 135M-parameter model writes usable free text but poor JSON, so the model writes
text and we build the JSON around it. When it does answer in JSON (or fenced JSON,
or JSON with prose around it, trailing commas, a truncated object),
:func:`llm.parse.repair_json` recovers the fields. Small models also echo the prompt
("Today at 10:00: ..."), open with letter salutations ("Dear Sarah,") and stop
mid-sentence at ``max_tokens``; those parts are cut. The LLM loop validates the result
against the channel's JSON Schema, and :func:`quality_problems` names what makes a
schema-valid post still not worth publishing (too short, an echo of the prompt), so
the loop can retry.
"""

from __future__ import annotations

import re
from typing import Any

from llm.parse import Parsed, repair_json

_FENCE = re.compile(r"```[a-zA-Z]*\n?|```")
_LEAD = re.compile(
    r"^\s*(sure[,!.]?|here(?:'s| is)[^:\n]*:|okay[,!.]?|post:|message:|tweet:|answer:"
    r"|article:|story:|text:)\s*",
    re.IGNORECASE,
)
_HEADLINE = re.compile(r"^\s*(#+\s*|headline\s*:\s*|title\s*:\s*|\*\*)", re.IGNORECASE)
# Lines that are the prompt's scaffolding coming back, or a letter's salutation.
_ECHO_LINE = re.compile(
    r"^\s*(background|source|the story|story|today at|just now|on your mind[^:]*|your style"
    r"|what just happened|you remember|note|word count|characters?)\s*[:(]",
    re.IGNORECASE,
)
_SALUTATION = re.compile(r"^\s*(dear|hi|hello|hey)\b[^.!?\n]{0,40},\s*$", re.IGNORECASE)
_SIGN_OFF = re.compile(
    r"^\s*(best|regards|sincerely|cheers|love|warmly)\b[^.!?\n]{0,40},?\s*$", re.IGNORECASE
)
# titles whose period ends no sentence: "Dr. Nwosu revived ..." is one
TITLE_ABBREVIATIONS = ("Dr", "Mr", "Ms", "St", "Mrs")
_NOT_A_TITLE = "".join(rf"(?<!\b{t})" for t in TITLE_ABBREVIATIONS)
_SENTENCE_END = re.compile(_NOT_A_TITLE + r"[.!?…][\"')\]]*(?=\s|$)")
_WORD = re.compile(r"[a-z0-9']+")
# Letter-writing filler a small chat model opens with; never part of a social post.
_FILLER = re.compile(
    r"^(i hope (this|my) (message|email|letter) finds you well|i hope you(?:'re| are) (doing )?well"
    r"|i just wanted to (share|let you know)[^.!?]*)[.!?]?$",
    re.IGNORECASE,
)
MAX_SENTENCES = {"chat": 2, "feed": 3}
MAX_CHARS = {"feed": 280, "chat": 240}
MIN_BODY_CHARS = 15
MAX_TITLE_WORDS = 16


def _strip(text: str) -> str:
    text = _FENCE.sub("", text).strip()
    for _ in range(2):
        text = _LEAD.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _cut(text: str, limit: int) -> str:
    """Shorten to ``limit`` chars at a sentence or word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    for mark in (". ", "! ", "? "):
        pos = cut.rfind(mark)
        if pos > limit // 2:
            return cut[: pos + 1]
    pos = cut.rfind(" ")
    return cut[:pos] if pos > limit // 2 else cut


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _is_echo(line: str, prompt_lines: list[set[str]]) -> bool:
    """A line that mostly repeats one line of the prompt (4+ words, >= 70% shared)."""
    words = _words(line)
    if len(words) < 4:
        return False
    return any(sum(w in pl for w in words) / len(words) >= 0.7 for pl in prompt_lines)


def _clean_lines(
    text: str, prompt: str | None, keep: str = "", headline: bool = False
) -> tuple[list[str], bool]:
    """Drop echoed scaffolding, salutations and sign-offs; True when something was dropped.

    A line that starts with ``keep`` (the answer's given beginning) is never an echo, nor
    is the first line when it is a ``headline``: a headline tells the event, so it shares
    most words with the prompt's line of it ("Walter Pike Collapses At Market Square"),
    and the headline rules judge it (the summary copied is one of them). Dropped as an
    echo, it took the lead paragraph up as the title and left the article one paragraph."""
    prompt_lines = [set(_words(ln)) for ln in (prompt or "").splitlines() if ln.strip()]
    kept, dropped = [], False
    for line in text.splitlines():
        if not line.strip():
            kept.append("")
            continue
        if keep and line.strip().startswith(keep.strip()[:40]):
            kept.append(line.strip())
            continue
        first = headline and not any(kept)
        if (
            _ECHO_LINE.match(line)
            or _SALUTATION.match(line)
            or _SIGN_OFF.match(line)
            or (not first and _is_echo(line, prompt_lines))
        ):
            dropped = True
            continue
        kept.append(line.strip())
    return kept, dropped


def _sentences(text: str) -> list[str]:
    """Split into sentences; the last piece may be unfinished."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start : m.end()].strip())
        start = m.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return [s for s in out if s]


def _finish(text: str, max_sentences: int | None) -> tuple[str, bool]:
    """Drop an unfinished last sentence (cut off by max_tokens) and keep at most N sentences."""
    parts = [p for p in _sentences(text) if not _FILLER.match(p)]
    changed = len(parts) != len(_sentences(text))
    if len(parts) > 1 and not _SENTENCE_END.search(parts[-1][-3:] + " "):
        parts, changed = parts[:-1], True  # cut off by max_tokens mid-sentence
    if max_sentences and len(parts) > max_sentences:
        parts = parts[:max_sentences]
    return " ".join(parts), changed


def _finish_paragraphs(text: str) -> tuple[str, bool]:
    """:func:`_finish` over the last paragraph only (the others ended before it)."""
    paras = text.split("\n\n")
    last, cut = _finish(paras[-1], None)
    paras = [*paras[:-1], last] if last else paras[:-1]
    return "\n\n".join(paras), cut


def headline_from(summary: str, limit: int = 120) -> str:
    """A deterministic headline from an event summary (used when the model's is unusable)."""
    text = summary.strip().rstrip(".")
    return _cut(text[:1].upper() + text[1:], limit)


def parse_output(
    channel: str,
    raw: str,
    schema: dict[str, Any],
    prompt: str | None = None,
    fallback_title: str | None = None,
    keep: str = "",
) -> Parsed:
    """Turn model text into the channel's fields (title/body), repairing what can be repaired.

    ``prompt`` lets echoed prompt lines be recognised and cut (except a line starting
    with ``keep``, the answer's given beginning); ``fallback_title`` is the news
    headline used when the model's first line is not a usable headline (None: the title
    stays empty, and the checks reject it). A news body keeps its paragraphs.
    """
    props = schema.get("properties", {})
    body_max = min(int(props.get("body", {}).get("maxLength", 500)), MAX_CHARS.get(channel, 10**6))
    title_max = int(props.get("title", {}).get("maxLength", 120))
    obj = repair_json(raw)
    if obj is not None:
        fields = {k: str(v).strip() for k, v in obj.items() if k in props and v is not None}
        if "body" not in fields:
            for alt in ("text", "message", "post", "content", "article"):
                if alt in obj:
                    fields["body"] = str(obj[alt]).strip()
                    break
        if fields.get("body"):
            fields["body"] = _cut(_strip(fields["body"]), body_max)
            if "title" in props:
                fields["title"] = _cut(_strip(fields.get("title", "")), title_max) or (
                    fallback_title or _cut(fields["body"], title_max)
                )
            return Parsed(fields, repaired=True)
    lines, repaired = _clean_lines(_strip(raw), prompt, keep, headline="title" in props)
    if "title" in props:
        while lines and not lines[0]:
            lines = lines[1:]
        if not lines:
            return Parsed({"title": "", "body": ""}, repaired=repaired)
        title = _HEADLINE.sub("", lines[0]).strip(" *\"'#")
        body_lines = lines[1:]
        if not title or len(title.split()) > MAX_TITLE_WORDS or not any(body_lines):
            # no headline line: the whole text is the body
            body_lines = lines
            title, repaired = fallback_title or "", True
        paragraphs: list[list[str]] = [[]]
        for ln in body_lines:
            if ln:
                paragraphs[-1].append(_LEAD.sub("", ln))
            elif paragraphs[-1]:
                paragraphs.append([])
        text = "\n\n".join(" ".join(p) for p in paragraphs if p).strip()
        body, cut = _finish_paragraphs(text)
        return Parsed(
            {"title": _cut(title, title_max), "body": _cut(body, body_max)},
            repaired=repaired or cut,
        )
    body, cut = _finish(" ".join(" ".join(lines).split()), MAX_SENTENCES.get(channel))
    return Parsed({"body": _cut(body, body_max)}, repaired=repaired or cut)


def quality_problems(fields: dict[str, Any], prompt: str | None = None) -> list[str]:
    """Why a schema-valid post is still not worth publishing (empty list: it is)."""
    problems = []
    body = str(fields.get("body", ""))
    if len(body) < MIN_BODY_CHARS:
        problems.append(f"/body: too short ({len(body)} chars)")
    elif prompt and _is_echo(body, [set(_words(prompt))]):
        problems.append("/body: repeats the prompt")
    title = fields.get("title")
    if title is not None and len(str(title).split()) > MAX_TITLE_WORDS:
        problems.append(f"/title: longer than {MAX_TITLE_WORDS} words")
    return problems
