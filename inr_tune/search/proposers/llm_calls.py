"""The Messages API calls of ``LLMProposer``: a time limit on the whole call, a strict
check of the answer, and the call records (``run_dir/llm/call_NNN.json``).

``timeout_s`` bounds a call by the wall clock, the SDK's retries and their waits (the
``retry-after`` of a 429 included): the request runs in a daemon thread that the caller
stops waiting for at the deadline. The client's event hooks make that request give up as
well: each HTTP attempt's connect, read, write and pool timeouts are cut to the time left,
an attempt begun after the deadline fails at once, and the body is read against the
deadline, so a server that drips a valid answer byte by byte (every socket read well
inside the read timeout) is cut off too.

The answer must be a message (the SDK hands back the text of a 200 that is not JSON, and
a JSON array as it is) whose strings are valid Unicode (a JSON ``"\\ud800"`` decodes to a
lone surrogate, which neither a call record nor a report can store); else the call is
``malformed`` and nothing of it is used.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inr_tune.search.proposers.text import one_line, redact, shorten

if TYPE_CHECKING:
    import anthropic

__all__ = ["Call", "CallRecords", "Deadline", "finite_json", "make_client", "send"]

MAX_RAW = 20_000  # characters kept of an answer that is not a message


@dataclass
class Call:
    """One Messages API request and what came of it."""

    purpose: str
    attempt: int
    latency_s: float
    message: Any | None = None  # anthropic.types.Message, checked
    outcome: str = "ok"
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    raw: str | None = None  # the answer, when it was not a message


# ----------------------------------------------------------------------------- time limit


class Deadline:
    """The deadline of the calling thread's request, applied by the client's event hooks."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, at: float | None) -> None:
        self._local.at = at

    def left(self) -> float | None:
        at = getattr(self._local, "at", None)
        return None if at is None else at - time.monotonic()

    def on_request(self, request: Any) -> None:
        """Cut the attempt's timeouts to the time left; fail it once none is left."""
        left = self.left()
        if left is None:
            return
        if left <= 0:
            raise _httpx(request).ConnectTimeout(
                "the call's time limit has passed", request=request
            )
        timeouts = dict(request.extensions.get("timeout") or {})
        for k in ("connect", "read", "write", "pool"):
            v = timeouts.get(k)
            timeouts[k] = left if v is None else min(float(v), left)
        request.extensions["timeout"] = timeouts

    def on_response(self, response: Any) -> None:
        """Read the body against the deadline."""
        at = getattr(self._local, "at", None)
        if at is not None:
            response.stream = _deadline_stream(_httpx(response))(response.stream, at, response)


def _httpx(obj: Any) -> Any:
    """The httpx module of an httpx object (``httpx``, or ``httpx2`` in newer SDKs)."""
    return importlib.import_module(type(obj).__module__.split(".")[0])


@functools.cache
def _deadline_stream(httpx: Any) -> type:
    class DeadlineStream(httpx.SyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any, at: float, response: Any) -> None:
            self._inner, self._at, self._response = inner, at, response

        def __iter__(self) -> Any:
            for chunk in self._inner:
                if time.monotonic() > self._at:
                    raise httpx.ReadTimeout(
                        "the answer was still arriving at the call's time limit",
                        request=self._response.request,
                    )
                yield chunk

        def close(self) -> None:
            self._inner.close()

    return DeadlineStream


def make_client(
    *,
    api_key: str | None,
    auth_token: str | None,
    base_url: str | None,
    timeout_s: float,
    max_retries: int,
) -> tuple[anthropic.Anthropic, Deadline]:
    """The SDK client (its HTTP client carries the deadline hooks) and its ``Deadline``."""
    import anthropic  # here, not at module level: the SDK takes seconds to import

    deadline = Deadline()
    http = anthropic.DefaultHttpxClient(
        event_hooks={"request": [deadline.on_request], "response": [deadline.on_response]}
    )
    client = anthropic.Anthropic(
        api_key=api_key,
        auth_token=auth_token,
        base_url=base_url,
        timeout=float(timeout_s),
        max_retries=int(max_retries),
        http_client=http,
    )
    return client, deadline


# ----------------------------------------------------------------------------- one call


def send(
    client: anthropic.Anthropic,
    deadline: Deadline,
    timeout_s: float,
    call: Call,
    **params: Any,
) -> Call:
    """``client.messages.create(**params)`` within ``timeout_s`` of wall clock; API, time
    and answer problems become ``call.outcome`` and ``call.error``, never an exception."""
    import anthropic

    start = time.monotonic()
    box: dict[str, Any] = {}

    def work() -> None:
        deadline.set(start + timeout_s)
        try:
            box["answer"] = client.messages.create(**params)
        except Exception as err:  # handed to the caller
            box["error"] = err

    worker = threading.Thread(target=work, name="llm-call", daemon=True)
    worker.start()
    worker.join(timeout_s)
    call.latency_s = round(time.monotonic() - start, 3)
    if worker.is_alive():  # left to the deadline hooks, which end it soon
        call.outcome = "timeout"
        call.error = (
            f"no complete answer within {timeout_s:g} s (the time limit of the whole call, "
            "the SDK's retries and their waits included)"
        )
        return call
    err = box.get("error")
    if err is not None:
        if isinstance(err, anthropic.APITimeoutError):
            call.outcome = "timeout"
        elif isinstance(err, anthropic.APIConnectionError):
            call.outcome = "connection_error"
        elif isinstance(err, anthropic.APIStatusError):
            call.outcome = "api_error"
        elif isinstance(err, (anthropic.AnthropicError, ValueError)):  # bad JSON, bad shape
            call.outcome = "malformed"
        else:
            call.outcome = "error"
        call.error = f"{type(err).__name__}: {err}"
        return call
    answer = box.get("answer")
    problem = _check(answer)
    if problem is not None:
        call.outcome, call.error = "malformed", problem
        if not isinstance(answer, anthropic.types.Message):
            call.raw = shorten(_as_text(answer), MAX_RAW)
        return call
    call.message = answer
    usage = getattr(answer, "usage", None)
    call.input_tokens = _count(getattr(usage, "input_tokens", None))
    call.output_tokens = _count(getattr(usage, "output_tokens", None))
    return call


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


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except ValueError:
        return repr(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------- records


def finite_json(value: Any) -> Any:
    """JSON-safe copy for echoing the model's input back: NaN/inf become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _storable(value: Any) -> Any:
    """``finite_json`` whose strings a UTF-8 file can hold (lone surrogates → U+FFFD)."""
    value = finite_json(value)
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _storable(str(value))


def elide_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request messages with image data replaced by its size (for the call record)."""
    out = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            blocks = []
            for b in content:
                if isinstance(b, dict) and b.get("type") == "image":
                    size = len(b.get("source", {}).get("data", ""))
                    blocks.append({"type": "image", "data": f"(base64 PNG, {size} characters)"})
                else:
                    blocks.append(b)
            content = blocks
        out.append({**msg, "content": content})
    return out


class CallRecords:
    """``run_dir/llm/call_NNN.json``: each call's answer and request, numbered on from the
    files already there, scrubbed of the secrets."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "llm"
        self._n: int | None = None

    def write(
        self,
        call: Call,
        model: str,
        system: str,
        messages: list[dict[str, Any]],
        secrets: list[str],
    ) -> str:
        """Write the record of ``call``; its path relative to the run directory."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._n is None:
            found = [re.fullmatch(r"call_(\d+)\.json", p.name) for p in self.folder.iterdir()]
            self._n = max((int(m.group(1)) for m in found if m), default=0)
        self._n += 1
        name = f"call_{self._n:03d}.json"
        response = None
        if call.message is not None:
            response = call.message.model_dump(mode="json", warnings=False)
        record = {
            "purpose": call.purpose,
            "attempt": call.attempt,
            "model": model,
            "outcome": call.outcome,
            "latency_s": call.latency_s,
            "error": call.error,
            "response": response,
            **({"raw_answer": call.raw} if call.raw is not None else {}),
            "request": {"system": system, "messages": elide_images(messages)},
        }
        text = json.dumps(redact(_storable(record), secrets), indent=1, ensure_ascii=False)
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, self.folder / name)
        return f"llm/{name}"
