"""Seed reruns: which nodes ran the same config, and what their spread says.

A seed rerun (robustness-test) is a node whose only change from its parent is the seed.
A config's *runs* are its original node and every seed rerun below it (a rerun of a
rerun joins the original). Statistics are taken on the nines scale, −log10(1 − R²)
(``decades``), where 0.999 → 0.9999 is as large a step as 0.99 → 0.999 and seed noise is
roughly constant; means ± SD for people are reported in R² itself.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from inr_tune.search.tree import EARLY_STOPPED, HAS_R2, Node, Tree

__all__ = [
    "SEED_PARAMS",
    "Runs",
    "best_config",
    "decades",
    "group_spread",
    "is_seed_rerun",
    "members",
    "original_of",
    "runs_of",
    "seed_groups",
    "unconfirmed",
]

SEED_PARAMS = ("seed", "training.seed")


def decades(r2: float) -> float:
    """−log10(1 − R²) without the nines cap (R² ≥ 1 → 15; negative below R² = 0)."""
    return -math.log10(max(1.0 - r2, 1e-15))


def is_seed_rerun(node: Node) -> bool:
    """True for a robustness re-run: the only change from its parent is the seed."""
    return len(node.mutation) == 1 and node.mutated in SEED_PARAMS


def original_of(tree: Tree, node: Node) -> Node:
    """The node whose config ``node`` re-runs (``node`` itself when it is no rerun)."""
    while is_seed_rerun(node) and node.parent is not None and node.parent in tree:
        node = tree[node.parent]
    return node


def members(tree: Tree, original: Node) -> list[Node]:
    """``original`` and every seed rerun below it, whatever their status."""
    members, stack = [original], [original.id]
    while stack:
        for child in tree.children(stack.pop()):
            if is_seed_rerun(child):
                members.append(child)
                stack.append(child.id)
    return members


@dataclass(frozen=True)
class Runs:
    """The finished, fully trained runs of one config (early-stopped ones left out)."""

    original: Node
    nodes: tuple[Node, ...]

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def ids(self) -> list[int]:
        return [n.id for n in self.nodes]

    @property
    def values(self) -> list[float]:
        """Nines (decades of 1 − R²) of each run."""
        return [decades(n.r2) for n in self.nodes if n.r2 is not None]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        """Sample SD (ddof 1) of the nines; None with fewer than 2 runs."""
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def spread(self) -> float | None:
        """max − min of the nines; None with fewer than 2 runs."""
        return max(self.values) - min(self.values) if self.n >= 2 else None

    def r2_text(self, short: bool = False) -> str:
        """``0.999994 ± 0.000002 (3 seeds: nodes 4, 9, 10)`` or ``0.999994 (1 seed, not
        re-run)``: mean ± sample SD of R² over the runs; ``short`` leaves out the nodes."""
        r2s = [float(n.r2) for n in self.nodes if n.r2 is not None]
        mean = statistics.fmean(r2s)
        if len(r2s) < 2:
            return f"{_fmt(mean)} (1 seed{'' if short else ', not re-run'})"
        sd = statistics.stdev(r2s)
        where = "" if short else f": nodes {', '.join(map(str, self.ids))}"
        return f"{_fmt(mean, sd)} ± {_fmt(sd, sd)} ({len(r2s)} seeds{where})"


def _fmt(value: float, scale: float | None = None) -> str:
    """R² with digits down to the SD's second significant digit (6 at least)."""
    digits = 6
    if scale is not None and scale > 0:
        digits = min(10, max(6, 1 - math.floor(math.log10(scale))))
    return f"{value:.{digits}f}"


def runs_of(tree: Tree, node_id: int) -> Runs:
    """The config of ``node_id``: its original and reruns that finished with an R²."""
    original = original_of(tree, tree[node_id])
    done = [
        n
        for n in members(tree, original)
        if n.status in HAS_R2 and n.status != EARLY_STOPPED and n.r2 is not None
    ]
    return Runs(original, tuple(done))


def seed_groups(tree: Tree, block: int | None = None) -> list[list[Node]]:
    """Configs re-run with other seeds: ``[original, rerun, …]`` per group (≥ 2 nodes).

    Only groups whose original is in ``block`` (if given) are returned.
    """
    groups = []
    for node in tree.nodes:
        if is_seed_rerun(node) or (block is not None and node.block != block):
            continue
        group = members(tree, node)
        if len(group) > 1:
            groups.append(group)
    return groups


def group_spread(group: list[Node], kind: str = "nines") -> float | None:
    """max − min of the group's finished rewards (``kind`` r2 or nines); None if < 2."""
    values = [n.reward(kind) for n in group if n.status in HAS_R2 and n.r2 is not None]
    return max(values) - min(values) if len(values) >= 2 else None


def _configs(tree: Tree, nodes: Iterable[Node]) -> list[Runs]:
    seen: dict[int, Runs] = {}
    for node in nodes:
        if node.pending:
            continue
        runs = runs_of(tree, node.id)
        if runs.n:
            seen.setdefault(runs.original.id, runs)
    return list(seen.values())


def best_config(tree: Tree, nodes: Iterable[Node]) -> Runs | None:
    """The best config among ``nodes``' configs, by its mean nines over its runs.

    Configs run with several seeds come first: a single run above their mean is as
    likely a lucky seed as a better config (``unconfirmed`` names it). Ties go to more
    runs, then the earlier node. None when nothing finished with an R².
    """
    configs = _configs(tree, nodes)
    pool = [r for r in configs if r.n >= 2] or configs
    if not pool:
        return None
    return max(pool, key=lambda r: (r.mean, r.n, -r.original.id))


def unconfirmed(tree: Tree, nodes: Iterable[Node], top: Runs) -> Node | None:
    """The best single-run config whose R² beats ``top``'s mean, None if there is none."""
    singles = [r for r in _configs(tree, nodes) if r.n == 1 and r.mean > top.mean]
    if top.n < 2 or not singles:
        return None
    return max(singles, key=lambda r: (r.mean, -r.original.id)).original
