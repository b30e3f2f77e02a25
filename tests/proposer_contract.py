"""The contract every proposer must meet, as one test class (Optuna's sampler-test habit).

Use it by subclassing and providing a ``make_proposer`` fixture that returns a callable
building a fresh proposer::

    class TestMyProposer(ProposerContract):
        @pytest.fixture
        def make_proposer(self):
            return lambda: MyProposer(...)

The helpers below (``make_state``, ``grow``) build trees through the same check the block
runner uses, so other tests can construct the situations each strategy needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inr_tune.config import Config, config_from_dict
from inr_tune.search.proposers import (
    BlockReview,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    check_proposal,
    taken_configs,
)
from inr_tune.search.space import SearchSpace, config_key
from inr_tune.search.strategies import STRATEGIES
from inr_tune.search.tree import Node, Tree

ROOT = Path(__file__).resolve().parents[1]
MPM_SPACE = SearchSpace.from_yaml(ROOT / "configs" / "spaces" / "mpm.yaml")
MPM_CLASSES = {"excellent": 0.995, "good": 0.99, "moderate": 0.90}
ROOT_CONFIG = Config().replace(
    training={"lr": 1e-4, "total_steps": 20000}, model={"omega": 8.0, "hidden_dim": 256}
)


def make_state(tree: Tree, block: int = 1, **kw: Any) -> SearchState:
    """A SearchState for ``block`` of ``tree`` with MPM defaults (override any field)."""
    args: dict[str, Any] = {
        "tree": tree,
        "space": MPM_SPACE,
        "block": block,
        "iter_in_block": len(tree.block_nodes(block)),
        "n_iter_block": 8,
        "field": "F",
        "n_frames": 400,
        "classes": dict(MPM_CLASSES),
        "root_config": ROOT_CONFIG,
    }
    args.update(kw)
    return SearchState(**args)


def grow(
    tree: Tree,
    parent: int | None,
    mutation: dict[str, Any],
    r2: float | None = None,
    *,
    status: str | None = None,
    strategy: str | None = None,
    block: int = 1,
    root: Config = ROOT_CONFIG,
    expect: str | None = "improve",
) -> Node:
    """Add a node (parent config + mutation, checked) and finish it unless ``status`` is pending.

    ``r2=None`` with no status makes a failed node.
    """
    if strategy is None:
        strategy = (
            "baseline" if not mutation else ("robustness-test" if "seed" in mutation else "exploit")
        )
    state = make_state(tree, block, root_config=root)
    cfg, changes = check_proposal(
        state, Proposal(parent, mutation, strategy, "test node", None if not mutation else expect)
    )
    node = tree.add(
        parent, cfg, changes, strategy, "test node", block, None if not mutation else expect
    )
    status = status or ("ok" if r2 is not None else "failed")
    if status != "pending":
        metrics = {"final_r2": r2} if r2 is not None else {}
        tree.complete(node.id, status, metrics, None if r2 is not None else "boom")
    return node


def simulate(
    proposer: Proposer,
    score: Callable[[Config], float],
    n_iter: int = 16,
    parallel: int = 4,
    **kw: Any,
) -> tuple[Tree, list[Any]]:
    """A block runner in miniature: propose, add, finish every pending node with R²
    ``score(config)`` (and its verdict), repeat until ``n_iter`` nodes; ``kw`` goes to
    ``make_state``. Returns the tree and the proposals of each batch."""
    from inr_tune.search.verdict import verdict_for

    tree: Tree = Tree()
    finished: list[int] = []
    batches = []
    while len(tree) < n_iter:
        state = make_state(tree, finished=finished, n_iter_block=n_iter, **kw)
        batch = proposer.propose(state, min(parallel, n_iter - len(tree)))
        assert batch.proposals, batch.remarks
        batches.append(batch.proposals)
        for p in batch.proposals:
            cfg, changes = check_proposal(state, p)
            tree.add(p.parent, cfg, changes, p.strategy, p.hypothesis, 1, p.expect)
        finished = []
        for node in tree.pending(1):
            tree.complete(node.id, "ok", {"final_r2": score(config_from_dict(node.config))})
            tree.note(node.id, verdict=verdict_for(tree, node.id))
            finished.append(node.id)
    return tree, batches


def check_batch(state: SearchState, batch: ProposalBatch, n_slots: int) -> list[Config]:
    """Assert the contract on one ``propose`` result; return the child configs."""
    assert isinstance(batch, ProposalBatch)
    assert len(batch.proposals) <= max(0, n_slots)
    scratch = state.tree.copy()
    taken = taken_configs(scratch)
    children = []
    for p in batch.proposals:
        assert isinstance(p, Proposal)
        assert p.strategy in STRATEGIES, p.strategy
        assert p.parent is None or p.parent in state.tree, f"parent {p.parent} does not exist"
        if p.mutation:
            # one param, except a variant-sweep fitting its family into the budget
            assert len(p.mutation) == 1 or p.strategy == "variant-sweep", p.mutation
            assert p.strategy != "baseline"
        else:
            assert p.strategy == "baseline" and p.parent is None
        assert isinstance(p.hypothesis, str) and p.hypothesis.strip()
        assert p.expect in ("improve", "worsen", "same", None)
        # raises ProposalError on an invalid, pinned or repeated config
        cfg, changes = check_proposal(state, p, tree=scratch, taken=taken)
        parent = (
            state.root_config if p.parent is None else config_from_dict(scratch[p.parent].config)
        )
        for key in state.pinned:
            assert cfg.get(key) == parent.get(key), f"{key} is pinned"
        node = scratch.add(p.parent, cfg, changes, p.strategy, p.hypothesis, state.block, p.expect)
        taken[config_key(cfg)] = node.id
        children.append(cfg)
    for note in batch.notes:
        assert note.node_id in state.finished
        assert isinstance(note.observation, str) and note.observation.strip()
    assert all(isinstance(r, str) for r in batch.remarks)
    return children


class ProposerContract:
    """Tests any proposer must pass. Subclasses provide the ``make_proposer`` fixture."""

    @pytest.fixture
    def make_proposer(self) -> Callable[[], Proposer]:
        raise NotImplementedError("subclasses provide a make_proposer fixture")

    def test_empty_block_starts_with_the_root(self, make_proposer: Callable[[], Proposer]) -> None:
        state = make_state(Tree())
        batch = make_proposer().propose(state, 4)
        check_batch(state, batch, 4)
        assert batch.proposals, "an empty block needs at least one proposal"
        assert all(p.parent is None for p in batch.proposals)

    def test_later_block_with_new_root(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        grow(tree, base.id, {"lr": 2e-4}, 0.995)
        root2 = ROOT_CONFIG.replace(data={"n_frames": 600})
        state = make_state(tree, block=2, root_config=root2, n_frames=600)
        batch = make_proposer().propose(state, 4)
        check_batch(state, batch, 4)
        assert batch.proposals
        assert all(p.parent is None for p in batch.proposals), "block 1 nodes are not parents"

    def test_block_with_results(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        a = grow(tree, None, {"omega": 12.0}, 0.995)
        b = grow(tree, None, {"lr": 2e-4}, 0.993)
        c = grow(tree, a.id, {"hidden_dim": 384}, 0.997)
        finished = [base.id, a.id, b.id, c.id]
        state = make_state(tree, finished=finished)
        batch = make_proposer().propose(state, 4)
        check_batch(state, batch, 4)
        assert batch.proposals
        assert {n.node_id for n in batch.notes} <= set(finished)

    def test_failed_and_diverged_nodes(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, None)  # the baseline itself failed
        grow(tree, None, {"lr": 2e-4}, None, status="diverged")
        grow(tree, None, {"omega": 12.0}, None, status="failed")
        grow(tree, base.id, {"lr": 5e-5}, 0.9)
        state = make_state(tree, finished=[n.id for n in tree.nodes])
        batch = make_proposer().propose(state, 4)
        check_batch(state, batch, 4)
        assert batch.proposals

    def test_all_nodes_pending(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        grow(tree, None, {}, status="pending")
        grow(tree, None, {"lr": 2e-4}, status="pending")
        grow(tree, None, {"omega": 12.0}, status="pending")
        state = make_state(tree)
        batch = make_proposer().propose(state, 2)
        check_batch(state, batch, 2)  # may be empty; never a pending parent or a repeat

    def test_respects_pinned(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        grow(tree, base.id, {"hidden_dim": 384}, 0.995)
        pinned = {"model.omega": 8.0, "training.lr": 1e-4, "model.hidden_dim": 256}
        for t in (Tree(), tree):
            state = make_state(t, pinned=pinned, finished=[n.id for n in t.nodes])
            batch = make_proposer().propose(state, 4)
            check_batch(state, batch, 4)
            for p in batch.proposals:
                for name in p.mutation:
                    assert MPM_SPACE.key_of(name) not in ("model.omega", "training.lr")

    @pytest.mark.parametrize("n_slots", [0, 1, 3])
    def test_slot_count(self, make_proposer: Callable[[], Proposer], n_slots: int) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        grow(tree, base.id, {"omega": 12.0}, 0.995)
        state = make_state(tree, finished=[n.id for n in tree.nodes])
        batch = make_proposer().propose(state, n_slots)
        check_batch(state, batch, n_slots)

    def test_does_not_modify_the_tree(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        grow(tree, base.id, {"omega": 12.0}, 0.995)
        before = json.dumps(tree.to_dict(), sort_keys=True)
        make_proposer().propose(make_state(tree, finished=[1, 2]), 4)
        assert json.dumps(tree.to_dict(), sort_keys=True) == before

    def test_children_follow_their_parent(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        grow(tree, base.id, {"omega": 12.0}, 0.995)
        state = make_state(tree, finished=[1, 2])
        batch = make_proposer().propose(state, 4)
        for p, cfg in zip(batch.proposals, check_batch(state, batch, 4), strict=True):
            parent = ROOT_CONFIG if p.parent is None else config_from_dict(tree[p.parent].config)
            expected = MPM_SPACE.apply(parent, p.mutation) if p.mutation else parent
            assert expected == cfg

    def test_review_block(self, make_proposer: Callable[[], Proposer]) -> None:
        tree = Tree()
        base = grow(tree, None, {}, 0.99)
        a = grow(tree, base.id, {"omega": 12.0}, 0.995)
        grow(tree, a.id, {"lr": 2e-4}, 0.996)
        review = make_proposer().review_block(make_state(tree))
        assert isinstance(review, BlockReview)
        assert review.summary.strip()
        assert 0.5 <= review.next_ucb_c <= 3.0
        assert all(isinstance(r, str) for r in review.new_rules)
