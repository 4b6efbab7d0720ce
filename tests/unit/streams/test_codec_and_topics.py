"""Codec errors name what was wrong; topic schemas in the repo match the models."""

from __future__ import annotations

import json

import pytest

from streams.codec import DecodeError, decode, encode
from topics import CLOCK_INBOX, POSTS, SHARD_INBOX, TOPICS
from topics.models import RunCommanded, TickStarted
from worldfeed.cli import SCHEMAS_DIR, export_topic_schemas


def test_roundtrip_and_union() -> None:
    cmd = RunCommanded(command="start", run_id="r1", seed=3)
    assert decode(CLOCK_INBOX, encode(cmd)) == cmd
    tick = TickStarted(
        run_id="r", seed=1, world="town", tick=0, sim_minute=0, step_minutes=15, shard=0, n_shards=1
    )
    assert decode(SHARD_INBOX, encode(tick)) == tick


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"not json", "not JSON"),
        (b'{"kind": "run_commanded", "command": "fly", "run_id": "r"}', "/run_commanded/command"),
        (b'{"kind": "nope"}', "kind"),
        (None, "empty"),
    ],
)
def test_decode_errors_name_the_problem(raw: bytes | None, needle: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(CLOCK_INBOX, raw)
    assert needle in str(err.value)


def test_unknown_fields_are_rejected() -> None:
    post = {
        "post_id": "p",
        "request_id": "q",
        "run_id": "r",
        "event_id": "e",
        "channel": "feed",
        "author": "a",
        "tick": 1,
        "sim_minute": 15,
        "body": "hi",
        "source": "llm",
        "score": 0.5,
    }
    decode(POSTS, json.dumps(post))
    with pytest.raises(DecodeError, match="/surprise: Extra inputs are not permitted"):
        decode(POSTS, json.dumps({**post, "surprise": 1}))


def test_topic_schemas_have_not_drifted(tmp_path) -> None:
    fresh = {p.name: p.read_text() for p in export_topic_schemas(tmp_path)}
    stored = {p.name: p.read_text() for p in SCHEMAS_DIR.glob("*.schema.json")}
    assert fresh == stored, "topic schemas drifted from topics/models.py: run `make schemas`"
    assert len(fresh) == len(TOPICS)
