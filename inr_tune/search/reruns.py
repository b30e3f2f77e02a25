"""The seed reruns a block ends with: new seeds of its best config, proposed by the session
(not the proposer) as the block's last batch, so every block measures its seed noise."""

from __future__ import annotations

from typing import Any

from inr_tune.search.proposers.base import Proposal, taken_configs
from inr_tune.search.seeds import members
from inr_tune.search.space import as_config, config_key
from inr_tune.search.tree import Node, Tree

__all__ = ["rerun_proposals"]


def rerun_proposals(tree: Tree, space: Any, best: Node, want: int) -> list[Proposal]:
    """Up to ``want`` robustness-test proposals of ``best`` with the next free seeds."""
    seed = space.seed_param()
    if seed is None or want <= 0:
        return []
    have = len(members(tree, best)) - 1
    cfg = as_config(best.config)
    taken = set(taken_configs(tree))
    value = int(cfg.get(seed.key))
    proposals: list[Proposal] = []
    while len(proposals) < want and (seed.high is None or value < seed.high):
        value += 1
        if config_key(space.apply(cfg, {seed.name: value})) in taken:
            continue
        proposals.append(
            Proposal(
                best.id,
                {seed.name: value},
                "robustness-test",
                f"Seed rerun {have + len(proposals) + 1} of the block's best config "
                f"(node {best.id}): measures the seed noise that the block's "
                "verdicts test against, and gives the best config as mean ± SD.",
                "same",
            )
        )
    return proposals
