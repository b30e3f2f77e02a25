"""The variant-sweep condition: one try of every model family early in a block.

A *structural* param is a choice of ``model.*`` whose values change which model keys
the model reads (``used_model_keys``): the INR variant, the factorized model's basis.
The best values of every other param depend on it (ω means something else for a
siren_txy and for a factorized model), so tuning them under one family before the
other families were tried at all spends the block on the wrong question. In the
shipped spaces the variant has the lowest prior weight (0.1), so the weighted order
alone tries it late: in stop 21's benchmark the UCB tree first changed the variant at
trials 12–27 on F@100 and S@100, and that one move was the largest gain of each run.

``variant_sweep`` fires while some value of a structural param live at the block's best
node has not appeared in any node of the block (pending ones included): it proposes
those values, one per call, from the best node. Pinned and zero-weight params are left
alone, and a value whose child config was already tried is skipped.

A family switched into from a config sized for another family is often over the size
budget (a factorized model from a siren_txy config of F@100 holds 74k parameters where
24k are allowed). ``fitted_move`` then steps the new family's size params down as
``budget.fit_root`` does for a block's root (``budget.shrink``), and the proposal
carries those steps with the switch: the one strategy besides the whole-config
searchers whose mutation may hold several params (``SearchSpace._check_fitted``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from inr_tune.config import Config
from inr_tune.errors import ProposalError
from inr_tune.model_keys import used_model_keys
from inr_tune.search.space import SIZE_KEYS, Param, SearchSpace, config_key, stored
from inr_tune.search.tree import Tree
from inr_tune.search.trigger import Trigger

__all__ = ["FitCache", "fitted_move", "structural_params", "variant_sweep"]


def structural_params(space: SearchSpace, cfg: Config) -> list[Param]:
    """The choice params of ``space`` over ``model.*`` keys that ``cfg``'s model reads and
    some other value of which changes which model keys are read (space order)."""
    model = vars(cfg.model)
    used = used_model_keys(cfg.model)
    out = []
    for name in space.search_params:
        p = space.param(name)
        if not p.is_choice or p.weight <= 0 or not p.key.startswith("model."):
            continue
        key = p.key[len("model.") :]
        if key not in used:
            continue
        for v in p.values:
            if v == model[key]:
                continue
            try:
                other = used_model_keys(SimpleNamespace(**{**model, key: v}))
            except ValueError:  # not a known variant: not a family either
                continue
            if other != used:
                out.append(p)
                break
    return out


def variant_sweep(
    tree: Tree,
    block: int,
    space: SearchSpace,
    pinned: Mapping[str, Any] | None = None,
    taken: set[str] | None = None,
) -> Trigger | None:
    """Values of structural params no node of the block has had yet: try them from the
    block's best finished node (module docstring)."""
    best = tree.best(block)
    if best is None:
        return None
    cfg = stored(best.config).config
    pins = set(pinned or {})
    if taken is None:
        taken = {config_key(n.config) for n in tree.nodes}
    nodes = tree.block_nodes(block)
    moves: list[tuple[str, Any]] = []
    for p in structural_params(space, cfg):
        if p.key in pins or p.name in pins:
            continue
        seen = {stored(n.config).get(p.key) for n in nodes}
        for v in p.values:
            if v in seen:
                continue
            try:
                child = space.apply(cfg, {p.name: v})
            except ProposalError:
                continue
            if config_key(child) not in taken:
                moves.append((p.name, v))
    if not moves:
        return None
    listed = ", ".join(f"{name}={v}" for name, v in moves)
    return Trigger(
        "variant-sweep",
        f"the block has not tried {listed}; the other params' best values depend on the "
        f"model family, so each is tried once from the best node (node {best.id})",
        parent=best.id,
        moves=tuple(moves),
    )


class _StateBudget:
    """``Budget``'s ``check`` and ``ratio`` from a proposer's ``SearchState``."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def check(self, cfg: Config) -> str | None:
        return self.state.check_config(cfg)

    def ratio(self, cfg: Config) -> float:
        return float(self.state.size_values) / max(1, int(self.state.size(cfg)))


def fitted_move(state: Any, base: Config, name: str, value: Any) -> dict[str, Any] | None:
    """The mutation that switches ``base``'s ``name`` to ``value``: ``{name: value}`` when
    that child passes ``state.check_config`` (size budget, GPU fit), else with the new
    family's size params stepped down until it does (``budget.shrink``). When no such
    step fits, the new family's other structural choices (a factorized model's basis:
    a per-point table that cannot fit, a siren that can) are tried too, in space order.
    The family comes first in the mutation. None when nothing fits."""
    from inr_tune.search.budget import shrink

    space = state.space
    try:
        child = space.apply(base, {name: value})
    except ProposalError:
        return None
    if state.check_config is None or state.check_config(child) is None:
        return {name: value}
    if state.size is None or not state.size_values:
        return None
    budget = _StateBudget(state)
    swept = space.param(name).key[len("model.") :]
    starts: list[tuple[dict[str, Any], Config]] = [({}, child)]
    for q in structural_params(space, child):
        if q.name == name or q.key in state.pinned or q.name in state.pinned:
            continue
        for w in q.values:
            if w == child.get(q.key):
                continue
            try:
                start = space.apply(child, {q.name: w})
            except ProposalError:
                continue
            if swept in used_model_keys(start.model):  # the swept choice must still count
                starts.append(({q.name: w}, start))
    for switched, start in starts:
        fitted, _ = shrink(start, space, budget)
        if state.check_config(fitted) is None:
            out: dict[str, Any] = {name: value, **switched}
            for size_key in SIZE_KEYS:
                if fitted.get(size_key) != start.get(size_key):
                    out[space.param(size_key).name] = fitted.get(size_key)
            return out
    return None


class FitCache:
    """``fitted_move`` per parent config, family and budget: a proposer asks again on
    every call while a family stays untried, and one that cannot fit is not fitted again."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._fits: dict[tuple[Any, ...], dict[str, Any] | None] = {}

    def move(self, state: Any, base: Any, name: str, value: Any) -> dict[str, Any] | None:
        """``fitted_move(state, base.config, name, value)``; ``base``: a ``StoredConfig``."""
        pins = repr(sorted(state.pinned.items())) if state.pinned else ""
        memo = (base.key, name, repr(value), state.min_ratio, state.size_values, pins)
        if memo not in self._fits:
            if len(self._fits) >= self.limit:
                self._fits.clear()
            self._fits[memo] = fitted_move(state, base.config, name, value)
        return self._fits[memo]
