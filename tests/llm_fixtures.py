"""What the LLM proposer tests share: an event recorder, ``FakeClient`` (a tiny in-test
implementation of the seam ``llm_client.LLMClient``, answering from a script) with a
factory of proposers on it, and the local Messages server with a factory of proposers
talking to it through the real SDK (each test module passes its own key)."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inr_tune.search.proposers import LLMProposer
from inr_tune.search.proposers.llm_client import CallError, ToolCall
from inr_tune.search.proposers.llm_tools import BATCH_TOOL, REVIEW_TOOL
from inr_tune.search.proposers.text import redact
from tests.messages_server import MessagesServer

MODEL = "claude-test-model"


class Recorder:
    """A ``log`` callable that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [f for e, f in self.events if e == event]


@dataclass
class Asked:
    """One call made through the seam."""

    system: str
    messages: list[dict[str, Any]]
    tool: dict[str, Any]


Answer = ToolCall | CallError


class FakeClient:
    """The seam (``call``, ``redact``, ``close``) answering from a script: each call takes
    the next scripted answer, then ``default(asked)``, else an ``api_error``. A scripted
    ``ToolCall`` of another tool than the one forced becomes ``no_tool_use``, as the real
    client reports it."""

    def __init__(
        self,
        *answers: Answer,
        default: Callable[[Asked], Answer] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.answers: deque[Answer] = deque(answers)
        self.default = default
        self.secrets = secrets
        self.asked: list[Asked] = []
        self.closed = False

    def call(self, system: str, messages: list[dict[str, Any]], tool: dict[str, Any]) -> Answer:
        asked = Asked(system, messages, tool)
        self.asked.append(asked)
        if self.answers:
            answer = self.answers.popleft()
        elif self.default is not None:
            answer = self.default(asked)
        else:
            return CallError("api_error", "APIStatusError: Error code: 500 - nothing scripted")
        if isinstance(answer, ToolCall) and answer.name != tool["name"]:
            return CallError("no_tool_use", f"the answer did not call {tool['name']}")
        return self.redact(answer) if isinstance(answer, ToolCall) else answer

    def redact(self, value: Any) -> Any:
        if isinstance(value, ToolCall):
            return dataclasses.replace(value, input=self.redact(value.input))
        return redact(value, self.secrets)

    def close(self) -> None:
        self.closed = True


def batch_call(
    proposals: Any, observations: list[Any] | None = None, ack: str = "", **tokens: Any
) -> ToolCall:
    """A ``submit_batch`` call with this input."""
    tool_input = {"observations": observations or [], "proposals": proposals}
    return ToolCall(BATCH_TOOL, {**tool_input, "acknowledgement": ack}, **tokens)


def review_call(**tool_input: Any) -> ToolCall:
    """A ``submit_review`` call with this input."""
    return ToolCall(REVIEW_TOOL, tool_input)


def fakes(key: str, run_dir: Path, log: Recorder) -> Callable[..., tuple[LLMProposer, FakeClient]]:
    """``build(*answers, default=None, **overrides) -> (proposer, its FakeClient)``."""

    def build(
        *answers: Answer, default: Callable[[Asked], Answer] | None = None, **kw: Any
    ) -> tuple[LLMProposer, FakeClient]:
        client = FakeClient(*answers, default=default, secrets=(key,))
        args: dict[str, Any] = {"run_dir": run_dir, "log": log, "client": client}
        args.update(kw)
        return LLMProposer(MODEL, **args), client

    return build


@pytest.fixture
def server() -> Iterator[MessagesServer]:
    with MessagesServer() as s:
        yield s


@pytest.fixture
def log() -> Recorder:
    return Recorder()


def proposers(
    key: str, server: MessagesServer, run_dir: Path, log: Recorder
) -> Iterator[Callable[..., LLMProposer]]:
    """Yields ``build(**overrides) -> LLMProposer`` on ``server``; closes them afterwards."""
    made: list[LLMProposer] = []

    def build(**kw: Any) -> LLMProposer:
        args: dict[str, Any] = {
            "api_key": key,
            "base_url": server.url,
            "timeout_s": 10.0,
            "max_retries": 0,
            "run_dir": run_dir,
            "log": log,
        }
        args.update(kw)
        proposer = LLMProposer(MODEL, **args)
        made.append(proposer)
        return proposer

    yield build
    for p in made:
        p.close()
