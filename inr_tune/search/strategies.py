"""The strategy table as pure functions of the tree, and the block-end review.

Each condition function reads a block of the tree and returns a ``Trigger`` (the strategy,
why it applies, the parent to use and, where the strategy fixes it, the mutation) or None.
``detect`` runs them all in priority order. The rule proposer acts on the triggers; the
LLM proposer shows them to the model. "Consecutive" always means finished nodes of the
block in id order (pending ones are not known yet); a strategy's own count restarts after
the last node that used it, so a trigger does not fire again on the same evidence.

| strategy | condition | action |
| --- | --- | --- |
| exploit | default | highest-UCB node, one mutation |
| failure-probe | 3+ consecutive R² ≥ 0.95 | push one param to an extreme value |
| explore | n_iter_block/4 (≥ 2) consecutive successes (R² ≥ good) | parent outside the recent chain |
| recombine | two nodes R² > 0.95 at tree distance ≥ 2 | higher adopts a value that helped the other |
| forced-branch | 4+ consecutive converged nodes mutating one param | 2nd-best UCB node, other param |
| switch-param | one param mutated 4+ times in the block | mutate a different param |
| robustness-test | a good node (R² ≥ good class), no rerun in the block yet | re-run it with a new seed |
| stochastic-field | seed re-runs of a config differ by > 0.1 in R² | flag the field, try clipping/schedule/loss |
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from inr_tune.errors import ProposalError
from inr_tune.search.seeds import (
    best_config,
    group_spread,
    is_seed_rerun,
    seed_groups,
    unconfirmed,
)
from inr_tune.search.space import SearchSpace, as_config, config_key, fmt_value, stored
from inr_tune.search.tree import HAS_R2, Node, Tree, UCBScore
from inr_tune.search.verdict import compare_words

__all__ = [
    "HIGH_R2",
    "STRATEGIES",
    "BlockStats",
    "Trigger",
    "block_stats",
    "detect",
    "explore",
    "failure_probe",
    "forced_branch",
    "good_threshold",
    "overused_params",
    "quality",
    "recent_chain",
    "recombine",
    "review",
    "robustness_test",
    "stochastic_field",
    "switch_param",
]

STRATEGIES = (
    "baseline",
    "exploit",
    "explore",
    "failure-probe",
    "recombine",
    "forced-branch",
    "switch-param",
    "robustness-test",
    "stochastic-field",
)
HIGH_R2 = 0.95  # "converged well": failure-probe and recombine thresholds
SAME_PARAM_LIMIT = 4
STOCHASTIC_SPREAD = 0.1  # R² range between seeds that flags a field as stochastic
UCB_C_RANGE = (0.5, 3.0)


@dataclass(frozen=True)
class Trigger:
    """A strategy whose condition holds now."""

    strategy: str
    reason: str  # one line: the evidence
    parent: int | None = None  # node to branch from
    mutation: Mapping[str, Any] | None = None  # fixed by the strategy (recombine, robustness)
    other: int | None = None  # recombine: the node lending its value
    avoid: tuple[str, ...] = ()  # params not to mutate
    params: tuple[str, ...] = ()  # params to try, best first


# ----------------------------------------------------------------------------- helpers


def good_threshold(classes: Mapping[str, float]) -> float:
    """Lower R² bound of the "good" class (the second class when none is named good)."""
    if "good" in classes:
        return float(classes["good"])
    bounds = list(classes.values())
    return float(bounds[min(1, len(bounds) - 1)]) if bounds else HIGH_R2


def quality(r2: float | None, classes: Mapping[str, float]) -> str:
    """Class name of an R² (best class needs > its bound, the others ≥); "poor" below."""
    if r2 is None:
        return "failed"
    for i, (name, bound) in enumerate(classes.items()):
        if (r2 > bound) if i == 0 else (r2 >= bound):
            return name
    return "poor"


def _ordered(tree: Tree, block: int) -> list[Node]:
    return sorted(tree.block_nodes(block), key=lambda n: n.id)


def _finished_since(tree: Tree, block: int, strategy: str) -> list[Node]:
    """Finished nodes of the block after the last node (any status) that used ``strategy``."""
    nodes = _ordered(tree, block)
    last = max((n.id for n in nodes if n.strategy == strategy), default=0)
    return [n for n in nodes if n.finished and n.id > last]


def _trailing(nodes: list[Node], pred: Any) -> list[Node]:
    run: list[Node] = []
    for node in reversed(nodes):
        if not pred(node):
            break
        run.append(node)
    return run[::-1]


def _pending_with(tree: Tree, block: int, strategy: str) -> bool:
    return any(n.pending and n.strategy == strategy for n in tree.block_nodes(block))


def recent_chain(tree: Tree, block: int) -> set[int]:
    """Ids of the latest finished node of the block and its ancestors."""
    finished = [n for n in _ordered(tree, block) if n.finished]
    return {n.id for n in tree.chain(finished[-1].id)} if finished else set()


def _span(ids: list[int]) -> str:
    """``nodes 3, 4, 6`` or, for long runs, ``12 results, nodes 22–41``."""
    if len(ids) <= 4:
        return "nodes " + ", ".join(map(str, ids))
    return f"{len(ids)} results, nodes {ids[0]}–{ids[-1]}"


def _ids(nodes: list[Node]) -> str:
    return ", ".join(str(n.id) for n in nodes)


def overused_params(tree: Tree, block: int, limit: int = SAME_PARAM_LIMIT) -> dict[str, int]:
    """Params mutated ``limit``+ times in the block (pending included, seed re-runs not)."""
    counts = Counter(
        n.mutated for n in tree.block_nodes(block) if n.mutated and not is_seed_rerun(n)
    )
    return {p: k for p, k in counts.items() if k >= limit}


# ----------------------------------------------------------------------------- conditions


def failure_probe(tree: Tree, block: int, high: float = HIGH_R2) -> Trigger | None:
    """3+ consecutive R² ≥ ``high``: probe from the block's best node toward a boundary."""
    if _pending_with(tree, block, "failure-probe"):
        return None
    run = _trailing(
        _finished_since(tree, block, "failure-probe"),
        lambda n: n.r2 is not None and n.r2 >= high,
    )
    best = tree.best(block)
    if len(run) < 3 or best is None:
        return None
    return Trigger(
        "failure-probe",
        f"{len(run)} consecutive R² ≥ {high} (nodes {_ids(run)}): look for the boundary",
        parent=best.id,
    )


def explore(
    tree: Tree,
    block: int,
    n_iter_block: int,
    classes: Mapping[str, float],
    ucb_c: float = 1.414,
    reward: str = "nines",
    ranking: list[UCBScore] | None = None,
) -> Trigger | None:
    """n_iter_block/4 (at least 2) consecutive successes: branch outside the recent chain.

    ``ranking``: ``tree.ucb_scores(block, ucb_c, reward)`` if the caller has it."""
    if _pending_with(tree, block, "explore"):
        return None
    need = max(2, n_iter_block // 4)
    good = good_threshold(classes)
    run = _trailing(
        _finished_since(tree, block, "explore"), lambda n: n.r2 is not None and n.r2 >= good
    )
    if len(run) < need:
        return None
    chain = recent_chain(tree, block)
    if ranking is None:
        ranking = tree.ucb_scores(block, ucb_c, reward)
    outside = [s.node for s in ranking if s.node.id not in chain]
    if not outside:
        return None
    return Trigger(
        "explore",
        f"{len(run)} consecutive successes (R² ≥ {good}, nodes {_ids(run)}); "
        f"node {outside[0].id} is the best UCB outside the recent chain",
        parent=outside[0].id,
    )


def _best_gains(
    tree: Tree, node: Node, memo: dict[int, dict[str, float]] | None = None
) -> dict[str, float]:
    """Each param's largest R² gain among the mutations along ``node``'s chain that improved
    on their reference (``memo``: node id → its answer, shared along chains in one call).

    Ordered by (gain, name) descending: the params that helped, biggest gain first.
    """
    memo = {} if memo is None else memo
    chain = []  # ``tree.chain(node.id)`` up to the first node already in ``memo``
    n: Node | None = node
    while n is not None and n.id not in memo:
        chain.append(n)
        n = tree.get(n.parent)
    if not chain:
        return memo[node.id]
    top = chain[-1].parent
    best = memo[top] if top is not None and top in memo else {}
    for n in reversed(chain):  # the root end first: each adds its own gain to its parent's
        ref = tree.reference(n.id)
        if (
            n.mutated
            and ref is not None
            and n.r2 is not None
            and ref.r2 is not None
            and compare_words(n.r2, ref.r2) == "better"
        ):
            gain = n.r2 - ref.r2
            if gain > best.get(n.mutated, -math.inf):
                best = {**best, n.mutated: gain}
        memo[n.id] = best
    return memo[node.id]


def recombine(
    tree: Tree,
    block: int,
    space: SearchSpace,
    pinned: Mapping[str, Any] | None = None,
    taken: set[str] | None = None,
    high: float = HIGH_R2,
) -> Trigger | None:
    """Two nodes with R² > ``high`` at distance ≥ 2: the higher adopts one of the other's values.

    The value adopted is the other node's "best param": among the params its lineage
    mutated with a gain (biggest gain first) and where the two configs differ, the first
    that gives a valid config not tried yet. No gain in its lineage: nothing to adopt.
    Pairs are tried best first (the higher node by R², then its partner by R²).

    Most pairs of a grown tree give configs tried before, so a candidate is first keyed
    without building it (``StoredConfig.child_key``); only an untried key is built and
    checked (``space.mutate``), as for every pair before.
    """
    if taken is None:
        taken = {config_key(n.config) for n in tree.nodes}
    good = [
        n for n in tree.finished(block) if n.r2 is not None and n.r2 > high and not is_seed_rerun(n)
    ]
    good.sort(key=lambda n: (-(n.r2 or 0.0), n.id))
    if len(good) < 2:
        return None
    params = {p: space.param(p) for p in space.search_params}
    pins = set(pinned or {})
    stored_of = {n.id: stored(n.config) for n in good}
    memo: dict[int, dict[str, float]] = {}
    # Each node as a partner offers (param, its value, identity) in the order they are
    # tried; ``last``: each offered item → the last position in ``good`` offering it.
    offers: dict[int, list[tuple[str, Any, tuple[str, type, str]]]] = {}
    last: dict[tuple[str, type, str], tuple[int, str, Any]] = {}
    for j, lo in enumerate(good):
        gains = _best_gains(tree, lo, memo)
        order = [p for _, p in sorted(((g, p) for p, g in gains.items()), reverse=True)]
        items = []
        for p in order:
            if p in params:
                value = stored_of[lo.id].get(params[p].key)
                ik = (p, type(value), repr(value))
                items.append((p, value, ik))
                last[ik] = (j, p, value)
        offers[lo.id] = items
    by_last = sorted(((j, p, v, ik) for ik, (j, p, v) in last.items()), key=lambda t: -t[0])
    coerced: dict[tuple[str, type, str], Any] = {}

    def may_adopt(hi: Node, p: str, value: Any, ik: tuple[str, type, str]) -> bool:
        """Cheap: the value differs, is allowed and keys a config not tried yet."""
        q = params[p]
        if q.is_seed or q.key in pins or p in pins:
            return False
        if q.same(stored_of[hi.id].get(q.key), value):
            return False
        if ik not in coerced:
            try:
                coerced[ik] = q.coerce(value)
            except ProposalError:
                coerced[ik] = _INVALID
        new = coerced[ik]
        return new is not _INVALID and stored_of[hi.id].child_key(q.key, new) not in taken

    for i, hi in enumerate(good):
        # the items a later partner offers that ``hi`` could adopt; none: skip its pairs
        adoptable = set()
        for j, p, value, ik in by_last:
            if j <= i:
                break
            if may_adopt(hi, p, value, ik):
                adoptable.add(ik)
        if not adoptable:
            continue
        hi_cfg = stored_of[hi.id].config
        for lo in good[i + 1 :]:
            cands = [(p, v) for p, v, ik in offers[lo.id] if ik in adoptable]
            if not cands:
                continue
            dist = tree.distance(hi.id, lo.id)
            if dist < 2:
                continue
            for p, value in cands:
                try:
                    child, _ = space.mutate(hi_cfg, {p: value}, pinned, strategy="recombine")
                except ProposalError:
                    continue
                if config_key(child) in taken:
                    continue
                return Trigger(
                    "recombine",
                    f"nodes {hi.id} (R² {hi.r2:.5f}) and {lo.id} (R² {lo.r2:.5f}) are {dist} "
                    f"apart; node {hi.id} adopts {p}={fmt_value(value)} from node {lo.id}",
                    parent=hi.id,
                    mutation={p: value},
                    other=lo.id,
                    params=(p,),
                )
    return None


_INVALID = object()


def forced_branch(
    tree: Tree,
    block: int,
    ucb_c: float = 1.414,
    reward: str = "nines",
    ranking: list[UCBScore] | None = None,
) -> Trigger | None:
    """4+ consecutive converged nodes mutating one param: 2nd-best UCB node, another param.

    ``ranking``: ``tree.ucb_scores(block, ucb_c, reward)`` if the caller has it."""
    if _pending_with(tree, block, "forced-branch"):
        return None
    done = [n for n in _finished_since(tree, block, "forced-branch") if n.mutated]
    if not done:
        return None
    last = done[-1].mutated
    run = _trailing(done, lambda n: n.status in HAS_R2 and n.mutated == last)
    if len(run) < SAME_PARAM_LIMIT:
        return None
    nodes = [
        s.node for s in (tree.ucb_scores(block, ucb_c, reward) if ranking is None else ranking)
    ]
    chain = recent_chain(tree, block)
    rest = nodes[1:]
    outside = [n for n in rest if n.id not in chain]
    pick = (outside or rest or nodes)[0]
    return Trigger(
        "forced-branch",
        f"{len(run)} consecutive converged nodes mutated {last} (nodes {_ids(run)}); "
        f"branch from node {pick.id} and change another parameter",
        parent=pick.id,
        avoid=(str(last),),
    )


def switch_param(
    tree: Tree,
    block: int,
    ucb_c: float = 1.414,
    reward: str = "nines",
    ranking: list[UCBScore] | None = None,
) -> Trigger | None:
    """A param mutated 4+ times in the block: mutate another one (once per overuse).

    ``ranking``: ``tree.ucb_scores(block, ucb_c, reward)`` if the caller has it."""
    over = overused_params(tree, block)
    if ranking is None:
        ranking = tree.ucb_scores(block, ucb_c, reward)
    if not over or not ranking:
        return None
    nodes = _ordered(tree, block)
    for param in sorted(over):
        nth = [n.id for n in nodes if n.mutated == param and not is_seed_rerun(n)][
            SAME_PARAM_LIMIT - 1
        ]
        if not any(n.strategy == "switch-param" and n.id > nth for n in nodes):
            counts = ", ".join(f"{p} ×{k}" for p, k in sorted(over.items()))
            return Trigger(
                "switch-param",
                f"mutated {SAME_PARAM_LIMIT}+ times this block: {counts}; mutate something else",
                parent=ranking[0].node.id,
                avoid=tuple(sorted(over)),
            )
    return None


def robustness_test(
    tree: Tree,
    block: int,
    space: SearchSpace,
    classes: Mapping[str, float],
    taken: set[str] | None = None,
) -> Trigger | None:
    """The best good node (R² ≥ good class) whose lineage was never re-run: new seed.

    Once a config of the block has seed reruns (finished or pending, e.g. the session's
    ``search.seed_reruns`` of the best config), the block's noise is being measured and
    this trigger stays quiet.
    """
    seed = space.seed_param()
    if seed is None or seed_groups(tree, block):
        return None
    if taken is None:
        taken = {config_key(n.config) for n in tree.nodes}
    good = good_threshold(classes)
    nodes = [
        n
        for n in tree.finished(block)
        if n.r2 is not None and n.r2 >= good and not is_seed_rerun(n)
    ]
    nodes.sort(key=lambda n: (-(n.r2 or 0.0), n.id))
    for node in nodes:
        lineage = tree.chain(node.id)
        if any(is_seed_rerun(c) for a in lineage for c in tree.children(a.id)):
            continue
        cfg = as_config(node.config)
        value = start = int(cfg.get(seed.key))
        for _ in range(100):
            value += 1
            if seed.high is not None and value > seed.high:
                break
            if config_key(space.apply(cfg, {seed.name: value})) not in taken:
                return Trigger(
                    "robustness-test",
                    f"node {node.id} is good (R² {node.r2:.5f} ≥ {good}) and its lineage "
                    f"was never re-run: repeat it with {seed.name} {start}→{value}",
                    parent=node.id,
                    mutation={seed.name: value},
                    params=(seed.name,),
                )
    return None


def stochastic_field(tree: Tree, block: int, field: str = "") -> Trigger | None:
    """Seed re-runs of one config differ by > 0.1 in R²: flag it, try clipping/schedule/loss."""
    for group in seed_groups(tree, block):
        spread = group_spread(group, "r2")
        if spread is None or spread <= STOCHASTIC_SPREAD:
            continue
        ids = {n.id for n in group}
        if any(n.strategy == "stochastic-field" and n.parent in ids for n in tree.nodes):
            continue
        best = max((n for n in group if n.r2 is not None), key=lambda n: (n.r2, -n.id))
        what = f"field {field}" if field else "this field"
        return Trigger(
            "stochastic-field",
            f"seed re-runs of node {group[0].id} (nodes {_ids(group)}) spread {spread:.3f} "
            f"in R² > {STOCHASTIC_SPREAD}: {what} looks stochastic",
            parent=best.id,
            params=("grad_clip", "schedule", "loss"),
        )
    return None


def detect(
    tree: Tree,
    block: int,
    space: SearchSpace,
    *,
    n_iter_block: int,
    classes: Mapping[str, float],
    ucb_c: float = 1.414,
    reward: str = "nines",
    pinned: Mapping[str, Any] | None = None,
    field: str = "",
    taken: set[str] | None = None,
) -> list[Trigger]:
    """Every strategy whose condition holds, by priority (exploit is implied, not listed)."""
    if taken is None:
        taken = {config_key(n.config) for n in tree.nodes}
    ranking = tree.ucb_scores(block, ucb_c, reward)  # shared by three conditions
    found = [
        stochastic_field(tree, block, field),
        robustness_test(tree, block, space, classes, taken),
        recombine(tree, block, space, pinned, taken),
        forced_branch(tree, block, ucb_c, reward, ranking),
        failure_probe(tree, block),
        explore(tree, block, n_iter_block, classes, ucb_c, reward, ranking),
        switch_param(tree, block, ucb_c, reward, ranking),
    ]
    return [t for t in found if t is not None]


# ----------------------------------------------------------------------------- review


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
    nodes = _ordered(tree, block)
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
