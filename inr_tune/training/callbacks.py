"""Lightning callbacks of a trial: progress, divergence guard, metrics, field panel, checkpoint."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from inr_tune import metrics as M
from inr_tune.training.module import INRModule

__all__ = ["DivergenceGuard", "FieldPanel", "FinalCheckpoint", "MetricsEvaluator", "StepProgress"]


class StepProgress(Callback):
    """A tqdm bar over optimizer steps (not Lightning batches): step, loss, steps/s, ETA."""

    def __init__(self, total_steps: int, desc: str = "train") -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be ≥ 1, got {total_steps}")
        self.total_steps = total_steps
        self.desc = desc
        self._bar: Any = None

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.total_steps,
            desc=self.desc,
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._bar is None or not pl_module.losses:
            return
        self._bar.update(pl_module.step - self._bar.n)
        self._bar.set_postfix(loss=f"{pl_module.losses[-1][1]:.3e}", refresh=False)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()


class DivergenceGuard(Callback):
    """Stop a trial whose loss is NaN/inf or grows ``factor``× above its first value."""

    def __init__(self, factor: float = 1.0e3) -> None:
        if not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor}")
        self.factor = factor

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not pl_module.losses:
            return
        step, loss = pl_module.losses[-1]
        first = max(pl_module.losses[0][1], 1e-3)
        if not math.isfinite(loss):
            pl_module.diverged = f"loss became {loss} at step {step}"
        elif loss > self.factor * first:
            pl_module.diverged = f"loss exploded to {loss:.3g} at step {step} (> {self.factor:g}× the first loss {first:.3g})"
        if pl_module.diverged:
            trainer.should_stop = True


class MetricsEvaluator(Callback):
    """R²/MSE/kinograph R² every ``eval_every`` steps on ≤ ``max_frames`` frames; all metrics at the end.

    The final metrics (DESIGN.md formulas, raw units, whole window) land in
    ``pl_module.final_metrics`` and the final prediction in ``pl_module.final_prediction``.
    ``training_time`` counts the optimisation loop only (periodic evaluations excluded).
    """

    def __init__(
        self,
        eval_every: int,
        max_frames: int = 64,
        report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if eval_every < 1 or max_frames < 1:
            raise ValueError("eval_every and max_frames must be ≥ 1")
        self.eval_every = eval_every
        self.max_frames = max_frames
        self.report = report
        self.history: list[dict[str, float]] = []
        self._next = eval_every
        self._t0 = 0.0
        self._eval_seconds = 0.0
        self.training_time = 0.0

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def _quick_eval(self, module: INRModule) -> dict[str, float]:
        t = module.spec.n_frames
        frames = (
            torch.linspace(0, t - 1, min(t, self.max_frames), device=module.device)
            .round()
            .long()
            .unique()
        )
        pred, gt = module.predict(frames), module.target(frames)
        if not np.all(np.isfinite(pred)):
            return {"final_r2": float("nan")}
        return {
            "final_r2": M.final_r2(pred, gt),
            "final_mse": M.final_mse(pred, gt),
            "kinograph_R2": M.kinograph_r2(pred, gt),
        }

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.step < self._next or pl_module.diverged:
            return
        self._next = (pl_module.step // self.eval_every + 1) * self.eval_every
        t0 = time.perf_counter()
        values = self._quick_eval(pl_module)
        self._eval_seconds += time.perf_counter() - t0
        row = {"step": pl_module.step, "loss": pl_module.losses[-1][1], **values}
        self.history.append(row)
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {f"eval/{k}": v for k, v in values.items()}, step=pl_module.step
            )
        if self.report is not None:
            self.report(row)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.training_time = time.perf_counter() - self._t0 - self._eval_seconds
        pl_module.final_metrics = {}
        pl_module.final_prediction = None
        if pl_module.diverged:
            return
        pred = pl_module.predict()
        if not np.all(np.isfinite(pred)):
            pl_module.diverged = f"prediction has NaN or inf values after {pl_module.step} steps"
            return
        gt = pl_module.target()
        pl_module.final_prediction = pred
        pl_module.final_metrics = M.evaluate(pred, gt)
        pl_module.final_metrics.update(split_r2(pred, gt, pl_module.holdout_idx.cpu().numpy()))
        if trainer.logger is not None:
            keys = ("final_r2", "final_mse", "kinograph_R2", "kinograph_SSIM")
            trainer.logger.log_metrics(
                {f"eval/{k}": pl_module.final_metrics[k] for k in keys}, step=pl_module.step
            )


def split_r2(pred: np.ndarray, gt: np.ndarray, holdout: np.ndarray) -> dict[str, Any]:
    """``holdout_r2`` on the held-out frames and ``train_r2`` on the others (the held-out
    R² is None when the window holds none out; then train_r2 is the whole window's)."""
    if len(holdout) == 0:
        return {"holdout_r2": None, "train_r2": M.final_r2(pred, gt), "holdout_frames": 0}
    mask = np.zeros(gt.shape[0], dtype=bool)
    mask[holdout] = True
    return {
        "holdout_r2": M.final_r2(pred[mask], gt[mask]),
        "train_r2": M.final_r2(pred[~mask], gt[~mask]),
        "holdout_frames": int(mask.sum()),
    }


class FieldPanel(Callback):
    """Save ``field.png`` at the end and log it to TensorBoard as an image."""

    def __init__(self, path: str | Path, info: dict[str, Any]) -> None:
        self.path = Path(path)
        self.info = dict(info)

    @override
    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        pred = getattr(pl_module, "final_prediction", None)
        if pred is None:
            return
        from inr_tune.plots import field_panel, save_figure

        m = pl_module.final_metrics
        info = {
            **self.info,
            "steps": pl_module.step,
            "points": pl_module.spec.n_points,
            "frames": pl_module.spec.n_frames,
            "params": pl_module.total_params,
            "MSE": f"{m['final_mse']:.4g}",
            "R²": f"{m['final_r2']:.6f}",
            "held-out R²": "-" if m.get("holdout_r2") is None else f"{m['holdout_r2']:.6f}",
            "ratio": f"{pl_module.spec.n_frames * pl_module.spec.n_points * pl_module.spec.n_components / pl_module.total_params:.1f}×",
            "kinograph R²": f"{m['kinograph_R2']:.5f}",
            "kinograph SSIM": f"{m['kinograph_SSIM']:.4f}",
        }
        gt = pl_module.target()
        positions = pl_module.positions.cpu().numpy()
        fig = field_panel(
            gt=gt,
            pred=pred,
            positions=positions,
            losses=pl_module.losses,
            components=self.info.get("components", [f"c{i}" for i in range(gt.shape[2])]),
            info={k: v for k, v in info.items() if k != "components"},
        )
        save_figure(fig, self.path)
        logger = trainer.logger
        if logger is not None and hasattr(logger, "experiment"):
            import matplotlib.image as mpimg

            image = mpimg.imread(self.path)[..., :3]
            logger.experiment.add_image("field_panel", image, pl_module.step, dataformats="HWC")


class FinalCheckpoint(Callback):
    """Save the final weights (with the standardiser's mean/std) when training ends."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if pl_module.diverged:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        tmp.replace(self.path)
