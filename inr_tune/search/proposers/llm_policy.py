"""What ``LLMProposer`` does with the model's answers: accept, re-ask once, fall back.

A batch (``ask_batch``): the model's proposals are read (``llm_parse``) and checked with
``check_proposal`` against a scratch copy of the tree (``admit``), so two proposals of one
batch cannot repeat each other. Then:

1. Proposals that fail are retried once, in the same conversation: the assistant's
   ``tool_use`` is followed by a ``tool_result`` with ``is_error: true`` that quotes each
   error verbatim and asks for exactly that many replacements (``llm_prompts.render_retry``).
   Surplus proposals (more than the slots, or than the rejected ones in the retry turn) are
   ignored, and a remark says so; a short answer is not retried.
2. Slots still empty (rejected twice, or never answered) are filled by the fallback on the
   state with the accepted proposals added as pending nodes.
3. A call with no usable tool call (``CallError``: API error, timeout, malformed answer, no
   tool call) gives the whole batch to the fallback.

A review (``ask_review``): the model's review, or the fallback's when the call or its
answer fails.

``Fallback`` is the one place where the fallback proposer (the rule proposer) steps in;
each time it logs ``llm_fallback(slots, reason)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.proposers import llm_parse as parse
from inr_tune.search.proposers.base import (
    BlockReview,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    admit,
    taken_configs,
)
from inr_tune.search.proposers.llm_calls import Calls, Turn
from inr_tune.search.proposers.llm_prompts import (
    batch_messages,
    finished_nodes,
    render_retry,
    render_review,
    render_system,
    retry_messages,
)
from inr_tune.search.proposers.llm_tools import batch_tool, review_tool
from inr_tune.search.tree import Tree

__all__ = ["Fallback", "ask_batch", "ask_review"]


class Fallback:
    """The fallback proposer, asked for what the model did not give (module docstring)."""

    def __init__(self, proposer: Proposer, calls: Calls) -> None:
        self.proposer = proposer
        self._calls = calls

    def batch(self, state: SearchState, n_slots: int, reason: str) -> ProposalBatch:
        """The whole batch, notes and remarks included."""
        self._calls.emit("llm_fallback", slots=n_slots, reason=reason)
        return self.proposer.propose(state, n_slots)

    def fill(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], k: int, reason: str
    ) -> list[Proposal]:
        """``k`` slots, on the state with the accepted proposals (``scratch``) pending."""
        self._calls.emit("llm_fallback", slots=k, reason=reason)
        more = self.proposer.propose(dataclasses.replace(state, tree=scratch, finished=[]), k)
        out = []
        for p in more.proposals[:k]:
            try:
                out.append(admit(state, scratch, taken, p))
            except ProposalError:
                continue
        return out

    def review(self, state: SearchState, reason: str) -> BlockReview:
        self._calls.emit("llm_fallback", slots=0, reason=reason)
        return self.proposer.review_block(state)


def ask_batch(calls: Calls, fallback: Fallback, state: SearchState, n_slots: int) -> ProposalBatch:
    """Up to ``n_slots`` checked proposals and notes on ``state.finished`` (module docstring)."""
    finished = finished_nodes(state)
    if n_slots == 0 and not finished:
        return ProposalBatch()
    system = render_system(state)
    first = calls.ask("propose", 1, system, batch_messages(state, n_slots), batch_tool(state.space))
    answer = first.tool_call
    if answer is None:
        calls.done(first)
        return fallback.batch(state, n_slots, first.failure)

    redact = calls.client.redact
    scratch = state.tree.copy()
    taken = taken_configs(scratch)
    items, errors = parse.read_items(answer.input)
    accepted, errors = _admit_all(state, scratch, taken, items[:n_slots], errors, redact)
    if items or not errors:
        n_bad, n_missing = len(errors), max(0, n_slots - len(items))
    else:  # no proposals list at all: every slot is retried
        n_bad, n_missing = n_slots, 0
    calls.done(first, "invalid" if errors else "ok", "; ".join(errors) or None)

    notes, dropped = parse.read_notes(state, answer.input, finished, redact)
    if dropped:
        calls.emit("llm_notes_dropped", reasons=dropped)
    batch = ProposalBatch(notes=notes)
    ack = parse.read_acknowledgement(answer.input, redact)
    if state.user_input.strip() and ack:
        batch.remarks.append(f"acknowledgement: {ack}")
    if len(items) > n_slots:
        batch.remarks.append(
            f"the model proposed {len(items)} trials for {n_slots} slots; "
            f"the last {len(items) - n_slots} were ignored"
        )

    reasons: list[str] = []
    if n_bad:
        retried, still = _retry(calls, state, scratch, taken, first, errors, n_bad, batch.remarks)
        accepted += retried
        if still:
            reasons.append(still)
    if n_missing:
        reasons.append(f"the model proposed {len(items)} of {n_slots} trials")
    left = n_slots - len(accepted)
    if left > 0:
        reason = "; ".join(reasons) or "too few valid proposals"
        accepted += fallback.fill(state, scratch, taken, left, reason)
    batch.proposals = accepted
    return batch


def _admit_all(
    state: SearchState,
    scratch: Tree,
    taken: dict[str, int],
    items: list[Any],
    errors: list[str],
    redact: parse.Redact,
) -> tuple[list[Proposal], list[str]]:
    """Read and ``admit`` each item; the accepted ones and ``errors`` with each rejection."""
    accepted: list[Proposal] = []
    errors = list(errors)
    for i, item in enumerate(items, 1):
        try:
            accepted.append(admit(state, scratch, taken, parse.read_proposal(item, redact)))
        except ProposalError as err:
            errors.append(f"{parse.describe_item(i, item)}: {err}")
    return accepted, errors


def _retry(
    calls: Calls,
    state: SearchState,
    scratch: Tree,
    taken: dict[str, int],
    first: Turn,
    errors: list[str],
    n_bad: int,
    remarks: list[str],
) -> tuple[list[Proposal], str]:
    """One more turn for ``n_bad`` rejected slots; (accepted, reason the rest failed).
    Surplus proposals of the answer are ignored, with a remark added to ``remarks``."""
    assert first.tool_call is not None
    text = render_retry(state, scratch, errors, n_bad)
    follow = retry_messages(first.messages, first.tool_call, text)
    turn = calls.ask("retry", 2, first.system, follow, batch_tool(state.space))
    answer = turn.tool_call
    if answer is None:
        calls.done(turn)
        return [], f"retry failed ({turn.failure}); first errors: {'; '.join(errors)}"
    items, still = parse.read_items(answer.input)
    if len(items) > n_bad:
        remarks.append(
            f"the retry proposed {len(items)} trials for {n_bad} rejected "
            f"slot{'s' if n_bad > 1 else ''}; the last {len(items) - n_bad} were ignored"
        )
    accepted, still = _admit_all(state, scratch, taken, items[:n_bad], still, calls.client.redact)
    if len(items) < n_bad and not still:
        still.append(f"the retry proposed {len(items)} of {n_bad} trials")
    calls.done(turn, "invalid" if still else "ok", "; ".join(still) or None)
    return accepted, ("still rejected after the retry: " + "; ".join(still)) if still else ""


def ask_review(calls: Calls, fallback: Fallback, state: SearchState) -> BlockReview:
    """The model's review of the block; the fallback's when the call or its answer fails.

    The prompt holds the code-computed ``strategies.block_stats`` and ``strategies.review``
    suggestion (``llm_parse.read_review`` for what is kept of the answer)."""
    stats = strategies.block_stats(state.tree, state.block, state.reward)
    next_c, rules = strategies.review(stats, state.ucb_c)
    messages = [{"role": "user", "content": render_review(state, stats, next_c, rules)}]
    turn = calls.ask("review", 1, render_system(state), messages, review_tool())
    if turn.tool_call is None:
        calls.done(turn)
        return fallback.review(state, f"review {turn.failure}")
    try:
        review = parse.read_review(turn.tool_call.input, stats, state, calls.client.redact)
    except (ValueError, TypeError) as err:
        calls.done(turn, "invalid", str(err))
        return fallback.review(state, f"review invalid: {err}")
    calls.done(turn)
    return review
