"""Evaluating a trial's module: the quick periodic metrics and the one full evaluation.

``evaluate`` is the only place the window's full metrics are computed (DESIGN.md
"Metrics", raw units, all frames, held-out split): at the end of a trial and at the
periodic snapshots; its ``Evaluation`` record is what the field panel, the checkpoint
decision, ``metrics.json`` and the HParams row are written from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inr_tune import metrics as M
from inr_tune.ssim import _ssim_limits

__all__ = ["Evaluation", "evaluate", "quick_eval"]


@dataclass
class Evaluation:
    """The full evaluation of a module at ``step``.

    ``metrics``: ``metrics.evaluate`` plus ``holdout_r2``/``train_r2``/``holdout_frames``
    (empty when ``diverged``); ``prediction`` [T, N, C] in raw units (None when diverged);
    ``diverged``: why the fit counts as diverged (non-finite prediction, or R² on the
    trained frames below ``min_train_r2``), else None.
    """

    step: int
    metrics: dict[str, Any]
    prediction: np.ndarray | None
    diverged: str | None = None


def evaluate(module: Any, min_train_r2: float = -1.0) -> Evaluation:
    """All metrics of ``module`` (an ``INRModule``) on its whole window.

    A prediction with NaN/inf values, or a final R² on the trained frames below
    ``min_train_r2`` (−1: an error more than twice each component's variance, worse than
    a constant by a wide margin; no fit that learned anything ends there) is diverged.
    """
    step = int(module.step)
    pred = module.predict()
    if not np.all(np.isfinite(pred)):
        why = f"prediction has NaN or inf values after {step} steps"
        return Evaluation(step, {}, None, why)
    gt = module.target()  # computed once per module
    cache = getattr(module, "eval_cache", {})  # the window's constants, once per module
    if "ssim_limits" not in cache:
        cache["positions"] = module.positions.cpu().numpy()
        cache["ssim_limits"] = _ssim_limits(gt)
    # kinograph_SSIM orders points along a Hilbert curve of the window's first frame
    metrics: dict[str, Any] = M.evaluate(
        pred,
        gt,
        positions=cache["positions"],
        ssim_limits=cache["ssim_limits"],
        holdout=module.holdout_idx.cpu().numpy(),
    )
    train_r2 = metrics.get("train_r2")
    if isinstance(train_r2, float) and train_r2 < min_train_r2:
        # worse than predicting each component's mean, by more than its variance again,
        # on the frames it trained on: the fit went away from where it started
        why = (
            f"R² on the trained frames ended at {train_r2:.4g} (< {min_train_r2:g}: "
            f"worse than predicting the mean) after {step} steps"
        )
        return Evaluation(step, {}, None, why)
    return Evaluation(step, metrics, pred)


def quick_eval(module: Any, max_frames: int = 64) -> dict[str, float | None]:
    """Periodic metrics: ``final_r2``, ``final_mse``, ``kinograph_R2`` on ≤ ``max_frames``
    frames spread over the window, and ``holdout_r2`` on exactly the window's held-out
    frames (every one of them: the frames every finished node is scored on, so an
    early-stopped trial's last report is comparable), None when none are held out."""
    t = module.spec.n_frames
    sample = (
        torch.linspace(0, t - 1, min(t, max_frames), device=module.device).round().long().unique()
    )
    held = module.holdout_idx
    frames = torch.cat([sample, held]).unique()  # one prediction for both sets
    pred, gt = module.predict(frames), module.target(frames)
    frames_np = frames.cpu().numpy()
    in_sample = np.isin(frames_np, sample.cpu().numpy())
    in_held = np.isin(frames_np, held.cpu().numpy())
    has_held = bool(in_held.any())
    if not np.all(np.isfinite(pred)):
        return {"final_r2": float("nan"), "holdout_r2": float("nan") if has_held else None}
    return M.quick_scores(pred, gt, in_sample, in_held)
