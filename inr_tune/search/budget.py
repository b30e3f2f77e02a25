"""The size budget of a search: compression ratio of a config before it trains.

``compression_ratio`` = (T·N·C values of the window) / (trainable parameters). The
parameter count is a pure function of the model config and the window shape
(``inr_tune.models.count_params``), so a config under the budget is refused before it
runs: proposals through ``Budget.check`` (a refused proposal is journaled as
``proposal_rejected``, never trained, not a failed node), the block's starting config
through ``fit_root`` (shrunk along the space's size parameters until it fits, or one
line when no config of the space can).

Objectives (``search.objective``): ``budget`` and ``pareto`` refuse configs under
``min_ratio``; ``r2`` ignores size (the older tools' behaviour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from inr_tune.config import Config
from inr_tune.errors import ConfigError
from inr_tune.search.space import SIZE_KEYS, SearchSpace, fmt_value

__all__ = ["SIZE_KEYS", "Budget", "block_budget", "fit_root", "shrink"]


@dataclass(frozen=True)
class Budget:
    """The budget of one block: objective, least ratio and the window's shape."""

    objective: str  # budget | pareto | r2
    min_ratio: float | None
    n_frames: int
    n_points: int
    n_components: int

    @property
    def active(self) -> bool:
        """True when configs under ``min_ratio`` are refused."""
        return self.objective != "r2" and self.min_ratio is not None

    @property
    def n_values(self) -> int:
        return self.n_frames * self.n_points * self.n_components

    def params(self, cfg: Config) -> int:
        from inr_tune.models.size import count_params
        from inr_tune.models.variants import FieldSpec

        spec = FieldSpec(self.n_frames, self.n_points, self.n_components)
        return int(count_params(cfg.model, spec))

    def ratio(self, cfg: Config) -> float:
        """compression_ratio of ``cfg`` on this block's window."""
        return self.n_values / max(1, self.params(cfg))

    def check(self, cfg: Config) -> str | None:
        """None when ``cfg`` is inside the budget, else a one-line reason."""
        if not self.active:
            return None
        assert self.min_ratio is not None
        params = self.params(cfg)
        ratio = self.n_values / max(1, params)
        if ratio >= self.min_ratio:
            return None
        allowed = math.floor(self.n_values / self.min_ratio)
        return (
            f"compression ratio {ratio:.1f}× is under the size budget min_ratio "
            f"{fmt_value(self.min_ratio)}× ({params} parameters; at most {allowed} allowed)"
        )

    def describe(self) -> str:
        if self.objective == "r2":
            return "objective r2: size ignored"
        if self.min_ratio is None:
            return f"objective {self.objective}, no size budget"
        allowed = math.floor(self.n_values / self.min_ratio)
        return (
            f"objective {self.objective}: compression ratio ≥ {fmt_value(self.min_ratio)}× "
            f"(≤ {allowed} parameters for {self.n_frames}×{self.n_points}×{self.n_components} values)"
        )


def _smaller(space: SearchSpace, key: str, current: Any) -> list[Any]:
    """Values of the space's param for ``key`` below ``current``, nearest first."""
    try:
        p = space.param(key)
    except Exception:  # the space does not search this key
        return []
    if current is None:
        return []
    if p.is_choice:
        nums = [v for v in p.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return sorted((v for v in nums if v < current), reverse=True)
    assert p.low is not None
    if current <= p.low:
        return []
    down = [v for v in p.step(current, -1) if v is not None]
    return sorted(down, reverse=True) or [p.low]


def _set(cfg: Config, key: str, value: Any) -> Config:
    section, name = key.split(".")
    return cfg.replace(**{section: {name: value}})


def _merged(changes: list[tuple[str, Any, Any]]) -> list[str]:
    """``hidden_dim 128→16`` for the steps 128→96→…→16 of one key."""
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for key, old, new in changes:
        first.setdefault(key, old)
        last[key] = new
    return [f"{k.split('.')[1]} {fmt_value(first[k])}→{fmt_value(last[k])}" for k in first]


def shrink(cfg: Config, space: SearchSpace, budget: Any) -> tuple[Config, list[str]]:
    """Step size params down, each step the one that gains the most ratio, until inside.

    ``budget``: a ``Budget``, or anything with its ``check(cfg)`` and ``ratio(cfg)``."""
    changes: list[tuple[str, Any, Any]] = []
    for _ in range(200):
        if budget.check(cfg) is None:
            return cfg, _merged(changes)
        best: tuple[float, str, Any] | None = None
        for key in SIZE_KEYS:
            for value in _smaller(space, key, cfg.get(key))[:1]:
                try:
                    ratio = budget.ratio(_set(cfg, key, value))
                except ConfigError:
                    continue
                if best is None or ratio > best[0]:
                    best = (ratio, key, value)
        if best is None:
            break
        _, key, value = best
        changes.append((key, cfg.get(key), value))
        cfg = _set(cfg, key, value)
    return cfg, _merged(changes)


def fit_root(cfg: Config, space: SearchSpace, budget: Budget) -> tuple[Config, list[str]]:
    """The block's starting config inside the budget, and what was changed to get there.

    The root's own variant is shrunk first (size params of the space, smallest steps);
    when that cannot reach ``min_ratio``, the other variants of the space are tried.
    Raises ConfigError (one line) when no config of the space reaches the budget.
    """
    if budget.check(cfg) is None:
        return cfg, []
    fitted, changes = shrink(cfg, space, budget)
    if budget.check(fitted) is None:
        return fitted, changes
    best_ratio, best_desc = budget.ratio(fitted), f"{cfg.model.inr_type} shrunk"
    try:
        types = [v for v in space.param("model.inr_type").values if v != cfg.model.inr_type]
    except Exception:
        types = []
    for inr_type in types:
        try:
            other = _set(cfg, "model.inr_type", inr_type)
        except ConfigError:
            continue
        fitted, more = shrink(other, space, budget)
        if budget.check(fitted) is None:
            return fitted, [f"inr_type {cfg.model.inr_type}→{inr_type}", *more]
        if budget.ratio(fitted) > best_ratio:
            best_ratio, best_desc = budget.ratio(fitted), f"{inr_type} shrunk"
    raise ConfigError(
        f"no config of the search space reaches the size budget min_ratio "
        f"{fmt_value(budget.min_ratio)}×: the most compressed ({best_desc}) reaches "
        f"{best_ratio:.1f}×; lower --min-ratio or use --objective r2"
    )


def block_budget(root: Config, spec: Any, ds: Any) -> Budget:
    """The size budget of a block: the root config's search section on the block's window
    (``spec``: field and n_frames; ``ds``: the open dataset)."""
    return Budget(
        root.search.objective,
        root.search.min_ratio,
        spec.n_frames,
        ds.n_points,
        len(ds.components[spec.field]),
    )
