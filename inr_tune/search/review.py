"""The block-end review: what a block did (``block_stats``), and the next block's ucb_c and
new rules from the study's checklist (``review``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from inr_tune.search.seeds import best_config, is_seed_rerun, unconfirmed
from inr_tune.search.tree import Node, Tree
from inr_tune.search.trigger import SAME_PARAM_LIMIT, ordered
from inr_tune.search.verdict import compare_words

__all__ = ["UCB_C_RANGE", "BlockStats", "block_stats", "review"]

UCB_C_RANGE = (0.5, 3.0)


def _span(ids: list[int]) -> str:
    """``nodes 3, 4, 6`` or, for long runs, ``12 results, nodes 22–41``."""
    if len(ids) <= 4:
        return "nodes " + ", ".join(map(str, ids))
    return f"{len(ids)} results, nodes {ids[0]}–{ids[-1]}"


@dataclass
class BlockStats:
    """What a block did, computed from the tree (the block-end review's input)."""

    block: int
    n_nodes: int
    n_finished: int
    n_failed: int
    branching_rate: float | None  # share of nodes whose parent is not the previous node
    improvement_rate: float | None  # share of compared nodes better than their reference
    plateau: list[int]  # longest run (3+) of consecutive results within ±tol, else []
    same_param_run: int  # longest run of consecutive nodes mutating one param
    same_param: str | None
    best: int | None  # the config with the best mean over its seeds (seeds.best_config)
    best_r2: float | None  # its first run's R²
    strategies: dict[str, int] = field(default_factory=dict)
    best_text: str = ""  # "R² mean ± SD (n seeds: nodes …)"
    verdicts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for memory.md."""
        pct = lambda x: "n/a" if x is None else f"{x:.0%}"  # noqa: E731
        best = (
            f"best config node {self.best} (R² {self.best_text or f'{self.best_r2:.5f}'})"
            if self.best is not None and self.best_r2 is not None
            else "no successful node"
        )
        plateau = (
            f"plateau over nodes {', '.join(map(str, self.plateau))}"
            if self.plateau
            else "no plateau"
        )
        used = ", ".join(f"{k} ×{v}" for k, v in sorted(self.strategies.items()))
        return (
            f"Block {self.block}: {self.n_nodes} nodes ({self.n_failed} failed), {best}; "
            f"branching {pct(self.branching_rate)}, improvement {pct(self.improvement_rate)}, "
            f"{plateau}, longest same-parameter run {self.same_param_run}"
            + (f" ({self.same_param})" if self.same_param else "")
            + (f"; strategies: {used}" if used else "")
            + (
                "; verdicts: " + ", ".join(f"{v} {k}" for k, v in sorted(self.verdicts.items()))
                if self.verdicts
                else ""
            )
            + "."
        )


def block_stats(
    tree: Tree, block: int, reward: str = "nines", plateau_tol: float = 0.05
) -> BlockStats:
    """Branching rate, improvement rate, plateau, same-param runs and best node of a block.

    Plateau: 3+ consecutive finished results whose rewards (in the run's ``reward`` scale;
    in nines ±0.05 ≈ ±0.3 decades of 1 − R²) all lie within ±``plateau_tol`` of their mean.
    """
    nodes = ordered(tree, block)
    finished = [n for n in nodes if n.finished]
    branching = None
    if len(nodes) >= 2:
        branching = sum(1 for prev, n in pairwise(nodes) if n.parent != prev.id) / (len(nodes) - 1)
    compared = []
    for n in finished:
        ref = tree.reference(n.id)
        if ref is not None and ref.finished and n.mutation:
            compared.append(compare_words(n.r2, ref.r2) == "better")
    improvement = sum(compared) / len(compared) if compared else None

    plateau: list[Node] = []
    start = 0
    for end in range(len(finished)):
        while start < end:
            vals = [n.reward(reward) for n in finished[start : end + 1]]
            if max(vals) - min(vals) <= 2 * plateau_tol:
                break
            start += 1
        window = finished[start : end + 1]
        if len(window) > len(plateau):
            plateau = window
    run, best_run, best_param, current = 0, 0, None, None
    for n in nodes:
        p = n.mutated if n.mutation and not is_seed_rerun(n) else None
        run = run + 1 if p is not None and p == current else (1 if p is not None else 0)
        current = p
        if run > best_run:
            best_run, best_param = run, p
    top = best_config(tree, nodes)
    best = top.original if top is not None else None
    return BlockStats(
        block=block,
        n_nodes=len(nodes),
        n_finished=len(finished),
        n_failed=sum(1 for n in finished if n.r2 is None),
        branching_rate=branching,
        improvement_rate=improvement,
        plateau=[n.id for n in plateau] if len(plateau) >= 3 else [],
        same_param_run=best_run,
        same_param=best_param,
        best=best.id if best else None,
        best_r2=best.r2 if best else None,
        strategies=dict(Counter(n.strategy for n in nodes)),
        best_text=(top.r2_text() + _unconfirmed_text(tree, nodes, top)) if top else "",
        verdicts=dict(Counter(n.verdict for n in nodes if n.verdict)),
    )


def _unconfirmed_text(tree: Tree, nodes: list[Node], top: Any) -> str:
    lucky = unconfirmed(tree, nodes, top)
    if lucky is None:
        return ""
    return f"; node {lucky.id} scored {lucky.r2:.6f} once, not re-run"


def review(stats: BlockStats, ucb_c: float) -> tuple[float, list[str]]:
    """Next block's ucb_c and new rules, from the study's block-end checklist.

    Branching < 20 % → exploration rule, c × 1.25. Improvement < 30 % → c × 0.8 (exploit
    more); > 80 % → c × 1.25 (explore more). Plateau → forced-branching rule, c ≥ 2.0.
    More than 4 consecutive mutations of one param → switch-dimension rule. c stays in
    0.5..3.0.
    """
    c = float(ucb_c)
    rules: list[str] = []
    if stats.branching_rate is not None and stats.branching_rate < 0.2:
        rules.append(
            f"Branching was {stats.branching_rate:.0%} in block {stats.block} (< 20%): give "
            "at least one slot per batch to a parent outside the recent chain."
        )
        c *= 1.25
    if stats.improvement_rate is not None:
        if stats.improvement_rate < 0.3:
            c *= 0.8
        elif stats.improvement_rate > 0.8:
            c *= 1.25
    if stats.plateau:
        rules.append(
            f"Block {stats.block} plateaued ({_span(stats.plateau)}): after "
            "3 results within ±0.05, branch from the 2nd-best UCB node and change another parameter."
        )
        c = max(c, 2.0)
    if stats.same_param_run > SAME_PARAM_LIMIT:
        rules.append(
            f"{stats.same_param} was mutated {stats.same_param_run} times in a row in block "
            f"{stats.block}: switch dimension after {SAME_PARAM_LIMIT} consecutive mutations of one parameter."
        )
    lo, hi = UCB_C_RANGE
    return round(min(hi, max(lo, c)), 3), rules
