"""The calls of ``LLMProposer``: each asked through the seam (``llm_client.LLMClient``),
kept in ``run_dir/llm/call_NNN.json`` and logged.

Every call is logged as ``log("llm_call", purpose, model, latency_s, input_tokens,
output_tokens, outcome, attempt, response_file, error)``. With a run directory the full
answer (the response JSON, or the text of an answer that was not a message, and the
error) and the request (images elided) go to ``run_dir/llm/call_NNN.json``, numbered on
from the files already there. Every text written or logged is scrubbed of the client's
secrets; a logged text field is one line of at most ``MAX_LOGGED`` characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inr_tune.fileio import write_durable
from inr_tune.search.proposers.llm_client import (
    CallError,
    LLMClient,
    Message,
    ToolCall,
    finite_json,
)
from inr_tune.search.proposers.text import one_line, shorten

__all__ = ["Calls", "Turn", "elide_images"]

MAX_LOGGED = 2000  # characters kept of a text field of a logged event

Log = Callable[..., Any]


@dataclass
class Turn:
    """One call: what was asked (``purpose``, ``attempt``: 2 is the retry turn) and got."""

    purpose: str
    attempt: int
    system: str
    messages: list[Message]
    result: ToolCall | CallError

    @property
    def tool_call(self) -> ToolCall | None:
        return self.result if isinstance(self.result, ToolCall) else None

    @property
    def failure(self) -> str:
        """``outcome: error`` of a failed call (the reason of a fallback)."""
        r = self.result
        return f"{r.outcome}: {r.error}" if isinstance(r, CallError) else "ok: None"


class Calls:
    """Asks ``client``, keeps each call's record and logs it (module docstring)."""

    def __init__(
        self, client: LLMClient, model: str, run_dir: Path | None, log: Log | None
    ) -> None:
        self.client = client
        self.model = model
        self.folder = run_dir / "llm" if run_dir is not None else None
        self._log = log
        self._n: int | None = None

    def ask(
        self,
        purpose: str,
        attempt: int,
        system: str,
        messages: list[Message],
        tool: dict[str, Any],
    ) -> Turn:
        """One call of ``tool`` (not logged yet: ``done`` logs it with its outcome)."""
        return Turn(purpose, attempt, system, messages, self.client.call(system, messages, tool))

    def done(self, turn: Turn, outcome: str | None = None, error: str | None = None) -> None:
        """Record and log ``turn``. A tool call's outcome is ``outcome`` (the proposer's
        verdict on its input: ``ok``, ``invalid``); a failed call keeps its own."""
        r = turn.result
        if isinstance(r, CallError):
            outcome, error = r.outcome, r.error
        response_file = self._write(turn, outcome or "ok", error)
        self.emit(
            "llm_call",
            purpose=turn.purpose,
            model=self.model,
            latency_s=r.latency_s,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            outcome=outcome or "ok",
            attempt=turn.attempt,
            response_file=response_file,
            error=error,
        )

    def emit(self, event: str, **fields: Any) -> None:
        """Log ``event``; each text field one line, scrubbed of the secrets, shortened."""
        if self._log is not None:
            self._log(event, **_logged(fields, self.client.redact))

    def _write(self, turn: Turn, outcome: str, error: str | None) -> str | None:
        """Write the record of ``turn``; its path relative to the run directory."""
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._n is None:
            found = [re.fullmatch(r"call_(\d+)\.json", p.name) for p in self.folder.iterdir()]
            self._n = max((int(m.group(1)) for m in found if m), default=0)
        self._n += 1
        name = f"call_{self._n:03d}.json"
        r = turn.result
        raw = r.raw if isinstance(r, CallError) else None
        record = {
            "purpose": turn.purpose,
            "attempt": turn.attempt,
            "model": self.model,
            "outcome": outcome,
            "latency_s": r.latency_s,
            "error": error,
            "response": r.response,
            **({"raw_answer": raw} if raw is not None else {}),
            "request": {"system": turn.system, "messages": elide_images(turn.messages)},
        }
        text = json.dumps(self.client.redact(_storable(record)), indent=1, ensure_ascii=False)
        write_durable(self.folder / name, text + "\n")
        return f"llm/{name}"


def _logged(value: Any, redact: Callable[[Any], Any]) -> Any:
    """An event field as logged: each string one line, secrets redacted, then shortened."""
    if isinstance(value, str):
        return shorten(redact(one_line(value)), MAX_LOGGED)
    if isinstance(value, Mapping):
        return {k: _logged(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_logged(v, redact) for v in value]
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


def elide_images(messages: list[Message]) -> list[Message]:
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
