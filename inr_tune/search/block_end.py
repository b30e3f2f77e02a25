"""A block's end: the verdict of each finished node (once its seed reruns are known) and
the proposer's review, journaled (``BlockSession.finish``)."""

from __future__ import annotations

from typing import Any

from inr_tune.journal import BlockEnd, NodeNoted, ReviewFailed
from inr_tune.search.proposers.base import BlockReview, Proposer, SearchState
from inr_tune.search.seeds import best_config
from inr_tune.search.tree import Node
from inr_tune.search.verdict import judge

__all__ = ["judge_block", "review_block"]


def judge_block(ctx: Any, nodes: list[Node]) -> None:
    """The verdict of every finished node of ``nodes`` that has none yet (journaled, so a
    resumed run keeps them)."""
    for node in nodes:
        if node.pending or node.verdict is not None:
            continue
        v = judge(ctx.tree, node.id)
        ctx.log(NodeNoted(node_id=node.id, verdict=v.word, basis=v.basis))
        ctx.tree.note(node.id, verdict=v.word, basis=v.basis)


def review_block(
    ctx: Any, state: SearchState, block: int, spec: Any, nodes: list[Node]
) -> BlockReview:
    """The proposer's block-end review (the computed one if the proposer fails), its best
    config and next ucb_c in a ``block_end`` line; new rules join ``ctx.rules``."""
    try:
        review = ctx.proposer.review_block(state)
    except Exception as err:  # a proposer bug must not lose the block
        ctx.log(ReviewFailed(block=block, error=f"{type(err).__name__}: {err}"))
        review = Proposer.review_block(ctx.proposer, state)  # the computed one
    review.next_ucb_c = min(3.0, max(0.5, float(review.next_ucb_c)))
    top = best_config(ctx.tree, nodes)
    best = top.original if top is not None else None
    ctx.log(
        BlockEnd(
            block=block,
            field=spec.field,
            n_frames=spec.n_frames,
            best=best.id if best else None,
            summary=review.summary,
            principles=review.principles,
            open_questions=review.open_questions,
            next_ucb_c=review.next_ucb_c,
            new_rules=review.new_rules,
        )
    )
    for rule in review.new_rules:
        if rule not in ctx.rules:
            ctx.rules.append(rule)
    return review
