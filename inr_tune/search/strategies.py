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
| variant-sweep | a model family (variant, basis) no node of the block has had | try it from the best node (``sweep.py``) |
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from inr_tune.search.recombine import recombine
from inr_tune.search.review import UCB_C_RANGE, BlockStats, block_stats, review
from inr_tune.search.seeds import (
    group_spread,
    is_seed_rerun,
    seed_groups,
)
from inr_tune.search.space import SearchSpace, as_config, config_key
from inr_tune.search.sweep import variant_sweep
from inr_tune.search.tree import HAS_R2, Node, Tree, UCBScore
from inr_tune.search.trigger import HIGH_R2, SAME_PARAM_LIMIT, STRATEGIES, Trigger, ordered

__all__ = [
    "HIGH_R2",
    "SAME_PARAM_LIMIT",
    "STRATEGIES",
    "UCB_C_RANGE",
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
    "variant_sweep",
]
STOCHASTIC_SPREAD = 0.1  # R² range between seeds that flags a field as stochastic


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


def _finished_since(tree: Tree, block: int, strategy: str) -> list[Node]:
    """Finished nodes of the block after the last node (any status) that used ``strategy``."""
    nodes = ordered(tree, block)
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
    finished = [n for n in ordered(tree, block) if n.finished]
    return {n.id for n in tree.chain(finished[-1].id)} if finished else set()


def _ids(nodes: list[Node]) -> str:
    return ", ".join(str(n.id) for n in nodes)


def overused_params(
    tree: Tree, block: int, limit: int = SAME_PARAM_LIMIT, among: Iterable[str] | None = None
) -> dict[str, int]:
    """Params mutated ``limit``+ times in the block (pending included, seed re-runs not).

    ``among`` (the params a move may change): ``limit`` more times than the least-mutated
    of them. Early in a block that one has 0 and nothing changes; in a long block, once
    every param was mutated ``limit`` times, the plain count would set every param aside
    and leave the exploit no move at all (a 500-trial block got 1 proposal per call)."""
    counts = Counter(
        n.mutated for n in tree.block_nodes(block) if n.mutated and not is_seed_rerun(n)
    )
    floor = min((counts.get(p, 0) for p in among), default=0) if among is not None else 0
    return {p: k for p, k in counts.items() if k >= floor + limit}


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
    nodes = ordered(tree, block)
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
        variant_sweep(tree, block, space, pinned, taken),
        recombine(tree, block, space, pinned, taken),
        forced_branch(tree, block, ucb_c, reward, ranking),
        failure_probe(tree, block),
        explore(tree, block, n_iter_block, classes, ucb_c, reward, ranking),
        switch_param(tree, block, ucb_c, reward, ranking),
    ]
    return [t for t in found if t is not None]
