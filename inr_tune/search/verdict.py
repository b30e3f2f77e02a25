"""Verdicts on hypotheses, made in code (never left to the model), as a stated test.

A trial's hypothesis predicts that its change will ``improve``, ``worsen`` or leave the
same (``same``) the held-out R² of its reference (its parent, or the block's baseline).
Each verdict is computed once, when its block ends (every seed rerun of the block is
known then), stored on the node with the line that explains it (``Verdict.basis``), and
shown with the same word everywhere.

The test, on the nines scale (decades of 1 − R², ``seeds.decades``):

- Δ = mean nines of the child's runs − mean nines of the reference's runs (a config's
  runs are its node and its seed reruns, ``seeds.runs_of``).
- The noise σ is the pooled SD of the seed reruns of the two configs compared; when
  neither was re-run, of the nearest ancestor that was; else of the block's re-run config
  with the largest SD. The basis names the nodes it came from. No rerun anywhere in the
  block: ``inconclusive`` (the noise is unknown).
- A difference is called when |Δ| > t(1 − α/2, df) · σ · √(1/n_child + 1/n_ref), a
  two-sided Welch-free t-test at α = 0.01 with df the pooled degrees of freedom. α is
  1 % rather than 5 % because a block makes 8–30 such comparisons and one false call in
  twenty would plant a wrong "fact" in most blocks. With 3 seeds on each side (df 4) the
  margin is 3.8 σ, so a 5-σ effect is called; with one run against a 3-seed config
  (df 2) it is 11.5 σ — few seeds buy little certainty, and the verdict says so.
- With fewer than 3 runs on either side the difference must also exceed the largest
  seed spread (max − min) seen in the block.
- ``improve``/``worsen``: a called difference of the predicted sign supports, of the other
  sign falsifies; an uncalled one is ``inconclusive`` ("no difference" supports nothing).
- ``same``: a called difference falsifies; equivalence supports it only when the 90 %
  confidence interval of Δ lies inside ±``EQUIVALENCE`` nines (two one-sided tests at
  5 %); otherwise ``inconclusive``.
- A failed or diverged child is a categorical outcome: it falsifies ``improve`` and
  ``same`` and supports ``worsen`` (a failed reference mirrors this).
- ``inconclusive`` without a test: a baseline, a node with no prediction, a seed rerun
  (it measures the noise), a run stopped early by ASHA (partly trained), and a change of
  steps, batch size or schedule where either run was cut by the clock or had its schedule
  shortened to fit ``training.max_minutes`` (the change did not act as stated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inr_tune.search.seeds import (
    Runs,
    decades,
    group_spread,
    is_seed_rerun,
    original_of,
    runs_of,
    seed_groups,
)
from inr_tune.search.tree import EARLY_STOPPED, Node, Tree

__all__ = [
    "ALPHA",
    "EQUIVALENCE",
    "VERDICTS",
    "Noise",
    "Verdict",
    "block_spread",
    "compare_runs",
    "compare_words",
    "decades",
    "describe_change",
    "group_spread",
    "judge",
    "measured_noise",
    "seed_noise",
    "verdict_for",
]

VERDICTS = ("supported", "falsified", "inconclusive")
ALPHA = 0.01  # two-sided level of a called difference
EQUIVALENCE = 0.1  # nines: |Δ| below this is "no practical difference" (×1.26 in 1 − R²)
TOST_ALPHA = 0.05
# Params whose change a clock-cut or shortened schedule does not carry out as stated.
SCHEDULE_PARAMS = frozenset(
    {"total_steps", "batch_size", "schedule", "steps_per_call", "points_per_step"}
)
_SAME_DECADES = 0.005  # compare_words: |Δ| below this many decades of 1 − R² is "same"


@dataclass(frozen=True)
class Verdict:
    """One of ``VERDICTS`` and the one line that explains it."""

    word: str
    basis: str


@dataclass(frozen=True)
class Noise:
    """Pooled seed SD (nines), its degrees of freedom and where it came from."""

    sd: float
    df: int
    source: str


def _pooled(groups: list[Runs], source: str) -> Noise | None:
    groups = [g for g in groups if g.n >= 2]
    df = sum(g.n - 1 for g in groups)
    if df == 0:
        return None
    var = sum((g.n - 1) * (g.sd or 0.0) ** 2 for g in groups) / df
    return Noise(math.sqrt(var), df, source)


def _seeds_text(runs: Runs, role: str) -> str:
    return f"{runs.n} seeds of node {runs.original.id} ({role})"


def measured_noise(tree: Tree, child: Runs, ref: Runs) -> Noise | None:
    """The seed SD for comparing ``child`` with ``ref`` (see the module docstring)."""
    own = [(r, role) for r, role in ((child, "this config"), (ref, "reference")) if r.n >= 2]
    if own:
        return _pooled([r for r, _ in own], " and ".join(_seeds_text(r, w) for r, w in own))
    for anc in tree.chain(ref.original.id)[1:]:
        runs = runs_of(tree, anc.id)
        if runs.n >= 2 and runs.original.id != child.original.id:
            return _pooled([runs], _seeds_text(runs, "nearest re-run ancestor"))
    block = child.original.block
    groups = [runs_of(tree, g[0].id) for g in seed_groups(tree, block)]
    groups = [g for g in groups if g.n >= 2]
    if not groups:
        return None
    widest = max(groups, key=lambda g: (g.sd or 0.0, g.n))
    return _pooled([widest], _seeds_text(widest, f"largest seed SD of block {block}"))


def block_spread(tree: Tree, block: int) -> float | None:
    """The largest max − min of nines among the block's seed groups (None without any)."""
    spreads = [runs_of(tree, g[0].id).spread for g in seed_groups(tree, block)]
    spreads = [s for s in spreads if s is not None]
    return max(spreads) if spreads else None


def _failed(node: Node) -> bool:
    return node.r2 is None


def _categorical(node: Node, ref: Node, expect: str) -> Verdict:
    if _failed(node) and _failed(ref):
        return Verdict("inconclusive", f"this run and its reference both {node.status}")
    if _failed(node):
        word = "supported" if expect == "worsen" else "falsified"
        return Verdict(
            word, f"this run {node.status} ({node.error or 'no R²'}); the reference has R²"
        )
    word = "supported" if expect == "improve" else "falsified"
    return Verdict(word, f"the reference {ref.status}, this run has R²")


def _untestable(node: Node, ref: Node) -> str | None:
    if is_seed_rerun(node):
        return "seed rerun: it measures the noise and tests nothing"
    for n, who in ((node, "this run"), (ref, f"reference node {ref.id}")):
        if n.status == EARLY_STOPPED:
            return f"{who} was stopped early by ASHA (partly trained)"
    if SCHEDULE_PARAMS & set(node.mutation):
        for n, who in ((node, "this run"), (ref, f"reference node {ref.id}")):
            m = n.metrics
            if m.get("budget_cut") or m.get("schedule_shortened"):
                how = "cut by the clock" if m.get("budget_cut") else "shortened to fit the clock"
                return (
                    f"{who}'s schedule was {how} ({m.get('steps_done')} of "
                    f"{m.get('total_steps')} steps): a change of {', '.join(node.mutation)} "
                    "did not act as stated"
                )
    return None


def judge(tree: Tree, node_id: int) -> Verdict:
    """The verdict on a finished node's hypothesis against ``tree.reference(node_id)``."""
    node = tree[node_id]
    ref = tree.reference(node_id)
    if node.pending:
        raise ValueError(f"node {node_id} has not finished")
    if ref is None:
        return Verdict("inconclusive", "baseline: nothing to compare with")
    expect = node.expect
    if expect is None:
        return Verdict("inconclusive", "no prediction was stated")
    if expect not in ("improve", "worsen", "same"):
        raise ValueError(f"expect={expect!r}; allowed: improve, worsen, same")
    why = _untestable(node, ref)
    if why:
        return Verdict("inconclusive", why)
    if _failed(node) or _failed(ref):
        return _categorical(node, ref, expect)
    return compare_runs(tree, runs_of(tree, node.id), runs_of(tree, ref.id), expect)


def compare_runs(tree: Tree, child: Runs, ref: Runs, expect: str) -> Verdict:
    """The t-test of the module docstring on two configs' runs."""
    from scipy import stats

    if not child.n or not ref.n:
        return Verdict("inconclusive", "a side has no fully trained run")
    delta = child.mean - ref.mean
    head = f"Δ {delta:+.3f} nines ({child.n} vs {ref.n} runs of nodes {child.original.id}/{ref.original.id})"
    noise = measured_noise(tree, child, ref)
    if noise is None:
        return Verdict("inconclusive", f"{head}; no seed reruns in this block: noise unknown")
    se = noise.sd * math.sqrt(1 / child.n + 1 / ref.n)
    t = float(stats.t.ppf(1 - ALPHA / 2, noise.df))
    margin = t * se
    text = f"{head}; seed SD {noise.sd:.3f} nines from {noise.source}, df {noise.df}; margin ±{margin:.3f}"
    if child.n < 3 and ref.n < 3:
        spread = block_spread(tree, child.original.block)
        if spread is not None and spread > margin:
            margin = spread
            text += f" (raised to the block's largest seed spread {spread:.3f})"
    called = abs(delta) > margin
    if expect == "same":
        if called:
            return Verdict("falsified", f"{text}: a difference beyond the margin")
        bound = abs(delta) + float(stats.t.ppf(1 - TOST_ALPHA, noise.df)) * se
        if bound <= EQUIVALENCE:
            return Verdict(
                "supported", f"{text}: 90% CI within ±{EQUIVALENCE} nines (|Δ| ≤ {bound:.3f})"
            )
        return Verdict(
            "inconclusive", f"{text}: within the noise, equivalence not shown (±{bound:.3f})"
        )
    if not called:
        return Verdict("inconclusive", f"{text}: within the noise")
    word = "supported" if (delta > 0) == (expect == "improve") else "falsified"
    return Verdict(word, f"{text}: {'better' if delta > 0 else 'worse'} beyond the margin")


def verdict_for(tree: Tree, node_id: int) -> str:
    """The verdict word alone (see ``judge``)."""
    return judge(tree, node_id).word


def seed_noise(tree: Tree, node_id: int) -> float | None:
    """Seed SD (nines) of ``node_id``'s config, or of its nearest re-run ancestor; None
    when no seed rerun touched its lineage."""
    for anc in tree.chain(node_id):
        runs = runs_of(tree, original_of(tree, anc).id)
        if runs.sd is not None:
            return runs.sd
    return None


def compare_words(child_r2: float | None, parent_r2: float | None) -> str:
    """``better`` | ``worse`` | ``same``, from the numbers (a higher R² is never "worse").

    A missing R² (failed trial) ranks below any R². Above 0 the two are "same" when they
    differ by less than 0.005 decades of 1 − R² (≈ 1 % of the remaining error). This is
    a description of two numbers, not a test: verdicts use ``judge``.
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
