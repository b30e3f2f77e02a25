"""The journal's typed records (``inr_tune.journal``), the one JSON sanitiser and the one
atomic writer (``inr_tune.fileio``): lines written from records are the lines the string
events wrote, older journals read back, and search/ does not import reports/."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inr_tune import fileio
from inr_tune.errors import InrTuneError
from inr_tune.fileio import jsonable, write_durable
from inr_tune.journal import (
    EVENTS,
    BatchAdded,
    BlockEnd,
    BlockSkipped,
    BlockStart,
    BudgetChanged,
    Event,
    Journal,
    LLMCall,
    LLMFallback,
    LLMNotesDropped,
    NodeAdded,
    NodeCompleted,
    NodeNoted,
    NoProposal,
    OtherEvent,
    ProposalRejected,
    ProposerRemarks,
    ReviewFailed,
    RunEnd,
    RunExtended,
    RunStart,
    UcbCChanged,
    UserInput,
    UserInputRefused,
    as_record,
    read_events,
    read_records,
)
from inr_tune.search.session import replay_tree, unreviewed
from inr_tune.search.tree import Node, Tree

PACKAGE = Path(__file__).resolve().parents[1] / "inr_tune"

NODE = Node(1, None, 1, {"model": {"hidden_dim": 8}}, {}, "baseline", "h").to_dict()

# Each record beside the string event the modules wrote before (fields in their order).
PAIRS: list[tuple[Event, str, dict[str, Any]]] = [
    (
        RunStart(options={"a": 1}, experiment="mpm", dataset="d", content_hash="h", version="v"),
        "run_start",
        {"options": {"a": 1}, "experiment": "mpm", "dataset": "d", "content_hash": "h"}
        | {"version": "v"},
    ),
    (
        BlockStart(block=1, field="F", n_frames=24, root_config={}, ucb_c=1.4, proposer="rule"),
        "block_start",
        {"block": 1, "field": "F", "n_frames": 24, "root_config": {}, "ucb_c": 1.4}
        | {"proposer": "rule", "ranks": None},
    ),
    (
        UserInput(text="t", digest="d", pins={"model.omega": 30}, problems=["p"]),
        "user_input",
        {"text": "t", "digest": "d", "pins": {"model.omega": 30}, "settings": {}}
        | {"problems": ["p"]},
    ),
    (UserInputRefused(block=1, error="e"), "user_input_refused", {"block": 1, "error": "e"}),
    (BudgetChanged(block=1, budget="b"), "budget_changed", {"block": 1, "budget": "b"}),
    (UcbCChanged(block=1, ucb_c=2.0), "ucb_c_changed", {"block": 1, "ucb_c": 2.0}),
    (ProposerRemarks(block=1, remarks=["r"]), "proposer_remarks", {"block": 1, "remarks": ["r"]}),
    (
        NoProposal(block=1, reason="none", reviewed=[1]),
        "no_proposal",
        {"block": 1, "reason": "none", "reviewed": [1]},
    ),
    (
        BatchAdded(block=1, nodes=[NODE], user_input=False, reviewed=[]),
        "batch_added",
        {"block": 1, "nodes": [NODE], "user_input": False, "reviewed": []},
    ),
    (NodeAdded(node=NODE), "node_added", {"node": NODE}),
    (
        ProposalRejected(block=1, source="rule", error="e", parent=1, mutation={"lr": 1e-3}),
        "proposal_rejected",
        {"block": 1, "source": "rule", "error": "e", "parent": 1, "mutation": {"lr": 1e-3}}
        | {"strategy": None},
    ),
    (
        NodeCompleted(node_id=1, status="ok", metrics={"final_r2": 0.9}, error=None),
        "node_completed",
        {"node_id": 1, "status": "ok", "metrics": {"final_r2": 0.9}, "error": None},
    ),
    (
        NodeNoted(node_id=1, observation="o", visual=None),
        "node_noted",
        {"node_id": 1, "observation": "o", "visual": None},
    ),
    (NodeNoted(node_id=1, next_parent=2), "node_noted", {"node_id": 1, "next_parent": 2}),
    (
        NodeNoted(node_id=1, verdict="supported", basis="b"),
        "node_noted",
        {"node_id": 1, "verdict": "supported", "basis": "b"},
    ),
    (ReviewFailed(block=1, error="e"), "review_failed", {"block": 1, "error": "e"}),
    (
        BlockEnd(block=1, field="F", n_frames=24, best=1, summary="s", next_ucb_c=1.0),
        "block_end",
        {"block": 1, "field": "F", "n_frames": 24, "best": 1, "summary": "s"}
        | {"principles": [], "open_questions": [], "next_ucb_c": 1.0, "new_rules": []},
    ),
    (BlockSkipped(block=2, reason="r"), "block_skipped", {"block": 2, "reason": "r"}),
    (RunEnd(seconds=1.5), "run_end", {"seconds": 1.5}),
    (RunExtended(blocks=3), "run_extended", {"blocks": 3}),
    (
        LLMCall(purpose="propose", outcome="ok", attempt=1),
        "llm_call",
        {"purpose": "propose", "model": None, "latency_s": None, "input_tokens": None}
        | {"output_tokens": None, "outcome": "ok", "attempt": 1, "response_file": None}
        | {"error": None},
    ),
    (LLMFallback(slots=2, reason="r"), "llm_fallback", {"slots": 2, "reason": "r"}),
    (LLMNotesDropped(reasons=["x"]), "llm_notes_dropped", {"reasons": ["x"]}),
]


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        del e["time"]
        out.append(e)
    return out


def test_every_event_has_a_record_and_records_write_the_same_lines(tmp_path: Path) -> None:
    assert {type(r) for r, _, _ in PAIRS} == set(EVENTS.values())
    with Journal(tmp_path / "typed.jsonl") as typed, Journal(tmp_path / "plain.jsonl") as plain:
        for record, name, data in PAIRS:
            assert record.name == name
            typed.append(record)
            plain.append(name, **data)
    # byte for byte but the time stamps: same keys, same order, same values
    a, b = (tmp_path / "typed.jsonl").read_text(), (tmp_path / "plain.jsonl").read_text()
    strip = [json.dumps(e, separators=(",", ":")) for e in _lines(tmp_path / "typed.jsonl")]
    assert strip == [json.dumps(e, separators=(",", ":")) for e in _lines(tmp_path / "plain.jsonl")]
    assert len(a.splitlines()) == len(b.splitlines()) == len(PAIRS)
    # and they read back as the records they were (seq and time aside)
    back = read_records(tmp_path / "typed.jsonl")
    assert back == [r for r, _, _ in PAIRS]
    assert [r.seq for r in back] == list(range(1, len(PAIRS) + 1))
    assert all(isinstance(r.time, float) for r in back)


def test_journal_reads_typed_and_plain(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as j:
        j.append(BlockStart(block=1, field="F", n_frames=24, ucb_c=1.0))
        j.append("node_completed", node_id=1, status="ok", metrics={}, error=None)
        j.append(BlockStart(block=2, field="F", n_frames=48, ucb_c=2.0))
        assert [r.block for r in j.select(BlockStart)] == [1, 2]
        last = j.latest(BlockStart)
        assert last is not None and last.block == 2 and last.seq == 3
        assert j.latest(RunEnd) is None
        assert j.last("block_start")["block"] == 2 and len(j.of("node_completed")) == 1
        with pytest.raises(TypeError):
            j.append(RunEnd(), seconds=1.0)
    again = Journal(tmp_path / "j.jsonl")
    assert [type(r) for r in again.records] == [BlockStart, NodeCompleted, BlockStart]
    again.close()


def test_older_journals_read_back(tmp_path: Path) -> None:
    """Lines from before a field existed, node_added lines, unknown events and fields."""
    lines = [
        {"seq": 1, "time": 1.0, "event": "run_start", "options": {}, "dataset": "d"},
        {"seq": 2, "time": 1.0, "event": "block_start", "block": 1, "field": "F", "n_frames": 24},
        {"seq": 3, "time": 1.0, "event": "node_added", "node": NODE},
        {"seq": 4, "time": 1.0, "event": "batch_added", "block": 1, "nodes": [{**NODE, "id": 2}]},
        {"seq": 5, "time": 1.0, "event": "node_completed", "node_id": 1, "status": "ok"},
        {"seq": 6, "time": 1.0, "event": "user_input", "text": "hi", "pins": {}},
        {"seq": 7, "time": 1.0, "event": "something_new", "x": [1]},
        {"seq": 8, "time": 1.0, "event": "node_noted", "node_id": 1, "mood": "good"},
        {"seq": 9, "time": 1.0, "event": "node_completed", "node_id": 2, "status": "failed"},
        {"seq": 10, "time": 1.0, "event": "no_proposal", "block": 1, "reason": "r"},
    ]
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    records = read_records(path)
    start = records[1]
    assert isinstance(start, BlockStart) and start.root_config == {} and start.ranks is None
    batch = records[3]
    assert isinstance(batch, BatchAdded) and batch.reviewed is None and not batch.user_input
    user = records[5]
    assert isinstance(user, UserInput) and user.settings == {} and user.problems == []
    other = records[6]
    assert isinstance(other, OtherEvent) and other.name == "something_new"
    assert other.extra == {"x": [1]} and other.line() == lines[6]
    noted = records[7]
    assert isinstance(noted, NodeNoted) and noted.extra == {"mood": "good"}
    assert noted.line() == lines[7]
    tree = Tree.replay(records)
    assert [n.id for n in tree.nodes] == [1, 2] and tree[2].status == "failed"
    assert replay_tree(read_events(path)).to_dict() == tree.to_dict()
    # node 1 finished before the batch_added line without ``reviewed``: seen by that call;
    # node 2 finished before the no_proposal line without it: seen too
    assert unreviewed(read_events(path), 1) == []
    # appended to, an old journal keeps its lines and unknown fields as they were
    with Journal(path) as j:
        j.append(other)
        j.append(noted)
    assert [e["x"] for e in read_events(path) if e["event"] == "something_new"] == [[1], [1]]


def test_unreviewed_follows_the_reviewed_lists() -> None:
    node = {**NODE, "id": 3}
    records = [
        BatchAdded(block=1, nodes=[NODE, {**NODE, "id": 2}], reviewed=[]),
        NodeCompleted(node_id=1, status="ok"),
        NodeCompleted(node_id=2, status="ok"),
        BatchAdded(block=1, nodes=[node], reviewed=[1]),
    ]
    events = [r.line() for r in records]
    assert unreviewed(events, 1) == [2]
    assert unreviewed([*events, NoProposal(block=1, reviewed=[2]).line()], 1) == []
    assert unreviewed(events, 2) == []


def test_a_line_without_a_required_field_says_which(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"seq":4,"time":1,"event":"node_completed","node_id":3}\n')
    with pytest.raises(InrTuneError, match=r"node_completed \(line 4\) lacks status"):
        read_records(path)
    with pytest.raises(InrTuneError, match="not a journal event"):
        as_record({"node_id": 1})


def test_the_tree_replays_records_and_returns_the_node() -> None:
    tree = Tree()
    added = tree.apply_event(BatchAdded(block=1, nodes=[NODE, {**NODE, "id": 2, "parent": 1}]))
    assert added is not None and added.id == 2 and len(tree) == 2
    done = tree.apply_event(NodeCompleted(node_id=1, status="ok", metrics={"x": math.nan}))
    assert done is tree[1] and tree[1].metrics == {"x": None}
    tree.apply_event(NodeNoted(node_id=1, observation="o"))
    tree.apply_event(NodeNoted(node_id=1, verdict="supported", basis="b"))
    assert (tree[1].observation, tree[1].verdict, tree[1].verdict_basis) == ("o", "supported", "b")
    assert tree.apply_event(RunEnd(seconds=1.0)) is None
    assert tree.apply_event(NodeAdded(node={**NODE, "id": 3})) is tree[3]


def test_the_journal_sanitises_numbers_and_redacts_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ant-0123456789abcdef"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    with Journal(tmp_path / "j.jsonl") as j:
        j.append(
            NodeCompleted(
                node_id=np.int64(1),  # type: ignore[arg-type]
                status="failed",
                metrics={"r2": np.float32(0.5), "nan": math.inf, "arr": np.arange(2), 3: (1, 2)},
                error=f"401 for {key}",
            )
        )
    text = (tmp_path / "j.jsonl").read_text()
    assert key not in text
    (done,) = read_records(tmp_path / "j.jsonl")
    assert isinstance(done, NodeCompleted) and done.node_id == 1
    assert done.metrics == {"r2": 0.5, "nan": None, "arr": [0, 1], "3": [1, 2]}
    assert done.error == "401 for [redacted]"


# ----------------------------------------------------------------------------- fileio


def test_jsonable() -> None:
    value = {
        "a": [math.nan, -math.inf, 1.5, (1, "x")],
        1: np.float64(2.0),
        "n": np.array([[1, 2]]),
        "b": np.bool_(True),
        "p": Path("/x/y"),
        "none": None,
    }
    out = jsonable(value)
    assert out == {
        "a": [None, None, 1.5, [1, "x"]],
        "1": 2.0,
        "n": [[1, 2]],
        "b": True,
        "p": "/x/y",
        "none": None,
    }
    assert type(out["1"]) is float and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)


def test_write_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sub" / "f.txt"
    write_durable(path, "é\r\nx")
    assert path.read_bytes() == "é\r\nx".encode()
    write_durable(path, b"\x00\x01", unique=True)
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]

    def broken(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken)
    for unique in (False, True):
        with pytest.raises(OSError, match="disk full"):
            write_durable(path, "new", unique=unique)
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"], "no temp file left"


# ----------------------------------------------------------------------------- layering


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_search_does_not_import_reports_and_the_journal_neither() -> None:
    for path in sorted((PACKAGE / "search").rglob("*.py")):
        bad = sorted(m for m in _imports(path) if m.startswith("inr_tune.reports"))
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"
    below = _imports(PACKAGE / "journal.py") | _imports(PACKAGE / "fileio.py")
    assert not [m for m in below if m.startswith(("inr_tune.search", "inr_tune.reports"))]
