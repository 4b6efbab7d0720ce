"""Model output -> schema-valid post: cleaning, JSON repair, quality checks."""

from __future__ import annotations

import pytest

from llm.parse import schema_errors
from posts.output import parse_output, quality_problems

FEED = {
    "type": "object",
    "required": ["body"],
    "additionalProperties": False,
    "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 500}},
}
NEWS = {
    "type": "object",
    "required": ["title", "body"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 120},
        "body": {"type": "string", "minLength": 1, "maxLength": 1500},
    },
}


@pytest.mark.parametrize(
    "raw",
    [
        'Sure! Here\'s a post: "Lovely morning at the cafe!"',
        '```json\n{"body": "Lovely morning at the cafe!",}\n```',
        'Some prose first {"body": "Lovely morning at the cafe!"',
        "{'text': 'Lovely morning at the cafe!'}",
    ],
)
def test_feed_outputs_are_repaired_to_valid_posts(raw: str) -> None:
    parsed = parse_output("feed", raw, FEED)
    assert schema_errors(parsed.fields, FEED) == []
    assert parsed.fields["body"].startswith("Lovely morning")


def test_news_gets_headline_and_body() -> None:
    parsed = parse_output("news", "# Park Sold In Secret\nThe council met late on Tuesday.", NEWS)
    assert parsed.fields == {
        "title": "Park Sold In Secret",
        "body": "The council met late on Tuesday.",
    }
    assert schema_errors(parsed.fields, NEWS) == []


def test_a_headline_telling_the_event_is_no_prompt_echo() -> None:
    """The headline shares most words with the prompt's line of the event: it stays the
    title (the headline rules judge it), and the lead stays the body's first paragraph."""
    prompt = "Today at 12:00, Market Square: Walter Pike collapsed at Market Square\nWrite it."
    lead = "The fisherman fell in the midday heat by the cheese stall."
    rest = "Dr. Nwosu helped him until the ambulance came."
    raw = f"Walter Pike Collapses At Market Square\n\n{lead}\n\n{rest}"
    parsed = parse_output("news", raw, NEWS, prompt=prompt)
    assert parsed.fields == {
        "title": "Walter Pike Collapses At Market Square",
        "body": f"{lead}\n\n{rest}",
    }
    # below the headline, a line that repeats the prompt is still cut
    echoed = parse_output(
        "news",
        raw.replace(lead, lead + "\nWalter Pike collapsed at Market Square"),
        NEWS,
        prompt=prompt,
    )
    assert echoed.fields["body"] == f"{lead}\n\n{rest}" and echoed.repaired


def test_empty_output_fails_schema_with_pointer() -> None:
    parsed = parse_output("feed", "   ", FEED)
    errors = schema_errors(parsed.fields, FEED)
    assert errors and errors[0].startswith("/body")


def test_long_output_is_cut_at_a_boundary() -> None:
    parsed = parse_output("feed", "Word. " * 200, FEED)
    assert len(parsed.fields["body"]) <= 500 and parsed.fields["body"].endswith(".")


def test_echo_and_salutations_are_cut() -> None:
    prompt = (
        "Write your social media post about what happened:\nYou argued with the baker at the cafe."
    )
    raw = (
        "Dear Sarah,\nYou argued with the baker at the cafe.\n"
        "I hope this message finds you well. Bread war! More soon"
    )
    parsed = parse_output("feed", raw, FEED, prompt)
    assert parsed.fields["body"] == "Bread war!" and parsed.repaired
    assert quality_problems({"body": "ok"}) and not quality_problems(
        {"body": "A fine post, really."}
    )


def test_a_title_before_a_name_does_not_end_a_sentence() -> None:
    """A chat message keeps two sentences: "Dr. Nwosu revived ..." is one (its "Dr." cut
    it in two, and the model's own sentence after the given lead was lost)."""
    lead = "Dr. Nwosu revived Walter Pike at Market Square until the ambulance came."
    raw = f"{lead} \nI'm so relieved he is breathing again. Long day."
    got = parse_output("chat", raw, FEED, keep=lead).fields["body"]
    assert got == f"{lead} I'm so relieved he is breathing again."
