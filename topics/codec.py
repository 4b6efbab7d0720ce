"""The one bridge between pydantic models and Kafka bytes.

Topics carry raw JSON bytes; agents decode with :func:`decode`, which never raises
anything but :class:`DecodeError`. That keeps a malformed message from crashing an
agent: the agent sends it to the dead-letter topic with the reason and goes on.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import BaseModel, ValidationError

from topics import TopicSpec

MAX_DLQ_VALUE = 64 * 1024


class DecodeError(ValueError):
    """A message that does not match its topic's model; the text says what and where."""


def encode(model: BaseModel) -> bytes:
    """Serialize a message model to compact JSON bytes."""
    return model.model_dump_json(exclude_none=False).encode()


def decode(spec: TopicSpec, raw: bytes | str | None) -> Any:
    """Validate raw JSON against the topic's model, or raise DecodeError naming the fields."""
    if raw is None:
        raise DecodeError(f"{spec.name}: empty message (no value)")
    try:
        return spec.adapter().validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise DecodeError(f"{spec.name}: not JSON: {exc.errors()[0]['msg']}") from None
        problems = "; ".join(
            f"/{'/'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:10]
        )
        raise DecodeError(f"{spec.name}: invalid message: {problems}") from None
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"{spec.name}: not JSON: {exc}") from None


def decode_checked(spec: TopicSpec, raw: bytes | str | None) -> Any:
    """Validate like :func:`decode`, strict and fast first.

    Returns the struct of :meth:`TopicSpec.checker` when the message passes in strict
    mode (its JSON has the model's types; no model is built), else the model that lax
    mode builds. Raises :class:`DecodeError` as :func:`decode` does (the model, validated
    again, names the problem).
    """
    if raw is not None:
        try:
            return spec.checker().decode(raw)
        except msgspec.MsgspecError:
            pass  # lax below: it accepts more, or says what is wrong
    return decode(spec, raw)


def storable_json(spec: TopicSpec, raw: bytes | str | None) -> bytes | None:
    """Validate like :func:`decode`; return JSON of the message the engine can store as is,
    or None for a message that is valid but no row: an event that is a parent's story
    copied into a branch (``restored``; the parent's events table holds it).

    A message that passes in strict mode (:func:`decode_checked`) is returned as the bytes
    consumed, so the sink hands the engine what it read without encoding it again; one
    only lax mode accepts (``"30"`` or ``30.0`` for an int) is returned re-encoded from
    its model. Raises :class:`DecodeError` as :func:`decode` does.
    """
    msg = decode_checked(spec, raw)
    if getattr(msg, "restored", None) is not None:
        return None
    if isinstance(msg, BaseModel):
        return encode(msg)
    assert raw is not None  # noqa: S101 - a struct comes only from a value
    return raw.encode() if isinstance(raw, str) else raw


def printable(raw: bytes | str | None) -> str:
    """The raw value as text for a dead letter, truncated."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return raw[:MAX_DLQ_VALUE]
