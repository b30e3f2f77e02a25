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

__all__ = [
    "DivergenceGuard",
    "FieldPanel",
    "FinalCheckpoint",
    "MetricsEvaluator",
    "StepProgress",
    "TimeBudget",
    "loss_divergence",
]


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
        planned = getattr(pl_module, "planned_steps", self.total_steps)
        if planned != self._bar.total:  # a time cap shortened the run
            self._bar.total = planned
        self._bar.update(pl_module.step - self._bar.n)
        self._bar.set_postfix(loss=f"{pl_module.losses[-1][1]:.3e}", refresh=False)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()


def loss_divergence(
    start: float | None,
    losses: list[tuple[int, float]],
    factor: float = 10.0,
    tail: int = 5,
    floor: float = 0.1,
) -> str | None:
    """Why a finished run's loss counts as diverged (None when it does not).

    ``start`` is the loss of the untrained network (first optimizer step, before any
    update); the end is the median of the last ``tail`` logged losses (each already a mean
    over one Lightning call's optimizer steps), so one spike in the last call does not
    decide. Diverged when end > ``factor`` × max(start, ``floor``).

    Why 10× and the floor 0.1: targets are standardised, so the untrained network starts
    near 1 (predicting ≈ 0, the mean) and any fit that learns something ends well below
    its start; with the mse loss an end 10× above the start is ≈ R² −9 on the trained
    data, far past the noise of a healthy run (which ends below its start, not above). The
    floor keeps a
    network that happens to start near the data (start ≪ 1) from being called diverged
    for ending at a still-good loss: the end must also exceed 1, i.e. be worse than
    predicting the mean.
    """
    if start is None or not losses or not math.isfinite(start):
        return None
    end = float(np.median([loss for _, loss in losses[-tail:]]))
    if not math.isfinite(end):
        return f"loss ended at {end}"
    if end > factor * max(start, floor):
        times = f"{end / start:.0f}×" if start > 0 else "far above"
        return f"loss ended at {end:.3g}, {times} its start {start:.3g}"
    return None


class DivergenceGuard(Callback):
    """Stop a trial whose loss is NaN/inf or grows ``factor``× above its start; at the end,
    call a run whose loss ended ``end_factor``× above its start diverged (``loss_divergence``).

    The start is the untrained network's loss (the module's ``start_loss``, first optimizer
    step before any update; the first logged loss when missing): at a huge lr the first
    logged loss, a mean over the first call's steps, is already far above the start.
    """

    def __init__(self, factor: float = 1.0e3, end_factor: float = 10.0) -> None:
        if not factor > 1 or not end_factor > 1:
            raise ValueError(f"factor and end_factor must be > 1, got {factor}, {end_factor}")
        self.factor = factor
        self.end_factor = end_factor

    @staticmethod
    def _start(pl_module: Any) -> float:
        start = getattr(pl_module, "start_loss", None)
        return pl_module.losses[0][1] if start is None else start

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not pl_module.losses:
            return
        step, loss = pl_module.losses[-1]
        first = max(self._start(pl_module), 1e-3)
        if not math.isfinite(loss):
            pl_module.diverged = f"loss became {loss} at step {step}"
        elif loss > self.factor * first:
            pl_module.diverged = f"loss exploded to {loss:.3g} at step {step} (> {self.factor:g}× the first loss {first:.3g})"
        if pl_module.diverged:
            trainer.should_stop = True

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if pl_module.diverged or not pl_module.losses:
            return
        why = loss_divergence(self._start(pl_module), pl_module.losses, self.end_factor)
        if why:
            pl_module.diverged = f"{why} (after {pl_module.step} steps)"


class TimeBudget(Callback):
    """Fit the run inside ``training.max_minutes`` by shortening its schedule, not cutting it.

    After a warm-up the callback measures the optimisation loop's seconds per optimizer
    step and the cost of one periodic evaluation; when the planned steps cannot finish
    before ``(1 - margin)`` of the cap, it shortens the run (``INRModule.shorten``: the
    loop ends there and the lr schedule, warmup included, is re-laid to decay fully by the
    new end). Later checks (at 25 %, 50 %, 75 % of the cap) shorten again if the machine
    slowed down past half the margin; a run is never lengthened. Lightning's ``Timer`` at
    the full cap stays as the hard backstop; a run it still cuts is ``budget_cut``.

    Warm-up: the first Lightning call is not measured (it pays one-off costs: lazy
    CUDA/cuBLAS init, allocator growth, first use of the foreach kernels); the measurement
    runs over the next calls until 3 % of the cap has passed and at least 3 calls
    (``steps_per_call`` optimizer steps each) were measured. 3 % averages out per-step
    jitter (a 3-minute cap gives 5 s, thousands of small-network steps) while the schedule
    re-laid at that point has moved by a few % of its progress at most.

    Margin 10 % of the cap: the step rate of trials sharing a device varies by several %
    as neighbours start and end; the margin also covers the last call's granularity and
    logging. The final evaluation runs after the loop ends, outside the cap
    (``training.max_minutes`` is the optimisation loop's budget), so it needs no share.
    """

    def __init__(
        self,
        max_minutes: float,
        evaluator: MetricsEvaluator | None = None,
        warmup_fraction: float = 0.03,
        min_calls: int = 3,
        margin: float = 0.1,
        checks: tuple[float, ...] = (0.25, 0.5, 0.75),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {max_minutes}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        self.budget_s = 60.0 * float(max_minutes)
        self.evaluator = evaluator
        self.warmup_fraction = warmup_fraction
        self.min_calls = min_calls
        self.margin = margin
        self.checks = checks
        self.clock = clock
        self.plans: list[dict[str, float]] = []  # one row per shortening (for metrics.json)
        self.seconds_per_step: float | None = None
        self._t0 = 0.0
        self._mark: tuple[float, int, float] | None = None  # (time, step, eval seconds)
        self._own_eval_s = 0.0  # the evaluation timed here (not an optimisation step)
        self._last: tuple[float, int, float] | None = None
        self._calls = 0
        self._next_check = 0
        self._eval_cost: float | None = None

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self.clock()
        self._mark = self._last = None
        self._own_eval_s, self._eval_cost = 0.0, None
        self._calls = 0
        self._next_check = 0
        self.plans = []

    def _eval_seconds(self) -> float:
        ev = self.evaluator
        return self._own_eval_s + (ev.eval_seconds if ev is not None else 0.0)

    def _evaluation_cost(self, module: Any) -> float:
        """Seconds of one periodic evaluation: the mean of those run so far, else one timed
        now (its time is spent inside the cap, like any evaluation)."""
        ev = self.evaluator
        if ev is None:
            return 0.0
        if ev.n_evals:
            return ev.eval_seconds / ev.n_evals
        if self._eval_cost is None:
            t0 = self.clock()
            ev.quick_eval(module)
            self._eval_cost = self.clock() - t0
            self._own_eval_s += self._eval_cost
        return self._eval_cost

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.diverged or trainer.should_stop:
            return
        now = self.clock()
        point = (now, pl_module.step, self._eval_seconds())
        if self._mark is None:  # the first call is not measured (one-off costs)
            self._mark = self._last = point
            return
        self._calls += 1
        elapsed = now - self._t0
        if elapsed >= self.budget_s:  # past the cap: the Timer stops the loop
            return
        if self._next_check == 0:  # warm-up
            if elapsed < self.warmup_fraction * self.budget_s or self._calls < self.min_calls:
                return
        elif (
            self._next_check > len(self.checks)
            or elapsed < self.checks[self._next_check - 1] * self.budget_s
        ):
            return
        first = self._next_check == 0
        self._next_check += 1

        def per_step(a: tuple[float, int, float]) -> float | None:
            steps = pl_module.step - a[1]
            return (now - a[0] - (point[2] - a[2])) / steps if steps > 0 else None

        rates = [r for r in (per_step(self._mark), per_step(self._last)) if r is not None]
        self._last = point
        if not rates:
            return
        # the slower of the whole measurement and the latest stretch: the current load
        # predicts the remaining time better than the average, and erring slow is cheap
        sec = max(rates)
        self.seconds_per_step = sec
        eval_every = self.evaluator.eval_every if self.evaluator is not None else 0
        eval_cost = self._evaluation_cost(pl_module) if eval_every else 0.0
        elapsed = self.clock() - self._t0  # a timed evaluation counts too
        sec_total = sec + (eval_cost / eval_every if eval_every else 0.0)
        left = pl_module.planned_steps - pl_module.step
        finish = elapsed + left * sec_total
        allowed = 1.0 - self.margin if first else 1.0 - self.margin / 2
        if finish <= allowed * self.budget_s:
            return
        fit = int(((1.0 - self.margin) * self.budget_s - elapsed) / sec_total)
        new = max(pl_module.step + 1, pl_module.step + fit)
        if new >= pl_module.planned_steps:
            return
        pl_module.shorten(new)
        self.plans.append(
            {
                "at_step": pl_module.step,
                "at_seconds": round(elapsed, 3),
                "seconds_per_step": sec,
                "eval_seconds": eval_cost,
                "steps_planned": new,
            }
        )


class MetricsEvaluator(Callback):
    """R²/MSE/kinograph R² every ``eval_every`` steps on ≤ ``max_frames`` frames, plus
    ``holdout_r2`` on all held-out frames (``quick_eval``); all metrics at the end.

    The final metrics (DESIGN.md formulas, raw units, whole window) land in
    ``pl_module.final_metrics`` and the final prediction in ``pl_module.final_prediction``.
    ``training_time`` counts the optimisation loop only (periodic evaluations excluded).
    A run whose final R² on its trained frames is below ``min_train_r2`` (−1: an error
    more than twice each component's variance, worse than a constant by a wide margin;
    no fit that learned anything ends there) is marked diverged, with the R² as reason.
    """

    def __init__(
        self,
        eval_every: int,
        max_frames: int = 64,
        report: Callable[[dict[str, Any]], None] | None = None,
        min_train_r2: float = -1.0,
    ) -> None:
        if eval_every < 1 or max_frames < 1:
            raise ValueError("eval_every and max_frames must be ≥ 1")
        self.min_train_r2 = min_train_r2
        self.eval_every = eval_every
        self.max_frames = max_frames
        self.report = report
        self.history: list[dict[str, float]] = []
        self._next = eval_every
        self._t0 = 0.0
        self.eval_seconds = 0.0  # time spent in periodic evaluations
        self.n_evals = 0
        self.training_time = 0.0

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def quick_eval(self, module: INRModule) -> dict[str, float | None]:
        """Periodic metrics: ``final_r2``, ``final_mse``, ``kinograph_R2`` on ≤ ``max_frames``
        frames spread over the window, and ``holdout_r2`` on exactly the window's held-out
        frames (every one of them: the frames every finished node is scored on, so an
        early-stopped trial's last report is comparable), None when none are held out."""
        t = module.spec.n_frames
        sample = (
            torch.linspace(0, t - 1, min(t, self.max_frames), device=module.device)
            .round()
            .long()
            .unique()
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
        ps, gs = pred[in_sample], gt[in_sample]
        return {
            "final_r2": M.final_r2(ps, gs),
            "holdout_r2": M.final_r2(pred[in_held], gt[in_held]) if has_held else None,
            "final_mse": M.final_mse(ps, gs),
            "kinograph_R2": M.kinograph_r2(ps, gs),
        }

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.step < self._next or pl_module.diverged:
            return
        self._next = (pl_module.step // self.eval_every + 1) * self.eval_every
        t0 = time.perf_counter()
        values = self.quick_eval(pl_module)
        self.eval_seconds += time.perf_counter() - t0
        self.n_evals += 1
        row = {"step": pl_module.step, "loss": pl_module.losses[-1][1], **values}
        self.history.append(row)
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {f"eval/{k}": v for k, v in values.items() if v is not None}, step=pl_module.step
            )
        if self.report is not None:
            self.report(row)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.training_time = time.perf_counter() - self._t0 - self.eval_seconds
        pl_module.final_metrics = {}
        pl_module.final_prediction = None
        if pl_module.diverged:
            return
        pred = pl_module.predict()
        if not np.all(np.isfinite(pred)):
            pl_module.diverged = f"prediction has NaN or inf values after {pl_module.step} steps"
            return
        gt = pl_module.target()
        # kinograph_SSIM orders points along a Hilbert curve of the window's first frame
        final = M.evaluate(pred, gt, positions=pl_module.positions.cpu().numpy())
        final.update(split_r2(pred, gt, pl_module.holdout_idx.cpu().numpy()))
        train_r2 = final.get("train_r2")
        if isinstance(train_r2, float) and train_r2 < self.min_train_r2:
            # worse than predicting each component's mean, by more than its variance again,
            # on the frames it trained on: the fit went away from where it started
            pl_module.diverged = (
                f"R² on the trained frames ended at {train_r2:.4g} (< {self.min_train_r2:g}: "
                f"worse than predicting the mean) after {pl_module.step} steps"
            )
            return
        pl_module.final_prediction = pred
        pl_module.final_metrics = final
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
