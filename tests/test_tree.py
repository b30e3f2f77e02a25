"""Exploration tree: node invariants, rewards, UCB and its file format, replay, comparisons
(the verdict test itself: test_verdict.py)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from typing import Any

import pytest

from inr_tune.config import Config
from inr_tune.search.tree import Node, Tree, format_ucb_scores, reward_of, scaled_rewards
from inr_tune.search.verdict import compare_words, describe_change

CFG = Config().to_dict()
C = 1.414


def _node(tree: Tree, parent: int | None, r2: float | None, status: str = "ok", **kw: Any) -> Node:
    """Add a node (mutation ``kw.get("mutation")``) and finish it (unless pending)."""
    mutation = kw.pop("mutation", {"omega": [8.0, 8.0 + len(tree) + 1]})
    node = tree.add(
        parent, CFG, mutation, kw.pop("strategy", "exploit"), "h", kw.pop("block", 1), **kw
    )
    if status != "pending":
        tree.complete(node.id, status, {} if r2 is None else {"final_r2": r2})
    return node


# ----------------------------------------------------------------------------- structure


def test_ids_increase_and_parents_must_exist() -> None:
    tree = Tree()
    a = _node(tree, None, 0.9, mutation={})
    b = _node(tree, a.id, 0.95)
    assert (a.id, b.id, tree.next_id) == (1, 2, 3)
    with pytest.raises(ValueError, match="parent 7 does not exist"):
        _node(tree, 7, 0.9)
    assert len(tree) == 2  # nothing half-added
    assert all(n.parent is None or n.parent < n.id for n in tree.nodes), "no cycle possible"
    with pytest.raises(ValueError, match="must be new"):
        tree.insert(Node(id=2, parent=None, block=1, config=CFG))


def test_config_is_copied_not_shared() -> None:
    tree = Tree()
    raw = Config().to_dict()
    node = tree.add(None, raw, {}, "baseline", "h", 1)
    raw["model"]["omega"] = 99.0
    assert node.config["model"]["omega"] == 8.0
    other = tree.add(None, Config(), {"lr": [1.2e-4, 1e-4]}, "explore", "h", 1)
    assert other.config == CFG and other.mutation == {"lr": [1.2e-4, 1e-4]}


def test_complete_and_note() -> None:
    tree = Tree()
    node = _node(tree, None, None, status="pending")
    assert node.pending and node.r2 is None
    with pytest.raises(ValueError, match="status 'done' not allowed"):
        tree.complete(node.id, "done", {})
    tree.complete(node.id, "diverged", {"final_r2": float("nan")}, "loss NaN at step 40")
    assert node.status == "diverged" and node.error == "loss NaN at step 40"
    assert node.metrics == {"final_r2": None}, "non-finite metrics are stored as null"
    with pytest.raises(ValueError, match="already diverged"):
        tree.complete(node.id, "ok", {})
    tree.note(node.id, observation="o", verdict="falsified")
    tree.note(node.id, visual="v")
    assert (node.observation, node.visual, node.verdict) == ("o", "v", "falsified")


def test_node_is_slotted() -> None:
    assert not hasattr(Node(id=1, parent=None, block=1, config={}), "__dict__")


def test_children_descendants_chain_distance() -> None:
    tree = Tree()
    r = _node(tree, None, 0.9, mutation={})  # 1
    a = _node(tree, r.id, 0.9)  # 2
    b = _node(tree, a.id, 0.9)  # 3
    c = _node(tree, r.id, 0.9)  # 4
    d = _node(tree, None, 0.9)  # 5: another block root
    e = _node(tree, b.id, None, status="pending")  # 6
    assert [n.id for n in tree.children(r.id)] == [2, 4]
    assert [n.id for n in tree.descendants(r.id)] == [2, 3, 4, 6]
    assert [n.id for n in tree.chain(e.id)] == [6, 3, 2, 1]
    assert tree.distance(b.id, b.id) == 0
    assert tree.distance(b.id, r.id) == 2
    assert tree.distance(b.id, c.id) == 3
    assert tree.distance(r.id, d.id) == 2, "block roots meet at a virtual root"
    assert tree.distance(b.id, d.id) == 4
    assert tree.reference(d.id) is r, "a block-root mutation is compared with the baseline"
    assert tree.reference(r.id) is None and tree.reference(b.id) is a


def test_best_and_block_nodes() -> None:
    tree = Tree()
    _node(tree, None, 0.9, mutation={})
    _node(tree, 1, 0.99)
    _node(tree, 1, None, status="failed")
    _node(tree, None, 0.999, block=2, mutation={})
    assert tree.best(1).id == 2 and tree.best().id == 4
    assert [n.id for n in tree.block_nodes(2)] == [4]
    assert tree.best(3) is None


# ----------------------------------------------------------------------------- rewards


def test_rewards() -> None:
    assert reward_of(0.997, "r2") == 0.997
    assert reward_of(1.2, "r2") == 1.0 and reward_of(-3.0, "r2") == 0.0
    assert reward_of(0.99) == pytest.approx(2 / 6)
    assert reward_of(0.999) == pytest.approx(0.5)
    assert reward_of(0.9999) == pytest.approx(4 / 6)
    assert reward_of(1 - 1e-9) == 1.0 and reward_of(1.0) == 1.0
    assert reward_of(0.0) == 0.0 and reward_of(-5.0) == 0.0
    assert reward_of(None) == 0.0 and reward_of(float("nan")) == 0.0
    with pytest.raises(ValueError, match="unknown reward"):
        reward_of(0.9, "loss")


def test_nines_separates_what_r2_cannot() -> None:
    assert reward_of(0.9999, "r2") - reward_of(0.999, "r2") < 1e-3
    assert reward_of(0.9999) - reward_of(0.999) == pytest.approx(1 / 6)


def test_failed_zero_and_early_stopped_uses_last_r2() -> None:
    tree = Tree()
    failed = _node(tree, None, 0.99, status="failed")
    diverged = _node(tree, None, 0.99, status="diverged")
    stopped = _node(tree, None, 0.999, status="early_stopped")
    assert failed.reward() == 0.0 and diverged.reward("r2") == 0.0
    assert stopped.r2 == 0.999 and stopped.reward() == pytest.approx(0.5)


# ----------------------------------------------------------------------------- UCB


def test_ucb_formula() -> None:
    """Q is the reward scaled to the block's range: its worst scored node 0, its best 1."""
    tree = Tree()
    a = _node(tree, None, 0.9, mutation={})
    b = _node(tree, a.id, 0.95)
    c = _node(tree, b.id, 0.93)
    _node(tree, c.id, None, status="pending")
    _node(tree, None, 0.5, block=2, mutation={})  # other blocks do not count
    scores = {s.node.id: s for s in tree.ucb_scores(1, C)}
    assert set(scores) == {1, 2, 3}, "only finished nodes of the block are candidates"
    n = 4  # nodes of block 1, pending included
    assert (scores[1].visits, scores[2].visits, scores[3].visits) == (4, 3, 2)
    q3 = (reward_of(0.93) - reward_of(0.9)) / (reward_of(0.95) - reward_of(0.9))
    assert scores[1].ucb == pytest.approx(0.0 + C * math.sqrt(math.log(n) / 4))
    assert scores[2].ucb == pytest.approx(1.0 + C * math.sqrt(math.log(n) / 3))
    assert scores[3].ucb == pytest.approx(q3 + C * math.sqrt(math.log(n) / 2))
    r2 = {s.node.id: s.ucb for s in tree.ucb_scores(1, C, "r2")}
    assert r2[3] == pytest.approx(0.6 + C * math.sqrt(math.log(n) / 2))


def test_visits_count_the_block_descendants_of_each_node() -> None:
    """n_k = 1 + k's descendants in the block, pending included, on a random tree of two
    blocks where a block-2 branch hangs under a block-1 node (counted from a brute-force
    walk down)."""
    import random

    rng = random.Random(4)
    tree = Tree()
    for i in range(80):
        block = 1 if i < 50 or rng.random() < 0.3 else 2
        ids = [n.id for n in tree.nodes]
        parent = rng.choice(ids) if ids and rng.random() < 0.9 else None
        _node(tree, parent, rng.random(), "pending" if rng.random() < 0.2 else "ok", block=block)
    for block in (1, 2):
        for s in tree.ucb_scores(block, C):
            below = [d for d in tree.descendants(s.node.id) if d.block == block]
            assert s.visits == 1 + len(below), s.node.id


def test_scaled_q_lets_quality_count_against_visits() -> None:
    """R² 0.30 and 0.70 differ by 0.06 in nines, less than the exploration bonus of a
    fresh leaf over a node tried four times: unscaled, a poor leaf outranked the block's
    best node; scaled, it ranks last."""
    tree = Tree()
    best = _node(tree, None, 0.70, mutation={})
    poor = _node(tree, None, 0.30)
    for r2 in (0.69, 0.68):
        child = _node(tree, best.id, r2)
        _node(tree, child.id, r2 - 0.005)
    c, n = 0.5, len(tree.block_nodes(1))
    ranking = [s.node.id for s in tree.ucb_scores(1, c)]
    assert ranking.index(best.id) < ranking.index(poor.id) == len(ranking) - 1
    raw = {k: tree[k].reward() + c * math.sqrt(math.log(n) / v) for k, v in ((1, 5), (2, 1))}
    assert raw[poor.id] > raw[best.id], "the old, unscaled Q ranked the poor leaf higher"
    scaled = scaled_rewards(tree.block_nodes(1))
    assert scaled[best.id] == 1.0 and scaled[poor.id] == 0.0
    failed = _node(tree, best.id, None, status="failed")
    assert scaled_rewards(tree.block_nodes(1))[failed.id] == 0.0
    one = Tree()
    only = _node(one, None, 0.3, mutation={})
    assert scaled_rewards(one.block_nodes(1)) == {only.id: 1.0}, "one scored node: Q 1"


def test_ucb_scores_file_format() -> None:
    tree = Tree()
    assert format_ucb_scores(tree.ucb_scores(1, C)) == "", "empty at a block's start"
    a = _node(tree, None, 0.934, mutation={})
    _node(tree, a.id, 0.997)
    _node(tree, a.id, None, status="failed")
    text = format_ucb_scores(tree.ucb_scores(1, C, "r2"))
    lines = text.splitlines()
    u2 = 1.0 + C * math.sqrt(math.log(3) / 1)
    assert lines[0] == f"Node 2: UCB={u2:.3f}, parent=1, visits=1, R2=0.997000"
    u1 = 0.0 + C * math.sqrt(math.log(3) / 3)
    assert f"Node 1: UCB={u1:.3f}, parent=root, visits=3, R2=0.934000" in lines
    assert "Node 3: UCB=1.482, parent=1, visits=1, R2=nan, status=failed" in lines
    pattern = re.compile(r"^Node \d+: UCB=-?\d+\.\d{3}, parent=(root|\d+), visits=\d+, R2=")
    assert all(pattern.match(line) for line in lines) and text.endswith("\n")
    assert format_ucb_scores(tree.ucb_scores(2, C)) == ""


@pytest.mark.parametrize("reward", ["nines", "r2"])
def test_best_node_ranks_first_at_equal_visits(reward: str) -> None:
    """The older tool ranked the best nodes last when R² ≈ 1; equal visits must not."""
    tree = Tree()
    for r2 in (0.9990, 0.99999, 0.9999, 0.99995):
        _node(tree, None, r2)
    scores = tree.ucb_scores(1, C, reward)
    assert [s.visits for s in scores] == [1, 1, 1, 1]
    assert [s.node.metrics["final_r2"] for s in scores] == [0.99999, 0.99995, 0.9999, 0.9990]


def test_ties_broken_by_id() -> None:
    tree = Tree()
    for _ in range(3):
        _node(tree, None, 0.99)
    assert [s.node.id for s in tree.ucb_scores(1, C)] == [1, 2, 3]


def test_pending_children_spread_parallel_picks() -> None:
    tree = Tree()
    for r2 in (0.999, 0.998, 0.99):
        _node(tree, None, r2)
    first = tree.ucb_scores(1, C)
    top = first[0]
    assert top.node.id == 1 and top.visits == 1
    _node(tree, top.node.id, None, status="pending")  # picked: its trial is in flight
    again = {s.node.id: s for s in tree.ucb_scores(1, C)}
    assert again[1].visits == 2
    assert again[1].ucb < top.ucb
    assert tree.ucb_scores(1, C)[0].node.id == 2, "the next pick goes elsewhere"


# ----------------------------------------------------------------------------- persistence


def _sample_tree() -> Tree:
    tree = Tree()
    a = _node(tree, None, 0.99, mutation={})
    b = _node(tree, a.id, 0.995, expect="improve")
    _node(tree, b.id, None, status="diverged")
    _node(tree, a.id, None, status="pending")
    tree.note(b.id, observation="better", verdict="supported")
    return tree


def test_dict_round_trip_is_json() -> None:
    tree = _sample_tree()
    raw = json.loads(json.dumps(tree.to_dict(), allow_nan=False))
    again = Tree.from_dict(raw)
    assert again.to_dict() == tree.to_dict()
    assert [s.ucb for s in again.ucb_scores(1, C)] == [s.ucb for s in tree.ucb_scores(1, C)]
    copy = tree.copy()
    copy.complete(4, "ok", {"final_r2": 0.9})
    assert tree[4].pending, "copies share nothing"


def test_replay_from_journal_events() -> None:
    tree = _sample_tree()
    events: list[dict[str, Any]] = [{"event": "run_started", "seq": 1}]
    live = Tree()
    for node in tree.nodes:
        added = Node.from_dict(
            {**node.to_dict(), "status": "pending", "metrics": {}, "error": None}
        )
        added.observation = added.verdict = None
        events.append({"event": "node_added", "node": added.to_dict()})
        live.insert(Node.from_dict(added.to_dict()))
    for node in tree.nodes:
        if node.finished:
            events.append(
                {
                    "event": "node_completed",
                    "node_id": node.id,
                    "status": node.status,
                    "metrics": node.metrics,
                    "error": node.error,
                }
            )
        if node.observation or node.verdict:
            events.append(
                {
                    "event": "node_noted",
                    "node_id": node.id,
                    "observation": node.observation,
                    "visual": node.visual,
                    "verdict": node.verdict,
                }
            )
    rebuilt = Tree.replay(json.loads(json.dumps(events)))
    assert rebuilt.to_dict() == tree.to_dict()


def test_tree_module_imports_no_heavy_frameworks() -> None:
    code = (
        "import sys, inr_tune.search, inr_tune.search.proposers;"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'lightning'});"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ----------------------------------------------------------------------------- verdicts


def test_compare_words_in_numbers() -> None:
    assert compare_words(0.99912, 0.99870) == "better"  # the older agent wrote "worse" here
    assert compare_words(0.99870, 0.99912) == "worse"
    assert compare_words(0.9991, 0.9991) == "same"
    assert compare_words(0.999990, 0.9999901) == "same"  # 0.004 decades
    assert compare_words(None, 0.5) == "worse" and compare_words(0.1, None) == "better"
    assert compare_words(-0.5, -0.2) == "worse"
    text = describe_change(0.99912, 0.99870)
    assert text == "R² 0.99912 vs parent 0.99870: better by 0.00042 (+0.17 nines)"


def test_scaled_q_keeps_the_order_of_negative_r2() -> None:
    """Fits worse than the mean (R² < 0) keep their order in Q: clipped at 0 they tied,
    and UCB then picked the least visited, i.e. the worse one."""
    tree = Tree()
    base = _node(tree, None, -0.77, mutation={})
    worse = _node(tree, None, -1.5)
    for reward in ("nines", "r2"):
        q = scaled_rewards(tree.block_nodes(1), reward)
        assert q[base.id] == 1.0 and q[worse.id] == 0.0
    _node(tree, base.id, None, status="pending")  # the first pick of a batch went to base
    assert tree.ucb_scores(1, 0.5)[0].node.id == base.id, "base still ranks first"
    q = scaled_rewards([_node(tree, None, 0.999999999), _node(tree, None, -50.0)])
    assert sorted(q.values()) == [0.0, 1.0], "capped at 6 nines, floored at R² −1"
