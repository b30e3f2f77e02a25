"""The one seam between the LLM proposer and the model: ``call(system, messages, tool)``.

``LLMClient`` is the interface. ``call`` sends one request that forces ``tool`` and returns
a ``ToolCall`` (the model called the tool; its input is data, never code) or a
``CallError`` (no usable call: an ``outcome`` and the error text); it never raises for API,
time or answer problems. ``redact`` replaces the client's secrets in a value; ``close``
releases the client. A test can implement these three in a few lines.

``AnthropicClient`` is the only code that touches the ``anthropic`` SDK:

- construction: the key is ``api_key``, else ``ANTHROPIC_API_KEY``, else
  ``ANTHROPIC_AUTH_TOKEN`` (sent as a bearer token); ``base_url`` defaults to
  ``ANTHROPIC_BASE_URL`` (read by the SDK). The key lives only inside the SDK client.
- the system prompt is re-sent unchanged on every call of a run and marked for prompt
  caching (below the model's minimum length it is simply not cached);
- ``timeout_s`` bounds the whole call by the wall clock, the SDK's retries
  (``max_retries``, on 429, 529, 5xx, connection errors and timeouts) and their waits
  included (``llm_deadline``);
- outcomes of a ``CallError``: ``timeout``, ``connection_error``, ``api_error`` (an HTTP
  error status), ``malformed`` (a 200 whose body is not JSON, not a message (an HTML error
  page, a JSON array), holds a lone surrogate (a JSON ``"\\ud800"``, which neither a call
  record nor a report can store) or a tool call without an id), ``no_tool_use`` (the
  answer did not call ``tool``), ``error`` (anything else);
- the request is scrubbed of the key before it is sent, and everything a ``ToolCall`` or
  ``CallError`` holds (input, content, response, error text) is scrubbed too.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from inr_tune.search.proposers.llm_deadline import Deadline
from inr_tune.search.proposers.text import one_line, redact, shorten

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicClient", "CallError", "LLMClient", "ToolCall", "finite_json"]

MAX_RAW = 20_000  # characters kept of an answer that is not a message

Message = dict[str, Any]
R = TypeVar("R", "ToolCall", "CallError")


@dataclass
class ToolCall:
    """The model called the forced tool: ``input`` is its (parsed JSON) input."""

    name: str
    input: Any
    id: str = "toolu_0"
    # the assistant turn as request params (text and tool_use blocks), to continue the
    # conversation; None: the tool_use block alone
    content: list[dict[str, Any]] | None = None
    latency_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    response: dict[str, Any] | None = None  # the whole answer as JSON, for the call record

    def turn(self) -> Message:
        """The assistant message that answered with this call."""
        content = self.content
        if content is None:
            block = {"type": "tool_use", "id": self.id, "name": self.name}
            content = [{**block, "input": finite_json(self.input)}]
        return {"role": "assistant", "content": content}


@dataclass
class CallError:
    """No usable tool call: ``outcome`` (module docstring) and ``error``, one line."""

    outcome: str
    error: str
    latency_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    response: dict[str, Any] | None = None  # the answer, when it was a message
    raw: str | None = field(default=None)  # the answer, when it was not a message


class LLMClient(Protocol):
    """What ``LLMProposer`` needs of a model (module docstring)."""

    def call(
        self, system: str, messages: list[Message], tool: dict[str, Any]
    ) -> ToolCall | CallError:
        """One request forcing ``tool``; never raises for API, time or answer problems."""
        ...

    def redact(self, value: Any) -> Any:
        """``value`` (strings, lists and mappings of them) with every secret replaced."""
        ...

    def close(self) -> None:
        """Release the client."""
        ...


class AnthropicClient:
    """``LLMClient`` on the Messages API (module docstring)."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        max_tokens: int = 4096,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be ≥ 0, got {max_retries}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
        import anthropic  # here, not at module level: the SDK takes seconds to import

        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_tokens = int(max_tokens)
        auth_token = None
        if api_key is None:
            api_key = os.environ.get("ANTHROPIC_API_KEY") or None
            if api_key is None:
                auth_token = os.environ.get("ANTHROPIC_AUTH_TOKEN") or None
        self._deadline = Deadline()
        http = anthropic.DefaultHttpxClient(
            event_hooks={
                "request": [self._deadline.on_request],
                "response": [self._deadline.on_response],
            }
        )
        # The key lives only inside the SDK client (never on this object, a file or a log).
        self._sdk: anthropic.Anthropic = anthropic.Anthropic(
            api_key=api_key,
            auth_token=auth_token,
            base_url=base_url,
            timeout=self.timeout_s,
            max_retries=int(max_retries),
            http_client=http,
        )

    def call(
        self, system: str, messages: list[Message], tool: dict[str, Any]
    ) -> ToolCall | CallError:
        name = tool["name"]
        result = self._send(
            model=self.model,
            max_tokens=self.max_tokens,
            system=[
                {
                    "type": "text",
                    "text": self.redact(system),
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            messages=self.redact(messages),
            tools=[tool],
            tool_choice={"type": "tool", "name": name},
        )
        if isinstance(result, CallError):
            return self._scrubbed(result)
        message, latency_s = result
        usage = getattr(message, "usage", None)
        tokens = {
            "input_tokens": _count(getattr(usage, "input_tokens", None)),
            "output_tokens": _count(getattr(usage, "output_tokens", None)),
        }
        response = message.model_dump(mode="json", warnings=False)
        block = next(
            (
                b
                for b in message.content
                if getattr(b, "type", None) == "tool_use" and getattr(b, "name", None) == name
            ),
            None,
        )
        if block is None:
            kinds = [str(getattr(b, "type", "?")) for b in message.content]
            error = f"the answer did not call {name} (content: {', '.join(kinds) or 'none'})"
            return self._scrubbed(
                CallError("no_tool_use", error, latency_s, response=response, **tokens)
            )
        if not isinstance(getattr(block, "id", None), str):
            error = f"the {name} call has no id"
            return self._scrubbed(
                CallError("malformed", error, latency_s, response=response, **tokens)
            )
        return self._scrubbed(
            ToolCall(
                name,
                getattr(block, "input", None),
                block.id,
                _assistant_content(message),
                latency_s,
                response=response,
                **tokens,
            )
        )

    def redact(self, value: Any) -> Any:
        return redact(value, self._secrets())

    def _scrubbed(self, result: R) -> R:
        """``result`` with every text it holds (input, content, answer, error) scrubbed of
        the secrets."""
        for name in ("input", "content", "response", "error", "raw"):
            if hasattr(result, name):
                setattr(result, name, self.redact(getattr(result, name)))
        return result

    def close(self) -> None:
        self._sdk.close()

    def _secrets(self) -> list[str]:
        """The API key or token of the SDK client (only ever used to redact it)."""
        return [s for s in (self._sdk.api_key, self._sdk.auth_token) if isinstance(s, str) and s]

    def _send(self, **params: Any) -> tuple[Any, float] | CallError:
        """``messages.create(**params)`` within ``timeout_s`` of wall clock: the checked
        message and the latency, or the ``CallError``."""
        import anthropic

        start = time.monotonic()
        box: dict[str, Any] = {}

        def work() -> None:
            self._deadline.set(start + self.timeout_s)
            try:
                box["answer"] = self._sdk.messages.create(**params)
            except Exception as err:  # handed to the caller
                box["error"] = err

        worker = threading.Thread(target=work, name="llm-call", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        latency_s = round(time.monotonic() - start, 3)
        if worker.is_alive():  # left to the deadline hooks, which end it soon
            return CallError(
                "timeout",
                f"no complete answer within {self.timeout_s:g} s (the time limit of the whole "
                "call, the SDK's retries and their waits included)",
                latency_s,
            )
        err = box.get("error")
        if err is not None:
            if isinstance(err, anthropic.APITimeoutError):
                outcome = "timeout"
            elif isinstance(err, anthropic.APIConnectionError):
                outcome = "connection_error"
            elif isinstance(err, anthropic.APIStatusError):
                outcome = "api_error"
            elif isinstance(err, (anthropic.AnthropicError, ValueError)):  # bad JSON, shape
                outcome = "malformed"
            else:
                outcome = "error"
            return CallError(outcome, f"{type(err).__name__}: {err}", latency_s)
        answer = box.get("answer")
        problem = _check(answer)
        if problem is not None:
            raw = None
            if not isinstance(answer, anthropic.types.Message):
                raw = shorten(_as_text(answer), MAX_RAW)
            return CallError("malformed", problem, latency_s, raw=raw)
        return answer, latency_s


# ----------------------------------------------------------------------------- answers


def _check(answer: Any) -> str | None:
    """Why ``answer`` cannot be used as a message, or None."""
    import anthropic

    if not isinstance(answer, anthropic.types.Message):
        preview = shorten(one_line(_as_text(answer)), 200)
        return f"the answer is not a message object but {type(answer).__name__}: {preview}"
    if not isinstance(answer.content, list):
        return f"the answer's content is not a list: {shorten(one_line(_as_text(answer.content)), 200)}"
    where = _surrogate(answer.model_dump(mode="python", warnings=False), "answer")
    if where is not None:
        return f"the answer holds a lone surrogate at {where}: not valid Unicode"
    return None


def _surrogate(value: Any, path: str) -> str | None:
    """The path of the first string holding a lone surrogate (``\\ud800``…), or None."""
    if isinstance(value, str):
        m = re.search("[\ud800-\udfff]", value)
        return f"{path} (U+{ord(m.group()):04X})" if m else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _surrogate(k, path) or _surrogate(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _surrogate(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _assistant_content(message: Any) -> list[dict[str, Any]]:
    """The answer's text and tool_use blocks as request params (to continue the turn)."""
    out: list[dict[str, Any]] = []
    for block in message.content:
        kind = getattr(block, "type", None)
        if kind == "text" and isinstance(getattr(block, "text", None), str):
            out.append({"type": "text", "text": block.text})
        elif kind == "tool_use":
            out.append(
                {
                    "type": "tool_use",
                    "id": block.id,
                    "name": block.name,
                    "input": finite_json(getattr(block, "input", None)),
                }
            )
    return out


def finite_json(value: Any) -> Any:
    """JSON-safe copy for echoing the model's input back: NaN/inf become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except ValueError:
        return repr(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
