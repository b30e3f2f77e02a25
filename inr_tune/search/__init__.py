"""The search core: space (params, moves, validation), tree (nodes, UCB), verdicts and
strategies. No Ray, Lightning or torch here; proposers live in ``inr_tune.search.proposers``
and the Ray adapter in ``inr_tune.runner.searcher``.
"""

from __future__ import annotations

from inr_tune.search.space import Param, SearchSpace, config_key, fmt_value
from inr_tune.search.strategies import STRATEGIES, BlockStats, Trigger, block_stats, detect, review
from inr_tune.search.tree import Node, Tree, UCBScore, format_ucb_scores, reward_of
from inr_tune.search.verdict import Verdict, compare_words, judge, seed_noise, verdict_for

__all__ = [
    "STRATEGIES",
    "BlockStats",
    "Node",
    "Param",
    "SearchSpace",
    "Tree",
    "Trigger",
    "UCBScore",
    "Verdict",
    "block_stats",
    "compare_words",
    "config_key",
    "detect",
    "fmt_value",
    "format_ucb_scores",
    "judge",
    "review",
    "reward_of",
    "seed_noise",
    "verdict_for",
]
