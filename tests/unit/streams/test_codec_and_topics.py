"""Codec errors name what was wrong; topic schemas in the repo match the models."""

from __future__ import annotations

import json

import pytest

from streams.codec import DecodeError, decode, decode_line, encode
from topics import CLOCK_INBOX, EVENTS, POSTS, SHARD_INBOX, TOPICS
from topics.models import UINT32_MAX, RunCommanded, TickStarted
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


EVENT = {
    "event_id": "ev_1",
    "run_id": "r",
    "tick": 3,
    "sim_minute": 45,
    "type": "argued",
    "actor": "npc_a",
    "summary": "a row",
}


def test_decode_line_passes_strictly_valid_json_through_unchanged() -> None:
    raw = json.dumps(EVENT, indent=2).encode()  # not how we encode it: still passed as is
    msg, line = decode_line(EVENTS, raw)
    assert line is raw
    assert msg.tick == 3 and msg.source == "npc"


@pytest.mark.parametrize("lax", [{"tick": "3"}, {"tick": 3.0}, {"sim_minute": "45"}])
def test_decode_line_re_encodes_what_only_lax_mode_accepts(lax: dict) -> None:
    # the engine parses the line into typed columns: it gets JSON with the model's types
    msg, line = decode_line(EVENTS, json.dumps({**EVENT, **lax}))
    assert line == encode(msg)
    assert json.loads(line)["tick"] == 3 and json.loads(line)["sim_minute"] == 45


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (json.dumps({**EVENT, "tick": UINT32_MAX + 1}), "/tick: Input should be less than"),
        (json.dumps({**EVENT, "tick": "soon"}), "/tick:"),
        (json.dumps({**EVENT, "extra": 1}), "/extra: Extra inputs"),
        (b'{"event_id": "e"', "not JSON"),
        (None, "empty"),
    ],
)
def test_decode_line_refuses_like_decode(raw: bytes | str | None, needle: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_line(EVENTS, raw)
    assert needle in str(err.value)


def test_topic_schemas_have_not_drifted(tmp_path) -> None:
    fresh = {p.name: p.read_text() for p in export_topic_schemas(tmp_path)}
    stored = {p.name: p.read_text() for p in SCHEMAS_DIR.glob("*.schema.json")}
    assert fresh == stored, "topic schemas drifted from topics/models.py: run `make schemas`"
    assert len(fresh) == len(TOPICS)
