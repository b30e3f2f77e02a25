"""A node of the exploration tree (one trial): its config, mutation, status, metrics and
notes, the R² it is judged by, and the reward UCB reads (``reward_of``)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from inr_tune.fileio import jsonable

__all__ = [
    "DIVERGED",
    "EARLY_STOPPED",
    "EXPECTS",
    "FAILED",
    "HAS_R2",
    "OK",
    "PENDING",
    "REWARDS",
    "STATUSES",
    "Node",
    "reward_of",
    "scaled_rewards",
    "score_of",
]

PENDING, OK, FAILED, DIVERGED, EARLY_STOPPED = (
    "pending",
    "ok",
    "failed",
    "diverged",
    "early_stopped",
)
STATUSES = (PENDING, OK, FAILED, DIVERGED, EARLY_STOPPED)
HAS_R2 = (OK, EARLY_STOPPED)  # statuses whose final_r2 counts
EXPECTS = ("improve", "worsen", "same", None)
REWARDS = ("r2", "nines", "pareto")
NINES_CAP = 6.0  # nines reward saturates at R² = 1 − 1e-6


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def reward_of(r2: float | None, kind: str = "nines") -> float:
    """Reward in [0, 1] for an R² (None or NaN → 0).

    ``r2``: R² clipped to [0, 1] (the older tools' choice). ``nines``:
    min(−log10(1 − R²), 6) / 6, so 0.99 → 0.333, 0.999 → 0.5, 0.9999 → 0.667: it keeps
    separating configs above 0.999, where R² differences shrink to 1e-4. ``pareto`` is a
    property of a node among its block (``Tree.ucb_scores``); for one node alone it is
    the nines reward.
    """
    if kind not in REWARDS:
        raise ValueError(f"unknown reward {kind!r}; allowed: {', '.join(REWARDS)}")
    value = _finite(r2)
    if value is None or value <= 0.0:
        return 0.0
    if kind == "r2":
        return min(value, 1.0)
    kind = "nines"
    if value >= 1.0:
        return 1.0
    return min(-math.log10(1.0 - value), NINES_CAP) / NINES_CAP


@dataclass(slots=True)
class Node:
    """One trial: a config (parent's config + one mutation), why it was tried, its result."""

    id: int
    parent: int | None  # None = a child of the block's root config
    block: int
    config: dict[str, Any]  # Config.to_dict()
    mutation: dict[str, list[Any]] = field(default_factory=dict)  # {param: [old, new]}
    strategy: str = "exploit"
    hypothesis: str = ""
    expect: str | None = None  # "improve" | "worsen" | "same" | None
    observation: str | None = None
    visual: str | None = None
    verdict: str | None = None  # "supported" | "falsified" | "inconclusive", set at block end
    verdict_basis: str | None = None  # the one line that explains the verdict
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = PENDING
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == PENDING

    @property
    def finished(self) -> bool:
        return self.status != PENDING

    @property
    def r2(self) -> float | None:
        """The R² a node is judged by: ``holdout_r2`` (frames it never trained on) when the
        trial held frames out, else ``final_r2``; None when pending, failed or missing.

        Reward, verdicts, the best node and the Pareto front all read this. An
        early-stopped node's ``metrics["final_r2"]`` is its last reported R² (the trial
        evaluates before it stops), so it is scored like a finished one.
        """
        if self.status not in HAS_R2:
            return None
        for key in ("holdout_r2", "final_r2"):
            value = self.metrics.get(key)
            if type(value) is float:  # the common case, read millions of times per search
                if math.isfinite(value):
                    return value
                continue
            value = _finite(value)
            if value is not None:
                return value
        return None

    @property
    def ratio(self) -> float | None:
        """compression_ratio of a finished node (None when unknown)."""
        return _finite(self.metrics.get("compression_ratio"))

    def reward(self, kind: str = "nines") -> float:
        """Q of this node: ``reward_of(r2)``; 0 for failed, diverged or pending nodes."""
        return reward_of(self.r2, kind)

    @property
    def mutated(self) -> str | None:
        """The mutated parameter's name (None for a baseline)."""
        return next(iter(self.mutation), None)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Node:
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown node fields: {', '.join(sorted(unknown))}")
        data = dict(raw)
        data["mutation"] = {k: list(v) for k, v in (data.get("mutation") or {}).items()}
        data["metrics"] = dict(data.get("metrics") or {})
        data["config"] = copy.deepcopy(dict(data["config"]))
        return cls(**data)


def score_of(r2: float | None, kind: str = "nines") -> float:
    """``reward_of`` without its clip at R² = 0, so fits worse than the mean keep their
    order: ``r2`` is R² floored at −1, ``nines`` is −log10(1 − R²) of that, capped at
    ``NINES_CAP`` (−0.301 at the floor). None or NaN (a failed trial) scores as the floor.
    """
    value = _finite(r2)
    value = -1.0 if value is None else min(max(value, -1.0), 1.0)
    if kind == "r2":
        return value
    return min(-math.log10(max(1.0 - value, 10.0**-NINES_CAP)), NINES_CAP)


def scaled_rewards(nodes: Iterable[Node], kind: str = "nines") -> dict[int, float]:
    """UCB's Q of each finished node: its reward scaled to the range of the nodes with an
    R² (the lowest 0, the highest 1; all 1 when they are equal); 0 for failed and diverged
    nodes. Pending nodes are left out.

    The reward here is ``score_of``, ``reward_of`` without its clip at R² = 0, so negative
    R² keep their order (an early block can hold only fits worse than the mean; clipped,
    they all tied at 0 and UCB then picked by visits alone). For R² ≥ 0 the scaled values
    are the same as from ``reward_of``.
    """
    scored: dict[int, float] = {}
    out: dict[int, float] = {}
    for n in nodes:
        if n.finished:
            r2 = n.r2
            if r2 is None:
                out[n.id] = 0.0
            else:
                scored[n.id] = score_of(r2, kind)
    if not scored:
        return out
    lo, hi = min(scored.values()), max(scored.values())
    for i, r in scored.items():
        out[i] = (r - lo) / (hi - lo) if hi > lo else 1.0
    return out
