"""``--searcher greedy``: always one move from the best node so far.

A block opens with the baseline (the root config unchanged) and, while no node has
finished, one-move mutations of the root config (parent None). Afterwards every slot
mutates the best finished node of the block (highest R², held-out when the window has
held-out frames; ties: the earlier node) with one move, the rule proposer's candidate
moves (``moves.Candidates``: first those the results around the node point to, then the
neighbours of every free param in weighted random order). When the best node has no
untried move left, the next best is used. Strategy ``exploit``, one param per proposal;
deterministic for a seed (the generator is seeded from seed, tree size and block).
"""

from __future__ import annotations

import random

from inr_tune.errors import ProposalError
from inr_tune.search.proposers.base import (
    BlockReview,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    admit,
    scratch_copy,
    taken_configs,
)
from inr_tune.search.proposers.drawn import baseline_proposal, notes_on, plain_review
from inr_tune.search.proposers.moves import Candidates
from inr_tune.search.proposers.reasons import explain
from inr_tune.search.tree import Node, Tree

__all__ = ["GreedyProposer", "ranked"]


def ranked(tree: Tree, block: int) -> list[Node]:
    """The block's finished ``ok`` nodes with an R², best first (ties: the earlier node)."""
    nodes = [n for n in tree.block_nodes(block) if n.status == "ok" and n.r2 is not None]
    return sorted(nodes, key=lambda n: (-float(n.r2), n.id))  # type: ignore[arg-type]


class GreedyProposer(Proposer):
    """Mutates the best node so far (module docstring); deterministic for ``seed``."""

    name = "greedy"

    def __init__(self, seed: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {seed}")
        self.seed = int(seed)

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        batch = ProposalBatch([], notes_on(state), [])
        if n_slots <= 0:
            return batch
        rng = random.Random(self.seed * 1_000_003 + len(state.tree) * 7_919 + state.block)
        scratch = scratch_copy(state.tree)
        taken = taken_configs(scratch)
        cands = Candidates(state)
        base = baseline_proposal(state, scratch, taken)
        if base is not None:
            batch.proposals.append(base)
        best = ranked(scratch, state.block)
        parents: list[Node | None] = list(best) if best else [None]
        for parent in parents:
            while len(batch.proposals) < n_slots:
                proposal = self._one(state, scratch, taken, cands, rng, parent)
                if proposal is None:
                    break  # no untried move left here: the next best node
                batch.proposals.append(proposal)
            if len(batch.proposals) >= n_slots:
                break
        return batch

    def review_block(self, state: SearchState) -> BlockReview:
        return plain_review(state)

    def _one(
        self,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        cands: Candidates,
        rng: random.Random,
        parent: Node | None,
    ) -> Proposal | None:
        """The first valid, untried one-move mutation of ``parent`` (None: the root)."""
        pid = parent.id if parent is not None else None
        cfg = cands.config_of(scratch, pid)
        if parent is None:
            lead = "Greedy: no node has finished yet, one move from the block's root config"
        else:
            lead = (
                f"Greedy: one move from the best node so far (node {parent.id}, R² {parent.r2:.5f})"
            )
        for name, value in cands.moves(scratch, pid, rng):
            p = state.space.param(name)
            reason, expect = explain(name, cfg.get(p.key), value, cfg, state)
            proposal = Proposal(pid, {name: value}, "exploit", f"{lead}: {reason}.", expect)
            if cands.known_repeat(scratch, taken, proposal):
                continue
            try:
                return admit(state, scratch, taken, proposal)
            except ProposalError:
                continue
        return None
