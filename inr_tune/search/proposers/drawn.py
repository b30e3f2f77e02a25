"""What the searchers other than the UCB tree share (``--searcher random|tpe|greedy``).

They choose configs differently but run the same block: the same trainable, size budget
(``SearchState.check_config``), journal, reports and seed-rerun round (added by the
session). Each opens a block with the baseline (the root config unchanged), so every
searcher starts from the same config and its nodes have a reference for their verdicts.

``DrawnSearcher`` is the base of the two that draw whole configs from the space (random,
tpe): a proposal has parent None (the block's root config) and as mutation every free
param whose drawn value differs from the root's. Free params are the space's params but
the seed, those the user pinned and those of weight 0 (``free_params``).
"""

from __future__ import annotations

import json
import math
import random
from abc import abstractmethod
from typing import Any

from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.proposers.base import (
    BlockReview,
    NodeNote,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    admit,
    scratch_copy,
    taken_configs,
)
from inr_tune.search.proposers.reasons import observation
from inr_tune.search.space import Param, config_key
from inr_tune.search.tree import Tree

__all__ = [
    "DrawnSearcher",
    "baseline_proposal",
    "draw_value",
    "free_params",
    "notes_on",
    "params_key",
    "plain_review",
    "tidy_value",
]


def free_params(state: SearchState) -> list[Param]:
    """The params a drawn config sets, in space order: not the seed, not pinned, weight > 0."""
    pinned = set(state.pinned)
    out = []
    for name in state.space.search_params:
        p = state.space.param(name)
        if p.key in pinned or p.name in pinned or p.weight <= 0:
            continue
        out.append(p)
    return out


def tidy_value(p: Param, value: Any) -> Any:
    """A drawn number as the space stores it: ints whole, floats to 4 significant digits,
    inside the bounds; list values unchanged."""
    if p.is_choice:
        return value
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return int(min(p.high, max(p.low, round(float(value)))))
    return min(p.high, max(p.low, float(f"{float(value):.4g}")))


def draw_value(p: Param, rng: random.Random) -> Any:
    """One value of ``p`` at random: uniform over a value list, log-uniform between min and
    max for log params, uniform for the others (ints: every whole number equally likely)."""
    if p.is_choice:
        return p.values[rng.randrange(len(p.values))]
    assert p.low is not None and p.high is not None
    if p.log:
        if p.type == "int":  # log-uniform over [low - 0.5, high + 0.5) then rounded
            lo, hi = math.log(p.low - 0.5 if p.low > 0.5 else p.low), math.log(p.high + 0.5)
            return tidy_value(p, math.exp(rng.uniform(lo, hi)))
        return tidy_value(p, math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    if p.type == "int":
        return rng.randint(int(p.low), int(p.high))
    return tidy_value(p, rng.uniform(p.low, p.high))


def params_key(values: dict[str, Any]) -> str:
    """A stable text key of ``{param: value}`` (ints and equal floats alike)."""
    return json.dumps(
        {
            k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in sorted(values.items())
        },
        sort_keys=True,
    )


def notes_on(state: SearchState) -> list[NodeNote]:
    """The observation on each node of ``state.finished`` (numbers against its reference)."""
    out = []
    for i in state.finished:
        node = state.tree.get(i)
        if node is not None and not node.pending:
            out.append(NodeNote(i, observation(state.tree, node, state.classes)))
    return out


def plain_review(state: SearchState) -> BlockReview:
    """The block-end review of a searcher other than the tree: the block's numbers, no new
    rules (they are the tree's strategy rules) and ucb_c unchanged (it is not used)."""
    stats = strategies.block_stats(state.tree, state.block, state.reward)
    return BlockReview(summary=stats.summary(), next_ucb_c=state.ucb_c)


def baseline_proposal(state: SearchState, scratch: Tree, taken: dict[str, int]) -> Proposal | None:
    """The block's baseline (the root config unchanged) when it has not run, admitted to
    ``scratch``; None when the root config was tried already."""
    if config_key(state.root_config) in taken:
        return None
    proposal = Proposal(
        None,
        {},
        "baseline",
        f"Baseline: the block's starting config as given ({state.field}, {state.n_frames} "
        "frames), the reference of the configs this searcher draws.",
        None,
    )
    try:
        return admit(state, scratch, taken, proposal)
    except ProposalError:  # e.g. a root under the budget: the searcher's own configs go on
        return None


class DrawnSearcher(Proposer):
    """Base of the searchers that draw whole configs from the space (module docstring).

    ``propose``: notes on the finished nodes, ``observe`` (a subclass learns from them),
    the baseline at a block's start, then ``draw`` per free slot until it gives None.
    """

    name = "drawn"
    strategy = "random"

    def __init__(self, seed: int = 0, max_tries: int = 200) -> None:
        if seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {seed}")
        self.seed = int(seed)
        self.max_tries = int(max_tries)

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        batch = ProposalBatch([], notes_on(state), [])
        self.observe(state)
        if n_slots <= 0:
            return batch
        scratch = scratch_copy(state.tree)
        taken = taken_configs(scratch)
        base = baseline_proposal(state, scratch, taken)
        if base is not None:
            batch.proposals.append(base)
        while len(batch.proposals) < n_slots:
            proposal = self.draw(state, scratch, taken, len(batch.proposals))
            if proposal is None:
                batch.remarks.append(
                    f"{self.name}: no config inside the space, the size budget and not tried "
                    f"before in {self.max_tries} draws"
                )
                break
            batch.proposals.append(proposal)
        return batch

    def review_block(self, state: SearchState) -> BlockReview:
        return plain_review(state)

    def observe(self, state: SearchState) -> None:
        """Learn from the finished nodes of ``state`` (no-op for random search)."""

    @abstractmethod
    def draw(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], slot: int
    ) -> Proposal | None:
        """One proposal admitted to ``scratch`` (``admit``), or None after ``max_tries``."""

    @staticmethod
    def mutation_of(state: SearchState, values: dict[str, Any]) -> dict[str, Any]:
        """The params of ``values`` that differ from the root config, in space order."""
        root = state.root_config
        out = {}
        for name, value in values.items():
            p = state.space.param(name)
            if not p.same(root.get(p.key), value):
                out[name] = value
        return out

    def hypothesis(self, state: SearchState, mutation: dict[str, Any]) -> str:
        return (
            f"{self.name} search (seed {self.seed}): a config drawn from the {state.space.name} "
            f"space; {len(mutation)} of its parameters differ from the block's root config."
        )
