"""The recombine strategy: two good nodes far apart in the tree, the higher adopts a value
that helped the other. The one condition that searches pairs of nodes, so it is written to
stay cheap on a grown tree (issue 14 §4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inr_tune.errors import ProposalError
from inr_tune.search.seeds import is_seed_rerun
from inr_tune.search.space import SearchSpace, config_key, fmt_value, stored
from inr_tune.search.tree import Node, Tree
from inr_tune.search.trigger import HIGH_R2, Trigger
from inr_tune.search.verdict import compare_words

__all__ = ["recombine"]


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
