# ruff: noqa: F811  (test arguments named after the imported fixtures)
"""LLMProposer: prompts, parsing, retry, fallback, call records, secrets.

The logic (what is made of an answer, the retry turn, the fallback, notes, the review) is
tested through the seam: ``tests.llm_fixtures.FakeClient`` answers each
``call(system, messages, tool)`` with a scripted ``ToolCall`` or ``CallError``. The SDK
path (request on the wire, prompt caching, error mapping, 429, 529, a hang, malformed
JSON, text-only answers, the key in headers and never in files) is tested with the real
``anthropic`` client pointed (``base_url``) at ``tests.messages_server``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.budget import Budget
from inr_tune.search.proposers import (
    LLMProposer,
    NodeNote,
    Proposal,
    ProposalBatch,
    Proposer,
    RuleProposer,
    SearchState,
    check_proposal,
)
from inr_tune.search.proposers.llm_client import CallError, ToolCall
from inr_tune.search.proposers.llm_prompts import PNG_MAGIC, render_batch, render_system
from inr_tune.search.proposers.llm_tools import BATCH_TOOL, REVIEW_TOOL, batch_tool, review_tool
from inr_tune.search.space import fmt_value
from inr_tune.search.tree import Tree

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
from tests.messages_server import (
    MessagesServer,
    Reply,
    hang,
    malformed,
    overloaded,
    rate_limited,
    text_only,
    tool_use,
)
from tests.proposer_contract import MPM_SPACE, ProposerContract, check_batch, grow, make_state

KEY = "sk-ant-test-5ecret-KEY-0123456789"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def make(
    server: MessagesServer, tmp_path: Path, log: Recorder
) -> Iterator[Callable[..., LLMProposer]]:
    yield from proposers(KEY, server, tmp_path / "run", log)


@pytest.fixture
def fake(tmp_path: Path, log: Recorder) -> Callable[..., tuple[LLMProposer, FakeClient]]:
    return fakes(KEY, tmp_path / "run", log)


def item(
    parent: int | None,
    param: str | None,
    value: Any,
    strategy: str = "exploit",
    hypothesis: str = "a reason",
    expect: str = "improve",
) -> dict[str, Any]:
    return {
        "parent": parent,
        "param": param,
        "value": value,
        "strategy": strategy,
        "hypothesis": hypothesis,
        "expect": expect,
    }


def answer(
    proposals: list[dict[str, Any]], observations: list[dict[str, Any]] | None = None, ack: str = ""
) -> Reply:
    return tool_use(
        BATCH_TOOL,
        {"observations": observations or [], "proposals": proposals, "acknowledgement": ack},
    )


def as_proposal(raw: dict[str, Any]) -> Proposal:
    mutation = {} if raw["param"] is None else {raw["param"]: raw["value"]}
    expect = None if raw["strategy"] == "baseline" else raw["expect"]
    return Proposal(raw["parent"], mutation, raw["strategy"], raw["hypothesis"], expect)


def two_node_tree() -> Tree:
    """Node 1: the baseline (R² 0.99); node 2: omega 8→12 of node 1 (R² 0.995)."""
    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    grow(tree, base.id, {"omega": 12.0}, 0.995)
    return tree


def tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = messages[-1]
    return [b for b in last["content"] if isinstance(b, dict) and b["type"] == "tool_result"]


# ----------------------------------------------------------------------------- tools, prompts


def _walk_objects(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for v in schema.values():
            yield from _walk_objects(v)
    elif isinstance(schema, list):
        for v in schema:
            yield from _walk_objects(v)


def test_tool_schemas_are_strict() -> None:
    for tool in (batch_tool(MPM_SPACE), review_tool()):
        assert tool["strict"] is True
        objects = list(_walk_objects(tool["input_schema"]))
        assert objects
        for obj in objects:
            assert obj["additionalProperties"] is False
            assert sorted(obj["required"]) == sorted(obj["properties"])
    props = batch_tool(MPM_SPACE)["input_schema"]["properties"]
    proposal = props["proposals"]["items"]["properties"]
    assert proposal["param"]["anyOf"][0]["enum"] == MPM_SPACE.params
    assert proposal["param"]["anyOf"][1] == {"type": "null"}
    assert proposal["strategy"]["enum"] == list(strategies.STRATEGIES)
    assert proposal["expect"]["enum"] == ["improve", "worsen", "same"]
    assert sorted(props) == ["acknowledgement", "observations", "proposals"]
    review = review_tool()["input_schema"]["properties"]
    assert sorted(review) == ["new_rules", "next_ucb_c", "open_questions", "principles", "summary"]


def _prompt_state(**kw: Any) -> SearchState:
    tree = two_node_tree()
    tree[2].metrics.update(kinograph_R2=0.98, kinograph_SSIM=0.91, training_time=12.34)
    tree.note(1, verdict="inconclusive")
    grow(tree, None, {"lr": 2e-4}, None, status="diverged")
    grow(tree, 2, {"hidden_dim": 384}, status="pending")
    args: dict[str, Any] = {
        "finished": [1, 2, 3],
        "memory": "# Memory\nprinciple: wider helps F",
        "brief": "Fit the MPM deformation gradient F.",
        "pinned": {"model.n_layers": 4},
        "rules": ["Branch at least once per batch."],
    }
    args.update(kw)
    return make_state(tree, **args)


def test_system_prompt() -> None:
    text = render_system(_prompt_state())
    assert text.startswith("You choose the trials of a hyperparameter search")
    assert "# The experiment\n\nFit the MPM deformation gradient F.\n\n# Rules\n\n1. " in text
    for i in range(1, 8):
        assert f"\n{i}. " in text
    assert "3. A config that was already tried is refused." in text
    assert "computed by the tool at the block's end, as a test against the seed noise" in text
    for name in strategies.STRATEGIES:
        assert f"\n| {name} | " in text, name
    assert MPM_SPACE.describe() in text
    assert "# Pinned by the user (never change these)\n\n- model.n_layers = 4\n" in text
    assert text.endswith("# This run's own rules\n\n1. Branch at least once per batch.\n")
    empty = render_system(make_state(Tree()))
    assert "(no brief given)" in empty
    assert "# Pinned by the user (never change these)\n\n(none)" in empty


BATCH_TABLE = """\
## Finished batch

| node | parent | mutation | strategy | status | holdout_r2 | final_r2 | compression_ratio | baseline_r2 | nines_over_baseline | kinograph_R2 | kinograph_SSIM | training_time | verdict | error |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| 1 | root | (baseline) | baseline | ok | - | 0.990000 | - | - | - | - | - | - | inconclusive |  |
| 2 | 1 | omega: 8 -> 12 | exploit | ok | - | 0.995000 | - | - | - | 0.980000 | 0.9100 | 12.3 s | - |  |
| 3 | root | lr: 0.0001 -> 0.0002 | exploit | diverged | - | - | - | - | - | - | - | - | - | boom |

Computed comparisons:
- node 1: baseline R² 0.990000
- node 2: R² 0.99500 vs parent 0.99000: better by 0.00500 (+0.30 nines)
- node 3: diverged (no R²); baseline node 1
"""

BATCH_UCB = """\
## UCB scores (ucb_scores.txt)

Node 2: UCB=2.177, parent=1, visits=2, R2=0.995000
Node 3: UCB=1.665, parent=root, visits=1, R2=nan, status=diverged
Node 1: UCB=0.961, parent=root, visits=3, R2=0.990000
"""


def test_batch_prompt() -> None:
    text = render_batch(_prompt_state(user_input="Try a lower lr, please."), 3, [2])
    assert text.startswith(
        "# Block 1: 4 of 8 trials added so far\n\nField: F; frames: 400\n"
        "Quality classes (holdout_r2, the R² on held-out frames never trained on; final_r2 when "
        "none are held out): excellent > 0.995, good ≥ 0.99, moderate ≥ 0.9, poor below\n"
        "Reward: nines; ucb_c: 1.414\nSize budget: none\n\n## Memory (memory.md)\n\n# Memory\n"
        "principle: wider helps F\n"
    )
    assert BATCH_TABLE in text
    assert BATCH_UCB in text
    assert "## Root config of this block\n\nlr=0.0001, hidden_dim=256, n_layers=4, omega=8," in text
    assert "- node 4: hidden_dim=384, omega=12\n" in text
    assert "## Pending trials (still running)\n\n- node 4 (parent 2, hidden_dim: 256 -> 384" in text
    assert "- robustness-test: node 2 is good" in text
    assert "## Steering from the user (user_input.md)\n\nTry a lower lr, please.\n" in text
    assert "acknowledge it in `acknowledgement`" in text
    assert text.endswith(
        "## Your task\n\nCall submit_batch with exactly 3 proposal(s), each a different config, "
        "and one observation for each node of the finished batch table. Field panels (ground "
        "truth vs prediction) are attached for nodes 2; describe each in `visual`.\n"
    )


def test_batch_prompt_at_block_start() -> None:
    text = render_batch(make_state(Tree()), 4)
    assert "## Finished batch\n\n(none: no trial has finished since the last call)" in text
    assert (
        "## UCB scores (ucb_scores.txt)\n\n(empty: block start. Propose the baseline first" in text
    )
    assert "Steering" not in text
    assert "## Strategy triggers (computed in code)\n\n(none: exploit the highest-UCB node)" in text


# ----------------------------------------------------------------------------- good answers


def test_good_answer_is_taken_as_given(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder, tmp_path: Path
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2], user_input="Please try lower lr.")
    raw = [
        item(2, "lr", 5e-5, hypothesis="lower lr steadies ω=12", expect="improve"),
        item(2, "hidden_dim", 384, "explore", "wider net", "same"),
        item(1, "seed", 1, "robustness-test", "seed noise of the baseline", "same"),
        item(None, "loss", "huber", "explore", "robust loss at the root", "worsen"),
    ]
    obs = [
        {"node_id": 1, "observation": "baseline at 0.99", "visual": "smooth field"},
        {"node_id": 2, "observation": "ω=12 gained 0.3 nines", "visual": ""},
    ]
    proposer, client = fake(batch_call(raw, obs, "Will lower lr first."))
    batch = proposer.propose(state, 4)
    assert batch.proposals == [as_proposal(r) for r in raw]
    assert batch.notes == [
        NodeNote(1, "baseline at 0.99", "smooth field"),
        NodeNote(2, "ω=12 gained 0.3 nines", None),
    ]
    assert batch.remarks == ["acknowledgement: Will lower lr first."]
    check_batch(state, batch, 4)

    (asked,) = client.asked
    assert asked.system == render_system(state)
    assert asked.tool == batch_tool(state.space)
    assert asked.messages == [
        {"role": "user", "content": [{"type": "text", "text": render_batch(state, 4, [])}]}
    ]
    (call,) = log.of("llm_call")
    assert call["outcome"] == "ok" and call["attempt"] == 1 and call["purpose"] == "propose"
    assert call["model"] == MODEL and call["error"] is None
    assert call["response_file"] == "llm/call_001.json"
    saved = json.loads((tmp_path / "run" / "llm" / "call_001.json").read_text())
    assert saved["outcome"] == "ok" and saved["request"]["system"] == render_system(state)
    assert not log.of("llm_fallback")


def test_block_start_baseline_with_null_param(
    fake: Callable[..., tuple[LLMProposer, FakeClient]],
) -> None:
    state = make_state(Tree())
    raw = [
        item(None, None, None, "baseline", "the root config as given", "same"),
        item(None, "omega", 12.0, "explore", "higher ω resolves detail"),
    ]
    proposer, _ = fake(batch_call(raw))
    batch = proposer.propose(state, 2)
    assert batch.proposals[0] == Proposal(None, {}, "baseline", "the root config as given", None)
    assert batch.proposals[1] == as_proposal(raw[1])
    assert batch.notes == []
    check_batch(state, batch, 2)


def test_field_panels_are_attached_as_images(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], tmp_path: Path
) -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    for omega in (10.0, 12.0, 14.0, 16.0, 18.0):
        grow(tree, base.id, {"omega": omega}, 0.99)
    pngs = {}
    for node in tree.nodes:
        path = tmp_path / f"field_{node.id}.png"
        data = PNG_MAGIC + bytes([node.id]) * 32
        path.write_bytes(data)
        pngs[node.id] = data
        node.metrics["field_png"] = str(path)
    tree[1].metrics["field_png"] = str(tmp_path / "missing.png")
    (tmp_path / "field_2.png").write_bytes(b"GIF89a not a png")
    state = make_state(tree, finished=[n.id for n in tree.nodes])
    proposer, client = fake(batch_call([]))
    proposer.propose(state, 0)
    content = client.asked[0].messages[0]["content"]
    images = [b for b in content if b["type"] == "image"]
    assert len(images) == 4
    assert [b["text"] for b in content if b["type"] == "text"][1:] == [
        f"Field panel of node {i}:" for i in (3, 4, 5, 6)
    ]
    for block, node_id in zip(images, (3, 4, 5, 6), strict=True):
        assert block["source"]["type"] == "base64"
        assert block["source"]["media_type"] == "image/png"
        assert base64.b64decode(block["source"]["data"]) == pngs[node_id]
    assert "attached for nodes 3, 4, 5, 6" in content[0]["text"]
    saved = (tmp_path / "run" / "llm" / "call_001.json").read_text()
    assert "(base64 PNG," in saved and images[0]["source"]["data"] not in saved


# ----------------------------------------------------------------------------- bad proposals


def _pinned_state() -> SearchState:
    return make_state(two_node_tree(), finished=[1, 2], pinned={"model.omega": 12.0})


BAD = {
    "unknown-param": (item(2, "dropout", 0.1), "unknown parameter 'dropout'"),
    "out-of-range": (item(2, "omega", 500.0), "out of range"),
    "nan": (item(2, "omega", math.nan), "not a finite number"),
    "1e300": (item(2, "lr", 1e300), "out of range"),
    "fast": (item(2, "lr", "fast"), "is not a number"),
    "list-value": (item(2, "lr", [1e-4, 2e-4]), "one number, string, boolean or null"),
    "no-parent": (item(99, "lr", 2e-4), "parent 99 does not exist"),
    "duplicate": (item(1, "omega", 12.0), "already tried as node 2"),
    "pinned": (item(2, "omega", 16.0), "pinned"),
    "seed-outside-robustness": (item(2, "seed", 5), "robustness-test"),
    "bad-strategy": (item(2, "lr", 2e-4, strategy="yolo"), "unknown strategy 'yolo'"),
    "empty-hypothesis": (item(2, "lr", 2e-4, hypothesis="  "), "hypothesis is empty"),
    "over-budget": (item(2, "hidden_dim", 1280), "under the size budget min_ratio 5×"),
}


def _expected_error(state: SearchState, raw: dict[str, Any]) -> str:
    """The error text check_proposal (or the parser) gives for ``raw``: quoted verbatim."""
    if isinstance(raw["value"], list):
        return "value must be one number, string, boolean or null, got [0.0001, 0.0002]"
    if not raw["hypothesis"].strip():
        return "hypothesis is empty: say what the change should do and why"
    with pytest.raises(ProposalError) as err:
        check_proposal(state, as_proposal(raw))
    return str(err.value)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_proposal_is_retried_then_replaced(
    case: str, fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    bad, fragment = BAD[case]
    state = _pinned_state() if case == "pinned" else make_state(two_node_tree(), finished=[1, 2])
    if case == "over-budget":  # 256×4 siren_txy holds 10.9× of a 400×1800×4 window; 1280: 0.4×
        state.check_config = Budget("budget", 5.0, 400, 1800, 4).check
    good = item(2, "lr", 5e-5)
    expected = _expected_error(state, bad)
    assert fragment in expected
    first = batch_call([good, bad])
    proposer, client = fake(first, batch_call([bad]))
    batch = proposer.propose(state, 2)

    assert len(client.asked) == 2, "one retry"
    retry = client.asked[1]
    assert retry.system == client.asked[0].system
    assert retry.messages[:1] == client.asked[0].messages
    assert retry.messages[1] == first.turn()
    (result,) = tool_results(retry.messages)
    assert result["tool_use_id"] == first.id and result["is_error"] is True
    assert expected in result["content"], "the error is quoted verbatim"
    assert "exactly 1 new proposal(s)" in result["content"]
    assert retry.tool["name"] == BATCH_TOOL

    assert batch.proposals[0] == as_proposal(good)
    assert len(batch.proposals) == 2
    assert batch.proposals[1] != as_proposal(bad)
    check_batch(state, batch, 2)
    outcomes = [(c["purpose"], c["attempt"], c["outcome"]) for c in log.of("llm_call")]
    assert outcomes == [("propose", 1, "invalid"), ("retry", 2, "invalid")]
    (fallback,) = log.of("llm_fallback")
    assert fallback["slots"] == 1 and expected in fallback["reason"]


def test_retry_that_fixes_the_proposal(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    good, bad, fixed = item(2, "lr", 5e-5), item(2, "omega", 500.0), item(2, "omega", 18.0)
    proposer, client = fake(batch_call([good, bad]), batch_call([fixed]))
    batch = proposer.propose(state, 2)
    assert batch.proposals == [as_proposal(good), as_proposal(fixed)]
    (result,) = tool_results(client.asked[1].messages)
    assert "Accepted and now pending: parent 2, lr: 0.0001 -> 5e-5 (exploit)." in result["content"]
    assert [c["outcome"] for c in log.of("llm_call")] == ["invalid", "ok"]
    assert not log.of("llm_fallback")


def test_duplicate_inside_one_batch(fake: Callable[..., tuple[LLMProposer, FakeClient]]) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    twice = item(2, "lr", 5e-5)
    proposer, client = fake(batch_call([twice, twice]), batch_call([item(2, "lr", 2.5e-5)]))
    batch = proposer.propose(state, 2)
    assert "already tried as node 3" in tool_results(client.asked[1].messages)[0]["content"]
    assert batch.proposals == [as_proposal(twice), as_proposal(item(2, "lr", 2.5e-5))]


@pytest.mark.parametrize(
    ("tool_input", "error"),
    [
        ({"observations": []}, "has no proposals list"),
        (["not", "an", "object"], 'the submit_batch input must be an object, got ["not", "an"'),
        ({"proposals": [7]}, "proposal 1: a proposal must be an object, got 7"),
        ({"proposals": [{"parent": 2}]}, "proposal is missing param, value, strategy"),
        ({"proposals": [item(2, 7, 1)]}, "param must be a parameter name or null, got 7"),
    ],
    ids=["no-list", "not-object", "not-a-proposal", "missing-keys", "param-not-string"],
)
def test_misshapen_input_retries_every_bad_slot(
    tool_input: Any, error: str, fake: Callable[..., tuple[LLMProposer, FakeClient]]
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    proposer, client = fake(ToolCall(BATCH_TOOL, tool_input), batch_call([item(2, "lr", 5e-5)]))
    batch = proposer.propose(state, 1)
    assert error in tool_results(client.asked[1].messages)[0]["content"]
    assert batch.proposals == [as_proposal(item(2, "lr", 5e-5))]


def test_too_few_and_too_many_proposals(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    proposer, client = fake(batch_call([item(2, "lr", 5e-5)]))
    batch = proposer.propose(state, 3)
    assert len(client.asked) == 1, "a short answer is filled, not retried"
    assert batch.proposals[0] == as_proposal(item(2, "lr", 5e-5)) and len(batch.proposals) == 3
    check_batch(state, batch, 3)
    assert log.of("llm_fallback")[0]["slots"] == 2
    assert "proposed 1 of 3" in log.of("llm_fallback")[0]["reason"]

    proposer, _ = fake(
        batch_call([item(2, "lr", 5e-5), item(2, "lr", 2.5e-5), item(2, "lr", 1e-5)])
    )
    batch = proposer.propose(state, 2)
    assert len(batch.proposals) == 2
    assert batch.remarks == ["the model proposed 3 trials for 2 slots; the last 1 were ignored"]


# ----------------------------------------------------------------------------- notes


def test_observations_only_for_finished_nodes(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    tree = two_node_tree()
    grow(tree, 1, {"lr": 2e-4}, status="pending")
    grow(tree, 1, {"hidden_dim": 384}, 0.993)
    state = make_state(tree, finished=[1, 2])  # node 4 finished earlier, node 3 is pending
    obs = [
        {"node_id": 2, "observation": "ω=12 helped", "visual": "sharper edges"},
        {"node_id": 2, "observation": "again", "visual": ""},
        {"node_id": 3, "observation": "pending", "visual": ""},
        {"node_id": 4, "observation": "not in this batch", "visual": ""},
        {"node_id": 99, "observation": "no such node", "visual": ""},
        {"node_id": "1", "observation": "string id", "visual": ""},
        {"node_id": 1, "observation": "  ", "visual": ""},
    ]
    proposer, _ = fake(batch_call([], obs))
    batch = proposer.propose(state, 0)
    assert batch.proposals == []
    notes = {n.node_id: n for n in batch.notes}
    assert set(notes) == {1, 2}
    assert notes[2] == NodeNote(2, "ω=12 helped", "sharper edges")
    assert notes[1].observation.startswith("baseline R² 0.99000"), "computed when not given"
    (dropped,) = log.of("llm_notes_dropped")
    assert dropped["reasons"] == [
        "node 2: second observation ignored",
        "node 3 is not a finished node of this batch",
        "node 4 is not a finished node of this batch",
        "node 99 is not a finished node of this batch",
        'observation without a node id: {"node_id": "1", "observation": "string id", "visual": ""}',
        "node 1: empty observation",
    ]


def test_nothing_to_do_makes_no_call(fake: Callable[..., tuple[LLMProposer, FakeClient]]) -> None:
    proposer, client = fake()
    assert proposer.propose(make_state(two_node_tree()), 0) == ProposalBatch()
    assert client.asked == []


# ----------------------------------------------------------------------------- failures


def _rule_batch(state: SearchState, n: int) -> ProposalBatch:
    return RuleProposer(seed=0).propose(state, n)


@pytest.mark.parametrize(
    "error",
    [
        CallError("timeout", "no complete answer within 2 s"),
        CallError("api_error", "APIStatusError: 529 overloaded"),
        CallError("no_tool_use", "the answer did not call submit_batch (content: text)"),
        CallError("malformed", "the answer is not a message object but str: <html>"),
    ],
    ids=lambda e: e.outcome,
)
def test_a_failed_call_gives_the_batch_to_the_fallback(
    error: CallError,
    fake: Callable[..., tuple[LLMProposer, FakeClient]],
    log: Recorder,
    tmp_path: Path,
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    proposer, client = fake(error)
    assert proposer.propose(state, 3) == _rule_batch(state, 3)
    assert len(client.asked) == 1
    (call,) = log.of("llm_call")
    assert (call["outcome"], call["error"]) == (error.outcome, error.error)
    (fallback,) = log.of("llm_fallback")
    assert fallback == {"slots": 3, "reason": f"{error.outcome}: {error.error}"}
    saved = json.loads((tmp_path / "run" / "llm" / "call_001.json").read_text())
    assert saved["outcome"] == error.outcome and saved["error"] == error.error


def test_retry_call_failing_keeps_the_good_slots(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    proposer, _ = fake(
        batch_call([item(2, "lr", 5e-5), item(2, "omega", 500.0)]),
        CallError("api_error", "APIStatusError: 529 overloaded"),
    )
    batch = proposer.propose(state, 2)
    assert batch.proposals[0] == as_proposal(item(2, "lr", 5e-5)) and len(batch.proposals) == 2
    check_batch(state, batch, 2)
    assert [c["outcome"] for c in log.of("llm_call")] == ["invalid", "api_error"]
    assert "retry failed (api_error" in log.of("llm_fallback")[0]["reason"]


def test_the_fallback_fills_only_what_the_model_left(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    """The fallback sees the accepted proposals as pending nodes: no repeat of them."""
    state = make_state(two_node_tree(), finished=[1, 2])
    rule_first = _rule_batch(state, 1).proposals[0]
    taken = {"parent": rule_first.parent, "strategy": rule_first.strategy}
    taken["expect"] = rule_first.expect
    ((param, value),) = rule_first.mutation.items()
    proposer, _ = fake(batch_call([item(param=param, value=value, **taken)]))
    batch = proposer.propose(state, 3)
    assert batch.proposals[0] == dataclasses.replace(rule_first, hypothesis="a reason")
    check_batch(state, batch, 3)
    assert [f["slots"] for f in log.of("llm_fallback")] == [2]


# ----------------------------------------------------------------------------- SDK path


def test_request_and_record_on_the_wire(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder, tmp_path: Path
) -> None:
    """The real client: the tool forced, the system prompt cached, tokens and the whole
    answer kept; a retry turn the SDK accepts."""
    state = make_state(two_node_tree(), finished=[1, 2])
    raw = [item(2, "lr", 5e-5), item(2, "omega", 500.0)]
    server.push(answer(raw), answer([item(2, "omega", 18.0)]))
    batch = make().propose(state, 2)
    assert batch.proposals == [as_proposal(raw[0]), as_proposal(item(2, "omega", 18.0))]

    body, retry = server.requests
    assert body["model"] == MODEL
    assert body["tool_choice"] == {"type": "tool", "name": BATCH_TOOL}
    assert [t["name"] for t in body["tools"]] == [BATCH_TOOL]
    assert body["tools"][0]["strict"] is True
    assert body["system"] == [  # cached by the API: the same text on every call
        {"type": "text", "text": render_system(state), "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"][0]["content"][0]["text"] == render_batch(state, 2, [])
    assert retry["messages"][1]["role"] == "assistant"
    (block,) = retry["messages"][1]["content"]
    assert block["type"] == "tool_use" and block["input"]["proposals"] == raw
    assert tool_results(retry["messages"])[0]["tool_use_id"] == block["id"]

    first = log.of("llm_call")[0]
    assert first["outcome"] == "invalid" and first["latency_s"] >= 0
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0
    saved = json.loads((tmp_path / "run" / "llm" / "call_001.json").read_text())
    assert saved["response"]["content"][0]["input"]["proposals"][0]["value"] == 5e-5
    assert saved["request"]["system"] == render_system(state)


@pytest.mark.parametrize(
    ("reply", "outcome"), [(malformed(), "malformed"), (text_only(), "no_tool_use")]
)
def test_unusable_answer_falls_back(
    reply: Reply,
    outcome: str,
    make: Callable[..., LLMProposer],
    server: MessagesServer,
    log: Recorder,
    tmp_path: Path,
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(reply)
    batch = make().propose(state, 3)
    assert batch == _rule_batch(state, 3)
    assert len(server.requests) == 1
    (call,) = log.of("llm_call")
    assert call["outcome"] == outcome and call["error"]
    (fallback,) = log.of("llm_fallback")
    assert fallback["slots"] == 3 and fallback["reason"].startswith(outcome)
    saved = json.loads((tmp_path / "run" / "llm" / "call_001.json").read_text())
    assert saved["outcome"] == outcome and saved["error"] == call["error"]


def test_rate_limit_then_success(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(rate_limited("0"), answer([item(2, "lr", 5e-5)]))
    batch = make(max_retries=1, timeout_s=2.0).propose(state, 1)
    assert len(server.requests) == 2, "the SDK retried the 429"
    assert batch.proposals == [as_proposal(item(2, "lr", 5e-5))]
    assert [c["outcome"] for c in log.of("llm_call")] == ["ok"]


def test_overloaded_twice_falls_back(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(overloaded(), overloaded())
    batch = make(max_retries=1, timeout_s=2.0).propose(state, 2)
    assert len(server.requests) == 2
    assert batch == _rule_batch(state, 2)
    (call,) = log.of("llm_call")
    assert call["outcome"] == "api_error" and "529" in call["error"]
    assert call["input_tokens"] is None
    assert log.of("llm_fallback")[0]["slots"] == 2


def test_hang_times_out_and_falls_back(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    server.push(hang(30.0))
    start = time.monotonic()
    batch = make(timeout_s=1.0, max_retries=0).propose(state, 2)
    assert time.monotonic() - start < 5.0
    assert batch == _rule_batch(state, 2)
    assert log.of("llm_call")[0]["outcome"] == "timeout"


# ----------------------------------------------------------------------------- secrets, files


def test_api_key_never_written(
    make: Callable[..., LLMProposer], server: MessagesServer, log: Recorder, tmp_path: Path
) -> None:
    state = make_state(two_node_tree(), finished=[1, 2])
    leaky = Reply(
        401,
        {"type": "error", "error": {"type": "authentication_error", "message": f"bad key {KEY}"}},
    )
    server.push(
        answer([item(2, "lr", 5e-5), item(2, "omega", 500.0)]),
        answer([item(2, "omega", 18.0)]),
        leaky,
        malformed(),
    )
    proposer = make()
    proposer.propose(state, 2)
    proposer.propose(state, 2)
    proposer.propose(state, 2)
    proposer.review_block(state)  # the default responder is a 500: review falls back
    sent = [{k.lower(): v for k, v in h.items()} for h in server.headers]
    assert all(KEY in (h.get("x-api-key", "") + h.get("authorization", "")) for h in sent), (
        "the key was sent"
    )
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) == 5
    for path in files:
        assert KEY not in path.read_text(), path
    assert KEY not in repr(log.events)
    assert "[redacted]" in repr(log.events)
    assert KEY not in repr(proposer.__dict__.keys()) and KEY not in repr(vars(proposer).values())


def test_auth_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: MessagesServer, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    log = Recorder()
    proposer = LLMProposer(MODEL, max_retries=0, run_dir=tmp_path, log=log)
    server.push(text_only(f"echo {KEY}"))
    proposer.propose(make_state(two_node_tree(), finished=[1, 2]), 1)
    proposer.close()
    headers = {k.lower(): v for k, v in server.headers[0].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    for path in tmp_path.rglob("*.json"):
        assert KEY not in path.read_text()
    assert KEY not in repr(log.events)


def test_call_files_continue_numbering(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], tmp_path: Path, log: Recorder
) -> None:
    folder = tmp_path / "run" / "llm"
    folder.mkdir(parents=True)
    (folder / "call_007.json").write_text("{}")
    no_tool = CallError("no_tool_use", "the answer did not call submit_batch (content: text)")
    proposer, _ = fake(no_tool, no_tool)
    state = make_state(two_node_tree(), finished=[1, 2])
    proposer.propose(state, 1)
    proposer.propose(state, 1)
    assert [c["response_file"] for c in log.of("llm_call")] == [
        "llm/call_008.json",
        "llm/call_009.json",
    ]
    assert sorted(p.name for p in folder.iterdir()) == [
        "call_007.json",
        "call_008.json",
        "call_009.json",
    ]


def test_no_run_dir_writes_nothing(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder, tmp_path: Path
) -> None:
    proposer, _ = fake(batch_call([item(2, "lr", 5e-5)]), run_dir=None)
    proposer.propose(make_state(two_node_tree(), finished=[1, 2]), 1)
    assert log.of("llm_call")[0]["response_file"] is None
    assert not (tmp_path / "run").exists()


def test_the_seam_redacts_what_it_is_given(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder, tmp_path: Path
) -> None:
    """Text the client could not scrub (the key split by a control character) is redacted
    once it is one line; errors are logged and written redacted."""
    split = KEY[:6] + "\x00" + KEY[6:]
    state = make_state(two_node_tree(), finished=[1, 2])
    proposer, _ = fake(
        batch_call([item(2, "lr", 5e-5, hypothesis=f"key {split}")], ack=split),
        CallError("api_error", f"401 for {KEY}"),
    )
    (p,) = proposer.propose(state, 1).proposals
    assert p.hypothesis == "key [redacted]"
    proposer.propose(state, 1)
    assert KEY not in repr(log.events) and "401 for [redacted]" in repr(log.events)
    for path in (tmp_path / "run" / "llm").glob("*.json"):
        assert KEY not in path.read_text(), path


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="model"):
        LLMProposer("", api_key=KEY)
    with pytest.raises(ValueError, match="timeout_s"):
        LLMProposer(MODEL, api_key=KEY, timeout_s=0)
    with pytest.raises(ValueError, match="max_retries"):
        LLMProposer(MODEL, api_key=KEY, max_retries=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        LLMProposer(MODEL, api_key=KEY, max_tokens=0)


def test_close_closes_the_client(fake: Callable[..., tuple[LLMProposer, FakeClient]]) -> None:
    proposer, client = fake()
    proposer.close()
    assert client.closed


# ----------------------------------------------------------------------------- review


def _review_tree() -> Tree:
    tree = Tree()
    node = grow(tree, None, {}, 0.99)
    for lr in (2e-4, 3e-4, 4e-4, 5e-4, 6e-4):
        node = grow(tree, node.id, {"lr": lr}, 0.99)
    return tree


def test_review_block_good(
    fake: Callable[..., tuple[LLMProposer, FakeClient]], log: Recorder
) -> None:
    state = make_state(_review_tree(), rules=["Keep the old rule."])
    stats = strategies.block_stats(state.tree, 1, state.reward)
    next_c, rules = strategies.review(stats, state.ucb_c)
    proposer, client = fake(
        review_call(
            summary="lr alone plateaued at 0.99.",
            principles=["lr above 2e-4 adds nothing for F (nodes 2-6)", "  "],
            open_questions=["does ω matter at 600 frames?"],
            next_ucb_c=7.5,
            new_rules=["Keep the old rule.", "Change ω after two flat lr moves."],
        )
    )
    review = proposer.review_block(state)
    assert review.summary == f"{stats.summary()} lr alone plateaued at 0.99."
    assert review.principles == ["lr above 2e-4 adds nothing for F (nodes 2-6)"]
    assert review.open_questions == ["does ω matter at 600 frames?"]
    assert review.next_ucb_c == 3.0, "clamped"
    assert review.new_rules == ["Change ω after two flat lr moves."]
    (asked,) = client.asked
    assert asked.tool == review_tool() and asked.system == render_system(state)
    prompt = asked.messages[0]["content"]
    assert stats.summary() in prompt
    assert f"next ucb_c: {fmt_value(next_c)}" in prompt
    assert all(rule in prompt for rule in rules)
    (call,) = log.of("llm_call")
    assert call["purpose"] == "review" and call["outcome"] == "ok"


GOOD_REVIEW = {
    "summary": "x",
    "principles": [],
    "open_questions": [],
    "next_ucb_c": 1.0,
    "new_rules": [],
}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            review_call(summary="x", principles=[], open_questions=[]),
            "review invalid: next_ucb_c must be a number, got null",
        ),
        (
            review_call(**{**GOOD_REVIEW, "principles": "one string"}),
            "review invalid: principles must be a list of strings",
        ),
        (review_call(**{**GOOD_REVIEW, "summary": ""}), "review invalid: summary is empty"),
        (
            review_call(**{**GOOD_REVIEW, "next_ucb_c": math.inf}),
            "review invalid: next_ucb_c must be a number, got Infinity",
        ),
        (ToolCall(REVIEW_TOOL, "a string"), "review invalid: the submit_review input must be"),
        (batch_call([]), "review no_tool_use: the answer did not call submit_review"),
        (CallError("api_error", "529 overloaded"), "review api_error: 529 overloaded"),
        (CallError("malformed", "not JSON"), "review malformed: not JSON"),
    ],
    ids=[
        "no-ucb-c",
        "principles-not-list",
        "empty-summary",
        "inf-ucb-c",
        "not-object",
        "wrong-tool",
        "529",
        "bad-json",
    ],
)
def test_review_block_bad_falls_back(
    answer: ToolCall | CallError,
    reason: str,
    fake: Callable[..., tuple[LLMProposer, FakeClient]],
    log: Recorder,
) -> None:
    state = make_state(_review_tree())
    proposer, _ = fake(answer)
    assert proposer.review_block(state) == RuleProposer().review_block(state)
    assert log.of("llm_call")[0]["outcome"] != "ok"
    (fallback,) = log.of("llm_fallback")
    assert fallback["slots"] == 0 and fallback["reason"].startswith(reason)


# ----------------------------------------------------------------------------- contract


class _Oracle:
    """A fake model: answers with valid proposals built from the state of the call
    (the rule proposer's choices with another seed) and a review."""

    def __init__(self) -> None:
        self.state: SearchState | None = None
        self.n_slots = 0

    def __call__(self, asked: Any) -> ToolCall:
        assert self.state is not None
        if asked.tool["name"] == REVIEW_TOOL:
            return review_call(**{**GOOD_REVIEW, "summary": "fine", "next_ucb_c": 1.2})
        batch = RuleProposer(seed=3).propose(self.state, self.n_slots)
        raw = []
        for p in batch.proposals:
            param = next(iter(p.mutation), None)
            raw.append(
                item(
                    p.parent,
                    param,
                    None if param is None else p.mutation[param],
                    p.strategy,
                    p.hypothesis,
                    p.expect or "same",
                )
            )
        obs = [
            {"node_id": i, "observation": f"node {i} seen", "visual": ""}
            for i in self.state.finished
        ]
        return batch_call(raw, obs)


class _TappedLLMProposer(LLMProposer):
    """Shows each call's state to the oracle (the fake model has no other way to see it)."""

    def __init__(self, oracle: _Oracle, **kw: Any) -> None:
        super().__init__(MODEL, client=FakeClient(default=oracle), **kw)
        self.oracle = oracle

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        self.oracle.state, self.oracle.n_slots = state, n_slots
        return super().propose(state, n_slots)

    def review_block(self, state: SearchState) -> Any:
        self.oracle.state = state
        return super().review_block(state)


class _NoProposals(Proposer):
    """A fallback that adds nothing, so the contract is met by the model's answers alone."""

    name = "none"

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        return ProposalBatch()


class TestLLMProposerContract(ProposerContract):
    @pytest.fixture
    def make_proposer(self, tmp_path: Path) -> Callable[[], Proposer]:
        oracle = _Oracle()
        return lambda: _TappedLLMProposer(oracle, fallback=_NoProposals(), run_dir=tmp_path)
