# ruff: noqa: F811  (test arguments named after the imported fixtures)
"""LLMProposer and the reports against hostile answers (issue 12 §1).

A 200 answer that is not a message (an HTML error page, a JSON array), a lone surrogate in
the tool input, an API key echoed back, a server that drips a valid answer one byte at a
time, and surplus proposals in the correction turn: the real ``anthropic`` client talks to
``tests.messages_server``. Model text built to forge analysis.md entries or to drive a
terminal, and errors no check foresaw: through the seam (``tests.llm_fixtures.FakeClient``).
The reports are rendered from the journal.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inr_tune.config_files import load_config
from inr_tune.journal import Journal, read_events
from inr_tune.reports.analysis import render_analysis
from inr_tune.reports.memory import render_memory
from inr_tune.search.proposers import LLMProposer, Proposer, RuleProposer, llm_parse
from inr_tune.search.proposers.llm_tools import BATCH_TOOL, REVIEW_TOOL
from inr_tune.search.session import replay_tree
from inr_tune.search.tree import Node, Tree

# the shared fixtures log and server are imported by name (pytest finds them so)
from tests.llm_fixtures import (  # noqa: F401
    MODEL,
    FakeClient,
    Recorder,
    batch_call,
    fakes,
    log,
    proposers,
    review_call,
    server,
)
from tests.messages_server import MessagesServer, Reply, rate_limited, tool_use
from tests.proposer_contract import MPM_CLASSES, grow, make_state

KEY = "sk-ant-test-h0stile-KEY-0123456789"

# Newlines that forge entries, then NUL, BEL, CR, an ANSI clear-screen and a title change.
FORGED = "lower lr\n## Iter 99: excellent\n# Block 7: F @ 1 frames\n\n## Block 7 summary\n"
CONTROLS = "\x00\x07\r\x1b[2J\x1b]0;pwned\x07\x1b[31m"
HOSTILE = f"{FORGED}{CONTROLS} done"
HOSTILE_PLAIN = "lower lr ## Iter 99: excellent # Block 7: F @ 1 frames ## Block 7 summary done"


@pytest.fixture
def make(
    server: MessagesServer, tmp_path: Path, log: Recorder
) -> Iterator[Callable[..., LLMProposer]]:
    yield from proposers(KEY, server, tmp_path / "run", log)


@pytest.fixture
def fake(tmp_path: Path, log: Recorder) -> Callable[..., tuple[LLMProposer, FakeClient]]:
    return fakes(KEY, tmp_path / "run", log)


def item(parent: int | None, param: str | None, value: Any, **kw: Any) -> dict[str, Any]:
    out = {
        "parent": parent,
        "param": param,
        "value": value,
        "strategy": "exploit",
        "hypothesis": "a reason",
        "expect": "improve",
    }
    return {**out, **kw}


def answer(proposals: list[Any], observations: list[Any] | None = None, ack: str = "") -> Reply:
    return tool_use(
        BATCH_TOOL,
        {"observations": observations or [], "proposals": proposals, "acknowledgement": ack},
    )


def review(text: str = "the block", rules: list[str] | None = None) -> Reply:
    return tool_use(
        REVIEW_TOOL,
        {
            "summary": text,
            "principles": [text],
            "open_questions": [text],
            "next_ucb_c": 1.0,
            "new_rules": rules if rules is not None else [text],
        },
    )


def two_node_tree() -> Tree:
    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    grow(tree, base.id, {"omega": 12.0}, 0.995)
    return tree


def assert_plain(text: str) -> None:
    """One line of printable text that no markdown block starts."""
    assert all(ch.isprintable() for ch in text), repr(text)
    assert not re.match(r"(#|>|[-*+](\s|$)|\d+[.)]|```|~~~|\||<|=)", text), text


def assert_clean_file(text: str) -> None:
    """A text file safe to grep and cat: only newlines and printable characters."""
    bad = sorted({ch for ch in text if ch != "\n" and not ch.isprintable()})
    assert not bad, bad
    text.encode("utf-8")  # no lone surrogate


def saved(tmp_path: Path, n: int = 1) -> dict[str, Any]:
    data = (tmp_path / "run" / "llm" / f"call_{n:03d}.json").read_bytes()
    return json.loads(data.decode("utf-8"))  # strict UTF-8: no lone surrogate in the file


# ----------------------------------------------------------------------------- bad answers

NOT_A_MESSAGE = {
    "html": Reply(
        body=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        headers={"content-type": "text/html; charset=utf-8"},
    ),
    "json_array": Reply(body=[{"type": "message"}, 2]),
    "json_string": Reply(body=b'"overloaded, try later"'),
}


@pytest.mark.parametrize("kind", list(NOT_A_MESSAGE))
def test_a_200_answer_that_is_not_a_message_falls_back(
    kind: str,
    make: Callable[..., LLMProposer],
    server: MessagesServer,
    log: Recorder,
    tmp_path: Path,
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(NOT_A_MESSAGE[kind], NOT_A_MESSAGE[kind])
    proposer = make()
    batch = proposer.propose(state, 3)
    assert batch == RuleProposer(seed=0).propose(state, 3)
    (call,) = log.of("llm_call")
    assert call["outcome"] == "malformed" and "not a message" in call["error"], call
    (fallback,) = log.of("llm_fallback")
    assert fallback["slots"] == 3 and fallback["reason"].startswith("malformed: ")
    record = saved(tmp_path)
    assert record["outcome"] == "malformed" and record["response"] is None
    assert record["error"] == call["error"]

    got = proposer.review_block(state)
    assert got == Proposer.review_block(proposer, state)
    assert log.of("llm_call")[1]["outcome"] == "malformed"
    assert saved(tmp_path, 2)["outcome"] == "malformed"


def test_a_lone_surrogate_in_the_tool_input_falls_back(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder, tmp_path: Path
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(
        answer([item(2, "lr", 5e-5, hypothesis="bad \ud800 text")]), review("sum \udfff mary")
    )
    proposer = make()
    batch = proposer.propose(state, 2)
    assert batch == RuleProposer(seed=0).propose(state, 2)
    (call,) = log.of("llm_call")
    assert call["outcome"] == "malformed" and "surrogate" in call["error"], call
    assert log.of("llm_fallback")[0]["reason"].startswith("malformed: ")
    assert saved(tmp_path)["outcome"] == "malformed"

    assert proposer.review_block(state) == Proposer.review_block(proposer, state)
    assert log.of("llm_call")[1]["outcome"] == "malformed"
    assert saved(tmp_path, 2)["outcome"] == "malformed"


def test_model_text_becomes_one_line_of_plain_text(
    fake: Callable[..., tuple[LLMProposer, FakeClient]],
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2], user_input="Focus on omega.")
    obs = [
        {"node_id": 1, "observation": "# heading\nsecond", "visual": "> quote\r\n- item"},
        {"node_id": 2, "observation": HOSTILE, "visual": "1. first\n2. second"},
    ]
    proposer, _ = fake(
        batch_call([item(2, "lr", 5e-5, hypothesis=HOSTILE)], obs, ack=f"ok\n{FORGED}"),
        review_call(
            summary=HOSTILE,
            principles=[HOSTILE],
            open_questions=[HOSTILE],
            next_ucb_c=1.0,
            new_rules=["| a | b |", "```sh", "=== big"],
        ),
    )
    batch = proposer.propose(state, 1)
    (p,) = batch.proposals
    assert p.hypothesis == HOSTILE_PLAIN
    notes = {n.node_id: n for n in batch.notes}
    assert notes[1].observation == r"\# heading second" and notes[1].visual == r"\> quote - item"
    assert notes[2].observation == HOSTILE_PLAIN and notes[2].visual == r"1\. first 2. second"
    for text in [p.hypothesis, *batch.remarks, *[n.observation for n in notes.values()]]:
        assert_plain(text)
    assert "acknowledgement: ok lower lr ## Iter 99: excellent" in batch.remarks[0]

    got = proposer.review_block(state)
    assert got.summary.endswith(" " + HOSTILE_PLAIN)
    assert got.principles == [HOSTILE_PLAIN] and got.open_questions == [HOSTILE_PLAIN]
    assert got.new_rules == [r"\| a | b |", r"\```sh", r"\=== big"]
    for text in [got.summary, *got.principles, *got.open_questions, *got.new_rules]:
        assert_plain(text)


def test_reports_render_free_text_as_one_plain_line(tmp_path: Path) -> None:
    """Defensively, at rendering: a journal written before the proposer cleaned its text."""
    root = load_config(None, ["data.n_frames=24"])
    nodes = [
        Node(1, None, 1, root.to_dict(), {}, "baseline", HOSTILE).to_dict(),
        Node(2, 1, 1, root.to_dict(), {"lr": [1e-4, 2e-4]}, "exploit", "# x\ud800").to_dict(),
    ]
    events: list[dict[str, Any]] = [
        {"event": "block_start", "block": 1, "field": "F", "n_frames": 24, "ucb_c": 1.4},
        {"event": "batch_added", "block": 1, "nodes": nodes},
        {"event": "node_completed", "node_id": 1, "status": "ok", "metrics": {"final_r2": 0.99}},
        {"event": "node_completed", "node_id": 2, "status": "failed", "error": HOSTILE},
        {"event": "node_noted", "node_id": 1, "observation": HOSTILE, "visual": HOSTILE},
        {"event": "node_noted", "node_id": 2, "observation": "- x\n- y", "visual": None},
        {"event": "user_input", "text": f"try\x1b[2J {CONTROLS}", "problems": [HOSTILE]},
        {"event": "proposer_remarks", "block": 1, "remarks": [HOSTILE]},
    ]
    end = {
        "event": "block_end",
        "block": 1,
        "field": "F",
        "n_frames": 24,
        "best": 1,
        "summary": HOSTILE,
        "principles": [HOSTILE],
        "open_questions": [HOSTILE],
        "next_ucb_c": 1.0,
        "new_rules": [HOSTILE],
    }
    for evs in (events, [*events, end]):
        tree = replay_tree(evs)
        for text in (
            render_analysis(evs, tree, MPM_CLASSES, "t"),
            render_memory(evs, tree, MPM_CLASSES, "t"),
        ):
            assert_clean_file(text)
            assert re.findall(r"^#+ (?:Iter|Block) \d+", text, re.M) in (
                ["# Block 1"],  # analysis.md: the entries wait for the next batch
                ["# Block 1", "## Iter 1", "## Iter 2", "## Block 1"],
                [],  # memory.md
            ), text
            assert HOSTILE_PLAIN in text
            assert not re.search(r"^(- x|\d+\. )", text, re.M)
            for line in text.splitlines():
                if line.startswith("| "):  # a table row keeps its 15 cells
                    assert line.count("|") == 16, line


# ----------------------------------------------------------------------------- the key


def test_an_echoed_key_is_redacted_everywhere(tmp_path: Path, server: MessagesServer) -> None:
    """A block (results drawn, no training) whose every answer echoes the API key: not in
    the journal, the call records, analysis.md, memory.md, nor in later prompts."""
    from tests.helpers import rule_session

    echo = f"I was told {KEY}\n# Block 9\x1b[2J"
    batches = iter(
        [
            [item(None, None, None, strategy="baseline", hypothesis=echo), item(None, "lr", 2e-4)],
            [item(1, "lr", 5e-5, hypothesis=echo), item(1, "omega", 12.0, hypothesis=echo)],
        ]
    )
    obs = [{"node_id": i, "observation": echo, "visual": echo} for i in range(1, 5)]

    def reply(body: dict[str, Any]) -> Reply:
        if body["tool_choice"]["name"] == REVIEW_TOOL:
            return review(echo, rules=[echo])
        return answer(next(batches, []), obs, ack=echo)

    server.default = reply
    root = load_config(None, ["data.n_frames=24", "search.min_ratio=1", "search.seed_reruns=0"])
    session = rule_session(tmp_path, root, n_iter=4, parallel=2)
    ctx = session.ctx
    ctx.proposer = LLMProposer(
        MODEL, api_key=KEY, base_url=server.url, max_retries=0, run_dir=tmp_path, log=ctx.log
    )
    ctx.memory = lambda: render_memory(ctx.journal.events, ctx.tree, MPM_CLASSES, "t")
    (tmp_path / "user_input.md").write_text("Focus on omega.\n")
    ctx.log("block_start", block=1, field="F", n_frames=24, root_config=root.to_dict(), ucb_c=1.4)
    for _ in range(2):
        batch = []
        while isinstance(node := session.next_trial(), Node):
            batch.append(node)
        assert batch
        for n in batch:
            session.complete(n.id, "ok", {"final_r2": 0.99 + n.id / 1000}, None)
    session.finish()
    ctx.proposer.close()

    events = read_events(tmp_path / "journal.jsonl")
    hyps = [n["hypothesis"] for e in events if e["event"] == "batch_added" for n in e["nodes"]]
    assert "I was told [redacted] # Block 9" in hyps
    tree = replay_tree(events)
    assert tree[1].observation == "I was told [redacted] # Block 9"
    analysis = render_analysis(events, tree, MPM_CLASSES, "t")
    memory = render_memory(events, tree, MPM_CLASSES, "t")
    assert "Proposer: acknowledgement: I was told [redacted] # Block 9" in analysis
    for text in (analysis, memory):
        assert "[redacted]" in text
        assert_clean_file(text)
    assert re.findall(r"^## Iter (\d+)", analysis, re.M) == ["1", "2", "3", "4"]
    assert re.findall(r"^#+ Block \d+", analysis + memory, re.M) == ["# Block 1", "## Block 1"]
    assert len(server.requests) >= 4
    for body in server.requests:
        assert KEY not in json.dumps(body)
    assert "[redacted]" in json.dumps(server.requests[-1])  # memory.md went back, cleaned
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_the_journal_redacts_the_key_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "short")  # too short to be told from text
    with Journal(tmp_path / "journal.jsonl") as journal:
        journal.append("node_completed", node_id=1, error=f"401 for {KEY}", tags={KEY: [KEY]})
        journal.append("user_input", text="a short note")
    data = (tmp_path / "journal.jsonl").read_text()
    assert KEY not in data and "401 for [redacted]" in data and "a short note" in data
    assert read_events(tmp_path / "journal.jsonl")[0]["tags"] == {"[redacted]": ["[redacted]"]}


# ----------------------------------------------------------------------------- time limit


def _drip(reply: Reply, seconds: float) -> Reply:
    return dataclasses.replace(reply, drip_s=seconds)


@pytest.mark.parametrize("kind", ["drip", "retry_after"])
def test_the_time_limit_bounds_the_whole_call(
    kind: str, make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder
) -> None:
    """A valid answer sent one byte every 0.5 s, or a 429 asking for a 30 s wait: the
    call gives up after ``timeout_s`` of wall clock, the SDK's retries included."""
    state = make_state(two_node_tree(), finished=[1, 2])
    if kind == "drip":
        server.push(_drip(answer([item(2, "lr", 5e-5)]), 0.5))
    else:
        server.push(rate_limited("30"), answer([item(2, "lr", 5e-5)]))
    start = time.monotonic()
    batch = make(timeout_s=2.0, max_retries=1).propose(state, 2)
    took = time.monotonic() - start
    assert took < 3.0, f"the call took {took:.1f} s against a 2 s limit"
    assert batch == RuleProposer(seed=0).propose(state, 2)
    (call,) = log.of("llm_call")
    assert call["outcome"] == "timeout" and "2 s" in call["error"], call
    assert 1.9 <= call["latency_s"] < 3.0
    assert log.of("llm_fallback")[0]["reason"].startswith("timeout: ")
    if kind == "drip":  # the abandoned request stops too, it does not drip on unseen
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(
            t.name == "llm-call" for t in threading.enumerate()
        ):
            time.sleep(0.05)
        assert not any(t.name == "llm-call" for t in threading.enumerate())


# ----------------------------------------------------------------------------- retry turn


def test_extra_proposals_in_the_retry_turn_are_recorded(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(
        answer([item(2, "lr", 5e-5), item(2, "omega", 500.0)]),
        answer([item(2, "omega", 18.0), item(2, "omega", 16.0), item(1, "omega", 10.0)]),
    )
    batch = make().propose(state, 2)
    assert len(batch.proposals) == 2 and batch.proposals[1].mutation == {"omega": 18.0}
    assert batch.remarks == [
        "the retry proposed 3 trials for 1 rejected slot; the last 2 were ignored"
    ]
    assert [c["outcome"] for c in log.of("llm_call")] == ["invalid", "ok"]


def test_an_unforeseen_error_falls_back_with_its_reason(
    fake: Callable[..., tuple[LLMProposer, FakeClient]],
    log: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("no check foresaw this")

    state = make_state(two_node_tree(), finished=[1, 2])
    proposer, _ = fake(
        batch_call([item(2, "lr", 5e-5)]),
        review_call(summary="s", principles=[], open_questions=[], next_ucb_c=1.0, new_rules=[]),
    )
    monkeypatch.setattr(llm_parse, "read_notes", broken)
    monkeypatch.setattr(llm_parse, "read_review", broken)
    assert proposer.propose(state, 2) == RuleProposer(seed=0).propose(state, 2)
    assert proposer.review_block(state) == RuleProposer(seed=0).review_block(state)
    assert log.of("llm_fallback") == [
        {"slots": 2, "reason": "proposer error: RuntimeError: no check foresaw this"},
        {"slots": 0, "reason": "review proposer error: RuntimeError: no check foresaw this"},
    ]
