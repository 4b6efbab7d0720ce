"""Pure logic of the Triton client: retry delays, retry classification, tensors, parsing."""

from __future__ import annotations

import json
import random
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from llm import client as client_module
from llm.client import (
    MAX_BACKOFF_S,
    Completion,
    LLMError,
    LLMUnavailable,
    TritonLLM,
    build_inputs,
    is_retryable,
    parse_result,
)
from worldfeed.backoff import backoff_delay


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        nominal = min(10.0, 0.5 * 2**attempt)
        for _ in range(50):
            d = backoff_delay(attempt, 0.5, cap_s=10.0, rng=rng)
            assert nominal / 2 <= d <= nominal
    assert backoff_delay(30, 0.5, cap_s=10.0, rng=rng) <= 10.0
    with pytest.raises(ValueError):
        backoff_delay(-1, 0.5, MAX_BACKOFF_S)


def test_backoff_is_jittered() -> None:
    rng = random.Random(7)
    assert len({round(backoff_delay(2, 0.5, MAX_BACKOFF_S, rng=rng), 6) for _ in range(20)}) > 1


def _unavailable() -> grpc.aio.AioRpcError:
    md = grpc.aio.Metadata()
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, md, md, details="down")


async def test_transport_failures_are_retried_with_the_shared_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)
    llm = TritonLLM("127.0.0.1:1", retries=7, backoff_s=0.5)
    tries = 0

    async def attempt(_inputs: Any) -> Completion:
        nonlocal tries
        tries += 1
        raise _unavailable()

    monkeypatch.setattr(llm, "_attempt", attempt)
    with pytest.raises(LLMUnavailable, match="after 8 attempt"):
        await llm.generate("hi", {"max_tokens": 1})
    assert tries == 8 and len(slept) == 7
    for n, delay in enumerate(slept):
        nominal = min(MAX_BACKOFF_S, 0.5 * 2**n)
        assert nominal / 2 <= delay <= nominal
    assert llm.max_in_flight == 1


async def test_a_retry_that_succeeds_returns_and_model_errors_are_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def sleep(_s: float) -> None:
        return None

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)
    llm = TritonLLM("127.0.0.1:1", retries=3)
    script: list[Any] = [_unavailable(), Completion("ok", 1, 1, 1.0, "llm")]

    async def attempt(_inputs: Any) -> Completion:
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(llm, "_attempt", attempt)
    assert (await llm.generate("hi", {})).text == "ok"
    script[:] = [LLMError("bad sampling"), Completion("never", 1, 1, 1.0, "llm")]
    with pytest.raises(LLMError, match="bad sampling"):
        await llm.generate("hi", {})
    assert len(script) == 1


class _Result:
    """A stream response with the output tensors."""

    def __init__(self, text: str) -> None:
        self.tensors = {
            "text_output": np.array([text.encode()], dtype=np.object_),
            "num_input_tokens": np.array([5], np.int32),
            "num_output_tokens": np.array([2], np.uint32),
        }

    def as_numpy(self, name: str) -> Any:
        return self.tensors[name]


class _Stream:
    """What ``stream_infer`` returns: ``(result, error)`` pairs, then ``cancel``."""

    def __init__(self, answers: list[tuple[Any, Any]]) -> None:
        self.answers = answers

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> tuple[Any, Any]:
        if not self.answers:
            raise StopAsyncIteration
        return self.answers.pop(0)

    def cancel(self) -> None:
        self.answers = []


async def test_a_model_still_loading_answered_on_the_stream_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restarted Triton answers on the gRPC stream before its model is loaded: the error
    comes as the stream's response, not as a raised exception, and was taken as the model's
    answer to this request (LLMError: a template post and a dead letter, make chaos's
    'stop Triton' rounds). It is retried like a server that is away."""

    async def sleep(_s: float) -> None:
        return None

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)
    llm = TritonLLM("127.0.0.1:1", retries=3)
    loading = "[StatusCode.NOT_FOUND] Request for unknown model: 'llm' has no available versions"
    streams = [
        _Stream([(None, InferenceServerException(loading))]),
        _Stream([(_Result("hello"), None)]),
    ]

    class Client:
        def stream_infer(self, _requests: Any, stream_timeout: float) -> _Stream:
            return streams.pop(0)

    monkeypatch.setattr(llm, "_get_client", Client)
    assert (await llm.generate("hi", {})).text == "hello"
    # an error of the request itself is the model's answer: not retried
    streams[:] = [_Stream([(None, InferenceServerException("bad sampling"))])]
    with pytest.raises(LLMError, match="bad sampling"):
        await llm.generate("hi", {})


def test_retry_classification() -> None:
    assert is_retryable(InferenceServerException("x", status="StatusCode.UNAVAILABLE"))
    assert is_retryable(InferenceServerException("x", status="StatusCode.DEADLINE_EXCEEDED"))
    assert not is_retryable(InferenceServerException("x", status="StatusCode.INVALID_ARGUMENT"))
    assert is_retryable(ConnectionRefusedError())
    assert is_retryable(TimeoutError())
    assert not is_retryable(ValueError())
    md = grpc.aio.Metadata()
    assert is_retryable(grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, md, md))
    # a restarted Triton answers before its model is loaded: wait for it, as for a server away
    loading = "Request for unknown model: 'llm' has no available versions"
    assert is_retryable(InferenceServerException(loading, status="StatusCode.NOT_FOUND"))
    assert is_retryable(grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, md, md, details=loading))
    assert not is_retryable(grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, md, md))


def test_build_inputs_speaks_the_vllm_interface() -> None:
    inputs = {i.name(): i for i in build_inputs("héllo", {"max_tokens": 7, "seed": 3})}
    assert set(inputs) == {
        "text_input",
        "sampling_parameters",
        "stream",
        "exclude_input_in_output",
        "return_num_input_tokens",
        "return_num_output_tokens",
    }
    assert inputs["text_input"].datatype() == "BYTES"
    assert inputs["stream"].datatype() == "BOOL"
    raw = inputs["sampling_parameters"]._get_content()
    assert json.loads(raw[4:]) == {"max_tokens": 7, "seed": 3}  # 4-byte length prefix


def test_parse_result() -> None:
    text, tin, tout = parse_result(
        np.array([b"hi \xc3\xa9"], dtype=np.object_),
        np.array([12], np.int32),
        np.array([3], np.uint32),
    )
    assert (text, tin, tout) == ("hi é", 12, 3)
    assert parse_result(np.array([[b"a", b"b"]], dtype=np.object_), None, None) == ("ab", 0, 0)
    with pytest.raises(LLMError):
        parse_result(None, None, None)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        TritonLLM("x:1", concurrency=0)
    with pytest.raises(ValueError):
        TritonLLM("x:1", retries=-1)
    llm = TritonLLM("127.0.0.1:1")
    assert (llm.model, llm.concurrency, llm.timeout_s, llm.retries, llm.backoff_s) == (
        "llm",
        4,
        60.0,
        3,
        0.5,
    )
