"""Proposers: one interface (``Proposer``), the offline ``RuleProposer``, Claude's
``LLMProposer``, and the other searchers of ``--searcher``: ``RandomProposer`` (random),
``TPEProposer`` (tpe, Optuna through Ray Tune), ``GreedyProposer`` (greedy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from inr_tune.errors import ConfigError
from inr_tune.search.proposers.base import (
    BlockReview,
    NodeNote,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    check_proposal,
    taken_configs,
)
from inr_tune.search.proposers.greedy import GreedyProposer
from inr_tune.search.proposers.llm import LLMProposer
from inr_tune.search.proposers.random_search import RandomProposer
from inr_tune.search.proposers.rule import RuleProposer

__all__ = [
    "BlockReview",
    "GreedyProposer",
    "LLMProposer",
    "NodeNote",
    "Proposal",
    "ProposalBatch",
    "Proposer",
    "RandomProposer",
    "RuleProposer",
    "SearchState",
    "check_proposal",
    "make_proposer",
    "taken_configs",
]


def make_proposer(search: Any, run_dir: Path, log: Any) -> tuple[Any, str]:
    """(proposer, name) for ``search`` (the settings' search section).

    ``search.searcher`` other than ``ucb`` picks that searcher (``search.proposer`` is then
    not used); ``tpe`` without optuna installed is a one-line ConfigError.
    """
    searcher = getattr(search, "searcher", "ucb")
    if searcher == "random":
        return RandomProposer(seed=search.seed), f"random search (seed {search.seed})"
    if searcher == "greedy":
        return GreedyProposer(seed=search.seed), f"greedy (seed {search.seed})"
    if searcher == "tpe":
        from inr_tune.search.proposers.tpe import TPEProposer

        return TPEProposer(seed=search.seed), f"tpe (Optuna TPE, seed {search.seed})"
    rule = RuleProposer(seed=search.seed)
    choice = search.proposer
    has_key = bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))
    if choice == "auto":
        choice = "llm" if has_key else "rule"
    if choice == "rule":
        return rule, "rule"
    if not has_key and not os.environ.get("ANTHROPIC_BASE_URL"):
        raise ConfigError(
            "--proposer llm needs ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) in the environment"
        )
    from inr_tune.search.proposers.llm import LLMProposer

    llm = LLMProposer(
        search.llm_model,
        fallback=rule,
        run_dir=run_dir,
        log=log,
        timeout_s=search.llm_timeout_s,
        max_retries=search.llm_max_retries,
    )
    return llm, f"llm ({search.llm_model})"
