"""What a strategy condition returns (``Trigger``), the strategy names, and the thresholds
the conditions and the block-end review share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inr_tune.search.space import MULTI_PARAM_STRATEGIES
from inr_tune.search.tree import Node, Tree

__all__ = [
    "ALL_STRATEGIES",
    "HIGH_R2",
    "SAME_PARAM_LIMIT",
    "SEARCHER_STRATEGIES",
    "STRATEGIES",
    "Trigger",
    "ordered",
]

STRATEGIES = (
    "baseline",
    "exploit",
    "explore",
    "failure-probe",
    "recombine",
    "forced-branch",
    "switch-param",
    "robustness-test",
    "stochastic-field",
    "variant-sweep",
)
# Strategies of the searchers that draw whole configs from the space (--searcher random|tpe)
# rather than mutating a node: parent null (the block's root config), any number of params.
# Not in STRATEGIES, the tree's table (the LLM's tool schema lists that one).
SEARCHER_STRATEGIES = MULTI_PARAM_STRATEGIES  # ("random", "tpe")
ALL_STRATEGIES = STRATEGIES + SEARCHER_STRATEGIES
HIGH_R2 = 0.95  # "converged well": failure-probe and recombine thresholds
SAME_PARAM_LIMIT = 4  # forced-branch, switch-param and the review: one param this often


@dataclass(frozen=True)
class Trigger:
    """A strategy whose condition holds now."""

    strategy: str
    reason: str  # one line: the evidence
    parent: int | None = None  # node to branch from
    mutation: Mapping[str, Any] | None = None  # fixed by the strategy (recombine, robustness)
    other: int | None = None  # recombine: the node lending its value
    avoid: tuple[str, ...] = ()  # params not to mutate
    params: tuple[str, ...] = ()  # params to try, best first
    moves: tuple[tuple[str, Any], ...] = ()  # variant-sweep: (param, value) to try, in order


def ordered(tree: Tree, block: int) -> list[Node]:
    """The block's nodes in id order."""
    return sorted(tree.block_nodes(block), key=lambda n: n.id)
