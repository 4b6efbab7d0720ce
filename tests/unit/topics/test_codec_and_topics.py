"""Codec errors name what was wrong; topic schemas in the repo match the models."""

from __future__ import annotations

import json

import msgspec
import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cli.main import SCHEMAS_DIR, export_topic_schemas
from topics import CLOCK_INBOX, EVENTS, POSTS, SHARD_INBOX, TOPICS
from topics.codec import DecodeError, decode, decode_checked, encode, storable_json
from topics.fastcheck import decoder_for
from topics.models import UINT32_MAX, EventHappened, RunCommanded, TickStarted


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


POST = {
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


def test_unknown_fields_are_rejected() -> None:
    decode(POSTS, json.dumps(POST))
    with pytest.raises(DecodeError, match="/surprise: Extra inputs are not permitted"):
        decode(POSTS, json.dumps({**POST, "surprise": 1}))


EVENT = {
    "event_id": "ev_1",
    "run_id": "r",
    "tick": 3,
    "sim_minute": 45,
    "type": "argued",
    "actor": "npc_a",
    "summary": "a row",
}


def test_storable_json_passes_strictly_valid_json_through_unchanged() -> None:
    raw = json.dumps(EVENT, indent=2).encode()  # not how we encode it: still passed as is
    assert storable_json(EVENTS, raw) is raw


def test_decode_checked_builds_a_model_only_for_what_strict_mode_refuses() -> None:
    strict = decode_checked(EVENTS, json.dumps(EVENT))
    assert isinstance(strict, msgspec.Struct) and strict.tick == 3 and strict.source == "npc"
    lax = decode_checked(EVENTS, json.dumps({**EVENT, "tick": "3"}))
    assert isinstance(lax, EventHappened) and lax.tick == 3
    with pytest.raises(DecodeError, match="/tick:"):
        decode_checked(EVENTS, json.dumps({**EVENT, "tick": "soon"}))


@pytest.mark.parametrize("lax", [{"tick": "3"}, {"tick": 3.0}, {"sim_minute": "45"}])
def test_storable_json_re_encodes_what_only_lax_mode_accepts(lax: dict) -> None:
    # the engine parses the line into typed columns: it gets JSON with the model's types
    line = storable_json(EVENTS, json.dumps({**EVENT, **lax}))
    assert line == encode(decode(EVENTS, json.dumps(EVENT)))


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
def test_storable_json_refuses_like_decode(raw: bytes | str | None, needle: str) -> None:
    with pytest.raises(DecodeError) as err:
        storable_json(EVENTS, raw)
    assert needle in str(err.value)


@pytest.mark.parametrize("spec", TOPICS, ids=lambda t: t.name)
def test_every_single_model_topic_has_a_checker(spec) -> None:
    if not isinstance(spec.model, type):  # a union of models (inboxes): not derived
        with pytest.raises(TypeError, match="only model classes"):
            spec.checker()
        return
    assert spec.checker() is spec.checker()  # derived once, and derivable for every model


def _effect(**kw: object) -> dict:
    return {"event_id": "e", "npc_id": "n", "field": "trust", **kw}


IMPACT = {"novelty": 1, "conflict": 0.5, "status": 0, "cascade": 0, "total": 0.4}
CHECKED = [
    (EVENTS, EVENT),
    (EVENTS, {**EVENT, "impact": IMPACT}),
    (EVENTS, {**EVENT, "effects": [_effect(delta=-1, other="m", text="t")]}),
    (EVENTS, {**EVENT, "witnesses": ["a", "b"], "refs": [], "target": None, "place": "inn"}),
    (EVENTS, {**EVENT, "kind": "event_happened", "source": "admin", "actor_memories": ["m"]}),
    (EVENTS, {**EVENT, "tick": UINT32_MAX}),
    (EVENTS, {**EVENT, "tick": UINT32_MAX + 1}),
    (EVENTS, {**EVENT, "tick": -1}),
    (EVENTS, {**EVENT, "tick": "3"}),
    (EVENTS, {**EVENT, "tick": 3.0}),
    (EVENTS, {**EVENT, "tick": True}),
    (EVENTS, {**EVENT, "summary": 5}),
    (EVENTS, {**EVENT, "kind": "event_happenedx"}),
    (EVENTS, {**EVENT, "source": "aliens"}),
    (EVENTS, {**EVENT, "witnesses": "npc_a"}),
    (EVENTS, {**EVENT, "witnesses": [1]}),
    (EVENTS, {**EVENT, "impact": {**IMPACT, "novelty": 1.5}}),
    (EVENTS, {**EVENT, "impact": {**IMPACT, "total": -0.1}}),
    (EVENTS, {**EVENT, "impact": {k: v for k, v in IMPACT.items() if k != "total"}}),
    (EVENTS, {**EVENT, "impact": {**IMPACT, "extra": 1}}),
    (EVENTS, {**EVENT, "effects": [_effect(field="fame")]}),
    (EVENTS, {**EVENT, "effects": [_effect(x=1)]}),
    (EVENTS, {**EVENT, "effects": [{"event_id": "e", "field": "trust"}]}),
    (EVENTS, {**EVENT, "effects": [_effect(delta="1")]}),
    (EVENTS, {k: v for k, v in EVENT.items() if k != "summary"}),
    (EVENTS, {**EVENT, "surprise": 1}),
    (EVENTS, [EVENT]),
    (POSTS, POST),
    (POSTS, {**POST, "channel": "radio"}),
]


@pytest.mark.parametrize(("spec", "message"), CHECKED)
def test_the_checker_accepts_and_refuses_what_the_model_does_in_strict_mode(
    spec, message: object
) -> None:
    raw = json.dumps(message)
    try:
        expected = spec.adapter().validate_json(raw, strict=True).model_dump()
    except ValueError:
        with pytest.raises(msgspec.ValidationError):
            spec.checker().decode(raw)
    else:
        assert msgspec.to_builtins(spec.checker().decode(raw)) == expected  # defaults alike


def test_derivation_refuses_what_it_cannot_mirror() -> None:
    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        a: int

    class Checked(BaseModel):
        a: int

        @field_validator("a")
        @classmethod
        def positive(cls, v: int) -> int:
            return v

    class Patterned(BaseModel):
        a: str = Field(pattern="^x")

    class Tupled(BaseModel):
        a: tuple[int, int]

    for model, needle in [
        (Loose, "extra='allow'"),
        (Checked, "validators"),
        (Patterned, "constraint"),
        (Tupled, "not derived"),
    ]:
        with pytest.raises(TypeError, match=needle):
            decoder_for(model)


def test_topic_schemas_have_not_drifted(tmp_path) -> None:
    fresh = {p.name: p.read_text() for p in export_topic_schemas(tmp_path)}
    stored = {p.name: p.read_text() for p in SCHEMAS_DIR.glob("*.schema.json")}
    assert fresh == stored, "topic schemas drifted from topics/models.py: run `make schemas`"
    assert len(fresh) == len(TOPICS)
