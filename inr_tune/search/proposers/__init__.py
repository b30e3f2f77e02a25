"""Proposers: one interface (``Proposer``), the offline ``RuleProposer``, Claude's ``LLMProposer``."""

from __future__ import annotations

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
from inr_tune.search.proposers.llm import LLMProposer
from inr_tune.search.proposers.rule import RuleProposer

__all__ = [
    "BlockReview",
    "LLMProposer",
    "NodeNote",
    "Proposal",
    "ProposalBatch",
    "Proposer",
    "RuleProposer",
    "SearchState",
    "check_proposal",
    "taken_configs",
]
