"""Comparisons of a trial with its parent, made in code (never left to the model).

All comparisons use the nines scale, reward ``nines`` = min(−log10(1 − R²), 6) / 6, in
which 0.999 → 0.9999 is as large a step as 0.99 → 0.999. A difference smaller than the
noise is not evidence either way. The noise is ``DEFAULT_NOISE`` (0.02 reward units, i.e.
0.12 decades of 1 − R²: about 0.9990 vs 0.99924), or the seed-to-seed spread measured by
robustness tests along the node's lineage when that is larger (``seed_noise``).
"""

from __future__ import annotations

import math

from inr_tune.search.tree import HAS_R2, Node, Tree, reward_of

__all__ = [
    "DEFAULT_NOISE",
    "VERDICTS",
    "compare_words",
    "decades",
    "describe_change",
    "group_spread",
    "is_seed_rerun",
    "seed_groups",
    "seed_noise",
    "verdict",
    "verdict_for",
]

DEFAULT_NOISE = 0.02
VERDICTS = ("supported", "falsified", "inconclusive")
SEED_PARAMS = ("seed", "training.seed")
_SAME_DECADES = 0.005  # compare_words: |Δ| below this many decades of 1 − R² is "same"


def decades(r2: float) -> float:
    """−log10(1 − R²) without the nines cap (R² ≥ 1 → 15)."""
    return -math.log10(max(1.0 - r2, 1e-15))


def _nines(r2: float | None) -> float:
    return reward_of(r2, "nines")


def verdict(
    child_r2: float | None,
    parent_r2: float | None,
    expect: str | None,
    noise: float | None = None,
) -> str:
    """``supported`` | ``falsified`` | ``inconclusive`` for a hypothesis on a child trial.

    ``child_r2`` None means the child failed or diverged (reward 0); ``parent_r2`` None a
    failed parent (reward 0). Δ = nines(child) − nines(parent). Within ±noise: "same" is
    supported, "improve"/"worsen" inconclusive. Beyond it the sign decides: "improve" needs
    Δ > noise, "worsen" Δ < −noise; any other outcome falsifies. A failed child falsifies
    "improve" outright. No expectation (None) → inconclusive.
    """
    if expect is None:
        return "inconclusive"
    if expect not in ("improve", "worsen", "same"):
        raise ValueError(f"expect={expect!r}; allowed: improve, worsen, same")
    noise = DEFAULT_NOISE if noise is None else max(0.0, float(noise))
    failed = child_r2 is None or (isinstance(child_r2, float) and math.isnan(child_r2))
    if failed and expect == "improve":
        return "falsified"
    delta = _nines(child_r2) - _nines(parent_r2)
    if abs(delta) <= noise:
        return "supported" if expect == "same" else "inconclusive"
    if expect == "improve":
        return "supported" if delta > 0 else "falsified"
    if expect == "worsen":
        return "supported" if delta < 0 else "falsified"
    return "falsified"


def compare_words(child_r2: float | None, parent_r2: float | None) -> str:
    """``better`` | ``worse`` | ``same``, from the numbers (a higher R² is never "worse").

    A missing R² (failed trial) ranks below any R². Above 0 the two are "same" when they
    differ by less than 0.005 decades of 1 − R² (≈ 1 % of the remaining error).
    """
    if child_r2 is None and parent_r2 is None:
        return "same"
    if child_r2 is None:
        return "worse"
    if parent_r2 is None:
        return "better"
    if child_r2 == parent_r2:
        return "same"
    if (
        child_r2 > 0
        and parent_r2 > 0
        and abs(decades(child_r2) - decades(parent_r2)) < _SAME_DECADES
    ):
        return "same"
    return "better" if child_r2 > parent_r2 else "worse"


def _r2_text(r2: float) -> str:
    digits = 5
    if 0 < r2 < 1:
        digits = min(8, max(5, math.floor(decades(r2)) + 2))
    return f"{r2:.{digits}f}"


def describe_change(child_r2: float | None, parent_r2: float | None, ref: str = "parent") -> str:
    """``R² 0.99912 vs parent 0.99870: better by 0.00042 (+0.17 nines)``.

    "nines" are decades of 1 − R² (0.99 → 0.999 is +1 nine).
    """
    if child_r2 is None:
        return "no R²"
    if parent_r2 is None:
        return f"R² {_r2_text(child_r2)} ({ref} has no R²)"
    word = compare_words(child_r2, parent_r2)
    a, b = _r2_text(child_r2), _r2_text(parent_r2)
    text = f"R² {a} vs {ref} {b}: {word}"
    if child_r2 != parent_r2:
        digits = max(len(a), len(b)) - a.index(".") - 1
        text += f" by {abs(child_r2 - parent_r2):.{digits}f}"
    if child_r2 > 0 and parent_r2 > 0:
        text += f" ({decades(child_r2) - decades(parent_r2):+.2f} nines)"
    return text


# ----------------------------------------------------------------------------- seed noise


def is_seed_rerun(node: Node) -> bool:
    """True for a robustness re-run: the only change from its parent is the seed."""
    return len(node.mutation) == 1 and node.mutated in SEED_PARAMS


def seed_groups(tree: Tree, block: int | None = None) -> list[list[Node]]:
    """Configs re-run with other seeds: ``[original, rerun, …]`` per group (≥ 2 nodes).

    A rerun of a rerun joins its original's group. Only groups whose original is in
    ``block`` (if given) are returned.
    """
    groups = []
    for node in tree.nodes:
        if is_seed_rerun(node) or (block is not None and node.block != block):
            continue
        members = [node]
        stack = [node.id]
        while stack:
            for child in tree.children(stack.pop()):
                if is_seed_rerun(child):
                    members.append(child)
                    stack.append(child.id)
        if len(members) > 1:
            groups.append(members)
    return groups


def group_spread(group: list[Node], kind: str = "nines") -> float | None:
    """max − min of the group's finished rewards (``kind`` r2 or nines); None if < 2."""
    values = [n.reward(kind) for n in group if n.status in HAS_R2 and n.r2 is not None]
    return max(values) - min(values) if len(values) >= 2 else None


def seed_noise(tree: Tree, node_id: int, exclude: int | None = None) -> float | None:
    """Seed-to-seed spread (nines reward units) measured along ``node_id``'s lineage.

    The lineage is the node and its ancestors; each of them that was re-run with other
    seeds gives a spread (max − min reward of the group); the largest is returned, None
    when no robustness test touched the lineage. ``exclude`` leaves one node out (the
    re-run being judged must not measure its own noise).
    """
    lineage = {n.id for n in tree.chain(node_id)}
    spreads = []
    for group in seed_groups(tree):
        if group[0].id in lineage:
            spread = group_spread([n for n in group if n.id != exclude])
            if spread is not None:
                spreads.append(spread)
    return max(spreads) if spreads else None


def verdict_for(tree: Tree, node_id: int, default_noise: float = DEFAULT_NOISE) -> str:
    """The verdict on a finished node's hypothesis, against ``tree.reference(node_id)``.

    The noise is the larger of ``default_noise`` and the lineage's seed noise. A baseline
    (no reference) or a node without ``expect`` is inconclusive.
    """
    node = tree[node_id]
    ref = tree.reference(node_id)
    if ref is None or node.pending:
        return "inconclusive"
    measured = seed_noise(tree, ref.id, exclude=node.id)
    noise = max(default_noise, measured) if measured is not None else default_noise
    return verdict(node.r2, ref.r2, node.expect, noise)
