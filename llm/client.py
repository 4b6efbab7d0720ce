"""The one async client for LLM generation on Triton (``tritonclient.grpc.aio``).

It speaks the tensor interface of Triton's vLLM backend (``text_input``,
``sampling_parameters`` as JSON, ``text_output`` plus token counts), so it talks to
the local CPU model in ``triton_models/llm`` and to the official vLLM backend on a GPU
alike. Requests go over the gRPC bidirectional stream (one request, first response):
the vLLM backend is a *decoupled* model, which unary ``ModelInfer`` refuses.

Failure handling:

- transport failures (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``,
  connection errors) are retried with exponential backoff and jitter, then raised
  as :class:`LLMUnavailable`;
- an error response from the model (bad sampling parameters, generation failure)
  is not retried and is raised as :class:`LLMError`.

Callers (the loop in :mod:`llm.complete`) wait and ask again on
:class:`LLMUnavailable`, or give up; the simulation itself never blocks on Triton.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from llm.base import Completion, LLMError, LLMFailure, LLMUnavailable
from worldfeed.backoff import backoff_delay

log = logging.getLogger(__name__)

__all__ = [
    "Completion",
    "LLMError",
    "LLMFailure",
    "LLMUnavailable",
    "TritonLLM",
    "build_inputs",
    "is_retryable",
    "parse_result",
]

#: gRPC status codes that mean "the server is not there or not keeping up": retried.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_RETRYABLE_NAMES = frozenset(str(code) for code in RETRYABLE_CODES)  # "StatusCode.UNAVAILABLE"
#: Cap of one backoff sleep, whatever the attempt number.
MAX_BACKOFF_S = 10.0


#: What Triton answers while a (re)started server is still loading its models: the model
#: is not there *yet*. Retried like a server that is away, not taken as a bad request.
_LOADING = ("unknown model", "has no available versions", "is not ready")


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` is a transport failure worth retrying, or a server still loading."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in RETRYABLE_CODES or _loading(exc.details() or "")
    if isinstance(exc, InferenceServerException):
        return exc.status() in _RETRYABLE_NAMES or _loading(exc.message() or "")
    return isinstance(exc, ConnectionError | TimeoutError | asyncio.TimeoutError)


def _loading(message: str) -> bool:
    return any(words in message for words in _LOADING)


def build_inputs(prompt: str, sampling: Mapping[str, Any]) -> list[grpcclient.InferInput]:
    """Build the vLLM-backend request tensors for one prompt.

    ``sampling`` is sent as the JSON of ``sampling_parameters`` (vLLM names:
    ``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop``...).
    ``exclude_input_in_output`` and ``return_num_*_tokens`` make the vLLM backend
    answer like the local model: generated text only, with token counts.
    """

    def _tensor(name: str, value: Any, datatype: str) -> grpcclient.InferInput:
        tensor = grpcclient.InferInput(name, [1], datatype)
        dtype = np.object_ if datatype == "BYTES" else np.bool_
        tensor.set_data_from_numpy(np.array([value], dtype=dtype))
        return tensor

    return [
        _tensor("text_input", prompt.encode("utf-8"), "BYTES"),
        _tensor("sampling_parameters", json.dumps(dict(sampling)).encode("utf-8"), "BYTES"),
        _tensor("stream", False, "BOOL"),
        _tensor("exclude_input_in_output", True, "BOOL"),
        _tensor("return_num_input_tokens", True, "BOOL"),
        _tensor("return_num_output_tokens", True, "BOOL"),
    ]


def _first_int(value: Any) -> int:
    if value is None:
        return 0
    arr = np.asarray(value).reshape(-1)
    return int(arr.sum()) if arr.size else 0


def parse_result(
    text_output: Any, num_input_tokens: Any, num_output_tokens: Any
) -> tuple[str, int, int]:
    """Decode the output tensors into ``(text, tokens_in, tokens_out)``.

    ``text_output`` is a BYTES tensor (one element, possibly nested); missing token
    counts (an older vLLM backend) read as 0. ``num_output_tokens`` is summed because
    a streamed vLLM answer reports the tokens of each chunk.
    """
    if text_output is None:
        raise LLMError("response has no text_output")
    parts = np.asarray(text_output, dtype=np.object_).reshape(-1)
    text = "".join(
        p.decode("utf-8", errors="replace") if isinstance(p, bytes) else str(p) for p in parts
    )
    return text, _first_int(num_input_tokens), _first_int(num_output_tokens)


class TritonLLM:
    """Async, bounded, retrying client for a vLLM-interface model on Triton.

    One instance per process (or per event loop): the gRPC channel is created lazily in
    the running loop and shared by all calls. At most ``concurrency`` requests are in
    flight at once; the rest wait on a semaphore, so a slow model back-pressures the
    caller instead of piling requests up in Triton's queue.

    Args:
        url: Triton gRPC endpoint, ``host:port``.
        model: Model name in the Triton model repository.
        concurrency: Maximum requests in flight.
        timeout_s: Deadline of one attempt (gRPC client timeout), in seconds.
        retries: Retries after the first attempt on transport failures.
        backoff_s: Base of the exponential backoff between retries, in seconds.

    Example:
        >>> async with TritonLLM("127.0.0.1:8011") as llm:  # doctest: +SKIP
        ...     c = await llm.generate("Say hi", {"max_tokens": 16, "temperature": 0.7})
    """

    def __init__(
        self,
        url: str,
        model: str = "llm",
        concurrency: int = 4,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.url = url
        self.model = model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._semaphore = asyncio.Semaphore(concurrency)
        self._client: grpcaio.InferenceServerClient | None = None
        self._in_flight = 0
        #: Highest number of requests seen in flight at once (for tests and metrics).
        self.max_in_flight = 0

    def _get_client(self) -> grpcaio.InferenceServerClient:
        if self._client is None:
            self._client = grpcaio.InferenceServerClient(self.url)
        return self._client

    async def __aenter__(self) -> TritonLLM:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the gRPC channel; a later call opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ready(self) -> bool:
        """True when the server is up and the model is ready; never raises."""
        try:
            client = self._get_client()
            timeout = min(self.timeout_s, 5.0)
            return bool(
                await client.is_server_ready(client_timeout=timeout)
                and await client.is_model_ready(self.model, client_timeout=timeout)
            )
        except Exception as exc:  # noqa: BLE001 - readiness is a yes/no question
            log.debug("triton %s not ready: %s", self.url, exc)
            return False

    async def generate(self, prompt: str, sampling: Mapping[str, Any]) -> Completion:
        """Generate a completion of ``prompt`` (the user message).

        Args:
            prompt: The user message; the model applies its chat template.
            sampling: vLLM sampling parameters, e.g. ``{"temperature": 0.7,
                "top_p": 0.9, "max_tokens": 80, "seed": 7, "stop": ["\\n\\n"]}``.

        Returns:
            The :class:`Completion`.

        Raises:
            LLMUnavailable: Triton unreachable or too slow on every attempt.
            LLMError: The model answered with an error (not retried).
        """
        inputs = build_inputs(prompt, sampling)
        attempts = self.retries + 1
        last: BaseException | None = None
        async with self._semaphore:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                for attempt in range(attempts):
                    if attempt:
                        delay = backoff_delay(attempt - 1, self.backoff_s, MAX_BACKOFF_S)
                        log.warning(
                            "triton %s attempt %d/%d failed (%s); retrying in %.2fs",
                            self.url,
                            attempt,
                            attempts,
                            _describe(last),
                            delay,
                        )
                        await asyncio.sleep(delay)
                    try:
                        return await self._attempt(inputs)
                    except LLMError:
                        raise
                    except Exception as exc:
                        if not is_retryable(exc):
                            raise LLMError(
                                f"triton {self.url} model {self.model!r}: {_describe(exc)}"
                            ) from exc
                        last = exc
            finally:
                self._in_flight -= 1
        raise LLMUnavailable(
            f"triton {self.url} model {self.model!r} unavailable after {attempts} "
            f"attempt(s): {_describe(last)}"
        ) from last

    async def _attempt(self, inputs: list[grpcclient.InferInput]) -> Completion:
        """One request over the gRPC stream; returns on the first response."""

        async def _requests() -> AsyncIterator[dict[str, Any]]:
            yield {"model_name": self.model, "inputs": inputs}

        started = time.perf_counter()
        responses = self._get_client().stream_infer(_requests(), stream_timeout=self.timeout_s)
        try:
            async for result, error in responses:
                if error is not None:
                    if is_retryable(error):  # a restarted server still loading its model
                        raise error  # retried by generate() like a server that is away
                    raise LLMError(f"model {self.model!r} returned an error: {error}")
                if result is None:  # an empty final-flag response carries nothing
                    continue
                text, tokens_in, tokens_out = parse_result(
                    result.as_numpy("text_output"),
                    result.as_numpy("num_input_tokens"),
                    result.as_numpy("num_output_tokens"),
                )
                return Completion(
                    text=text,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    model=self.model,
                )
        finally:
            responses.cancel()  # one response is all we wait for; end the stream
        raise grpc.aio.AioRpcError(  # the stream ended without an answer
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="stream closed without a response",
        )


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
