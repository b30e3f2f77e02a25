"""``TrialResult``: what one trial produced, and its one serialisation (``metrics.json``).

``run_trial`` returns it; the Ray trainable sends ``to_json()`` as ``metrics_json`` in its
last report; the searcher reads it back with ``from_json``; ``metrics.json`` in the trial
directory is the same text. The flat JSON layout (status, error, the evaluation metrics,
then the run's facts) is what the journal, ``results.csv`` and the reports read.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inr_tune.fileio import jsonable, write_durable

__all__ = ["STATUSES", "TrialResult", "partial_metrics", "score_of"]

#: ok: trained to its end; diverged: its loss or prediction blew up; failed: an error
#: (the reason in ``error``); early_stopped: a scheduler (ASHA) stopped it after fewer steps.
STATUSES = ("ok", "diverged", "failed", "early_stopped")


def score_of(metrics: dict[str, Any]) -> float:
    """The R² a node is judged by: ``holdout_r2`` when the window holds frames out, else
    ``final_r2``; NaN when missing (a scheduler's metric must always be a number)."""
    held = metrics.get("holdout_r2")
    r2 = held if held is not None else metrics.get("final_r2")
    ok = isinstance(r2, (int, float)) and not isinstance(r2, bool)
    return float(r2) if ok else float("nan")


def partial_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a trial stopped early (by ASHA) at its last periodic evaluation
    ``row`` (``step`` and the evaluation's keys): ``partial`` is always true and
    ``partial_reason`` says what the R² is.

    ``holdout_r2`` there is over all the window's held-out frames, the frames every
    finished node is scored on, so the node is scored like the others, only after fewer
    steps. Without held-out frames ``final_r2`` covers ≤ 64 frames sampled over the
    window, not the whole window a finished node's final_r2 covers.
    """
    step = row.get("step")
    metrics: dict[str, Any] = {
        "final_r2": row.get("final_r2"),
        "holdout_r2": row.get("holdout_r2"),
        "steps_done": step,
        "partial": True,
    }
    for key in ("loss", "final_mse", "kinograph_R2", "total_params", "compression_ratio"):
        if row.get(key) is not None:
            metrics[key] = row[key]
    if metrics["holdout_r2"] is not None:
        metrics["partial_reason"] = (
            f"stopped early after {step} steps: holdout_r2 on the same held-out frames as "
            "every node, but after fewer training steps"
        )
    else:
        metrics["partial_reason"] = (
            f"stopped early after {step} steps, and the window holds no frames out: "
            "final_r2 is over at most 64 sampled frames, not the whole window"
        )
    return metrics


@dataclass
class TrialResult:
    """One trial's outcome. ``metrics`` holds the evaluation metrics (DESIGN.md
    "Metrics": final_r2, holdout_r2, kinograph_R2, …; the last periodic evaluation's,
    with ``partial``, for an early-stopped trial) and any other key the flat layout
    carries (``field_png``, ``ray_node_id``, ``traceback``); the fields are the run's
    facts. ``result["final_r2"]`` / ``result.get(key)`` read the flat layout."""

    status: str
    error: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    # size: trainable parameters against the window's values
    total_params: int | None = None
    compression_ratio: float | None = None
    bits_per_value: float | None = None  # float32 values stored per window value
    holdout: int | None = None  # data.holdout: every k-th frame held out (0: none)
    # time: the optimisation loop only (periodic evaluations excluded), and the whole trial
    training_time: float | None = None
    wall_time: float | None = None
    # the rest of wall_time by phase (``fit.run_trial``): dataset_check, data, imports, build,
    # fit_setup, evaluations, snapshots, final_evaluation, plot, checkpoint, finish, other
    overhead_s: dict[str, float] = dataclasses.field(default_factory=dict)
    steps_per_second: float | None = None
    # steps: done, configured, planned (fewer when training.max_minutes shortened them)
    steps_done: int | None = None
    total_steps: int | None = None
    steps_planned: int | None = None
    schedule_shortened: bool = False
    budget_cut: bool = False  # still cut by the clock before its planned end
    final_lr: float | None = None  # lr of the last optimizer step
    budget_plans: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # the window
    field: str | None = None
    inr_type: str | None = None
    n_frames: int | None = None
    n_points: int | None = None
    window_start: int | None = None
    dataset: str | None = None
    content_hash: str | None = None
    # the machine: device, the estimate the block packs trials by, the allocator's peak
    device: str | None = None
    expected_memory_gb: float | None = None
    peak_memory_gb: float | None = None
    version: str | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} unknown; one of {', '.join(STATUSES)}")

    @property
    def score(self) -> float:
        """``score_of`` the metrics: held-out R², else final R², else NaN."""
        return score_of(self.metrics)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, history: bool = True) -> dict[str, Any]:
        """The flat, JSON-safe layout of ``metrics.json`` (NaN/inf → None)."""
        out: dict[str, Any] = {"status": self.status, "error": self.error, **self.metrics}
        for f in dataclasses.fields(self):
            if f.name not in ("status", "error", "metrics", "history"):
                out[f.name] = getattr(self, f.name)
        if history:
            out["history"] = self.history
        return jsonable(out)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Back from ``to_dict`` (keys that are no field go to ``metrics``; missing fields
        take their defaults, a missing status is ``failed``)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"metrics"}
        facts = {k: v for k, v in data.items() if k in names}
        facts.setdefault("status", "failed")
        metrics = {k: v for k, v in data.items() if k not in names}
        return cls(**facts, metrics=metrics)

    def to_json(self, history: bool = True) -> str:
        return json.dumps(self.to_dict(history), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        return cls.from_dict(json.loads(text))

    def write(self, path: str | Path) -> None:
        """``metrics.json``: written atomically (a kill leaves the old file or the new)."""
        write_durable(Path(path), self.to_json())

    # ------------------------------------------------------------------ flat read access
    def __getitem__(self, key: str) -> Any:
        flat = self.to_dict()
        if key not in flat:
            raise KeyError(key)
        return flat[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)
