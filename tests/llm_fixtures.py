"""What the LLM proposer tests share: an event recorder, the local Messages server and a
factory of proposers talking to it (each test module passes its own key)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inr_tune.search.proposers import LLMProposer
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
